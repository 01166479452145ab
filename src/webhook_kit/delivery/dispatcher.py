"""The dispatcher: stores each event, then delivers it, retrying per the policy.

I/O lives here; the decisions live in :mod:`policy` and :mod:`scheduler`. The clock and the sleep
are parameters, so a test can run a three-day retry schedule in milliseconds.

Over 400 lines: one class whose insert batching, attempt batching, queue and workers share one
state (the scheduler, the pending batches, the session). Issue 12 (the storage seam, N worker
processes) reshapes exactly that state, so it is split then rather than twice.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import sqlite3
import ssl
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from webhook_kit.delivery import transport
from webhook_kit.delivery.guard import AddressPolicy, url_problem
from webhook_kit.delivery.outcome import AttemptResult
from webhook_kit.delivery.policy import RetryPolicy
from webhook_kit.delivery.scheduler import Entry, Scheduler
from webhook_kit.delivery.store import AttemptRecord, Store, encode_body
from webhook_kit.errors import ConfigError, StoreError
from webhook_kit.oauth.client import OAuthClient, OAuthSettings
from webhook_kit.redact import scrub
from webhook_kit.tls import client_context

log = logging.getLogger("webhook_kit.dispatcher")

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]
ATTEMPT_FLUSH_SECONDS = 0.01
ATTEMPT_FLUSH_SIZE = 512
STORE_RETRY_SECONDS = 1.0
STATE_FOR_ACTION = {"done": "sent", "retry": "retrying", "fail": "failed", "disable": "pending"}


@dataclass(frozen=True)
class Target:
    """Where and how to deliver: the customer's URL and its OAuth client credentials."""

    url: str
    oauth: OAuthSettings
    enabled: bool = True

    def __post_init__(self) -> None:
        for name, value in (("url", self.url), ("token URL", self.oauth.token_url)):
            problem = url_problem(value)
            if problem is not None:
                raise ConfigError(f"the {name} {problem}")


@dataclass(frozen=True)
class DispatcherSettings:
    concurrency: int = 16
    timeout: float = 10.0
    ca_file: Path | None = None
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    #: Which addresses targets (and token URLs) may be on (see :mod:`guard`); ``None`` checks
    #: nothing. The CLI's emit and provider use ``local`` unless told otherwise.
    address_policy: AddressPolicy | None = None

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise ConfigError("concurrency must be at least 1")
        if self.timeout <= 0:
            raise ConfigError("timeout must be positive")


class Dispatcher:
    """Use as ``async with Dispatcher(store, settings) as d: await d.enqueue(...)``."""

    def __init__(
        self,
        store: Store,
        settings: DispatcherSettings | None = None,
        *,
        target: Target | None = None,
        clock: Clock = time.time,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
        on_disable: Callable[[str], None] | None = None,
    ) -> None:
        self.store = store
        self.settings = settings or DispatcherSettings()
        self._clock = clock
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._on_disable = on_disable
        self._scheduler = Scheduler()
        self._workers: list[asyncio.Task[None]] = []
        #: Wakes the coordinator: the queue, the due times or the target changed.
        self._wake = asyncio.Event()
        #: Wakes the workers: something is due now.
        self._work = asyncio.Event()
        self._idle = asyncio.Event()
        self._stopping = False
        self._runner: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None
        self._ssl: ssl.SSLContext = client_context(self.settings.ca_file)
        self._target: Target | None = None
        self._oauth: OAuthClient | None = None
        self._pending_target = target
        self._insert_batch: list[tuple[dict[str, Any], str, asyncio.Future[None]]] = []
        self._attempt_batch: list[AttemptRecord] = []
        #: The database refused the last attempt records: hold deliveries until it takes them.
        self._store_failing = False
        self._retry_flush: asyncio.TimerHandle | None = None

    # -- lifecycle -----------------------------------------------------------------------------

    async def __aenter__(self) -> Dispatcher:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        self._session = transport.make_session(
            self._ssl, limit=self.settings.concurrency * 2, policy=self.settings.address_policy
        )
        self.set_target(self._pending_target)
        for row in self.store.unfinished():
            # The stored text is what is sent again: retries are byte-identical across restarts.
            body_text = row["body"]
            self._queue(
                row["seq"],
                json.loads(body_text),
                row["next_attempt_at"],
                row["attempts"],
                body_text.encode(),
            )
        self._runner = asyncio.ensure_future(self._run())
        self._workers = [
            asyncio.ensure_future(self._worker()) for _ in range(self.settings.concurrency)
        ]

    async def stop(self) -> None:
        self._stopping = True
        self._nudge()
        if self._runner is not None:
            await self._runner
        for task in self._workers:
            task.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        if self._retry_flush is not None:
            self._retry_flush.cancel()
        self._flush_attempts()
        if self._attempt_batch:
            log.error(
                "%d attempts could not be written: those events will be delivered again on the "
                "next start (at-least-once)",
                len(self._attempt_batch),
            )
        if self._session is not None:
            await self._session.close()

    @property
    def session(self) -> aiohttp.ClientSession:
        assert self._session is not None, "the dispatcher is not started"
        return self._session

    @property
    def ssl_context(self) -> ssl.SSLContext:
        return self._ssl

    @property
    def oauth(self) -> OAuthClient | None:
        return self._oauth

    @property
    def target(self) -> Target | None:
        return self._target

    def set_target(self, target: Target | None) -> None:
        """Deliver to ``target`` from now on (``None`` or disabled: hold every event)."""
        if target is not None and self._session is not None:
            same_auth = self._target is not None and self._target.oauth == target.oauth
            if not same_auth or self._oauth is None:
                self._oauth = OAuthClient(target.oauth, self._session, clock=self._clock)
        self._target = target
        self._nudge()

    # -- queueing ------------------------------------------------------------------------------

    async def enqueue(self, notification: Mapping[str, Any]) -> str:
        """Store the event durably, then queue it for delivery; returns its ``event_id``.

        It returns once the event is committed. Events enqueued in the same event-loop turn (by
        concurrent callers) share one transaction: a commit per event was the largest single cost
        in profiles of the delivery path.
        """
        body = dict(notification)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._insert_batch.append((body, encode_body(body), future))
        if len(self._insert_batch) == 1:
            asyncio.get_running_loop().call_soon(self._flush_inserts)
        await future
        return str(body["event_id"])

    async def enqueue_many(self, notifications: Iterable[Mapping[str, Any]]) -> list[str]:
        """:meth:`enqueue` for a batch: stored in one transaction, then queued in order."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        ids = []
        for notification in notifications:
            body = dict(notification)
            self._insert_batch.append((body, encode_body(body), future))
            ids.append(str(body["event_id"]))
        if ids and len(self._insert_batch) == len(ids):
            loop.call_soon(self._flush_inserts)
        if ids:
            await future
        return ids

    def _flush_inserts(self) -> None:
        batch, self._insert_batch = self._insert_batch, []
        now = self._clock()
        try:
            seqs: list[int | BaseException] = list(
                self.store.insert_encoded([(b, text) for b, text, _ in batch], now)
            )
        except sqlite3.IntegrityError:
            # One bad event (a repeated event_id) must not fail the others: insert one by one.
            seqs = []
            for body, text, _ in batch:
                try:
                    seqs.extend(self.store.insert_encoded([(body, text)], now))
                except (sqlite3.Error, StoreError) as exc:
                    seqs.append(exc)
        except (sqlite3.Error, StoreError) as exc:
            seqs = [exc] * len(batch)
        for (body, text, future), seq in zip(batch, seqs, strict=True):
            if isinstance(seq, BaseException):
                if not future.done():
                    error = seq if isinstance(seq, StoreError) else StoreError(str(seq))
                    future.set_exception(StoreError(f"cannot store event: {error}"))
                continue
            self._queue(seq, body, now, 0, text.encode())
            if not future.done():
                future.set_result(None)
        self._nudge()

    def _record(self, record: AttemptRecord) -> None:
        # Attempts are written in small timed batches (every ATTEMPT_FLUSH_SECONDS, or sooner
        # when many pile up): a commit per attempt was the largest cost of the delivery path.
        # The scheduler already knows the outcome; a crash before the write means those few
        # events are sent again, which at-least-once allows.
        self._attempt_batch.append(record)
        if len(self._attempt_batch) >= ATTEMPT_FLUSH_SIZE:
            self._flush_attempts()
        elif len(self._attempt_batch) == 1:
            asyncio.get_running_loop().call_later(ATTEMPT_FLUSH_SECONDS, self._flush_attempts)

    def flush(self) -> None:
        """Write the attempts recorded so far now (readers call this before querying)."""
        self._flush_attempts()

    def _flush_attempts(self) -> None:
        batch, self._attempt_batch = self._attempt_batch, []
        if not batch:
            return
        try:
            self.store.record_attempts(batch)
        except StoreError as exc:
            self._hold_attempts(batch, str(exc))
            return
        except Exception:
            # One record the store refuses must not take the rest of the batch with it.
            self._record_one_by_one(batch)
        if self._store_failing:
            self._store_failing = False
            log.warning("the database takes writes again: deliveries resume")
            self._nudge()

    def _hold_attempts(self, batch: list[AttemptRecord], why: str) -> None:
        """The database cannot take writes (a full disk): keep the attempts in memory and send
        nothing more until it can. A delivered event whose completion is not yet written would
        be sent again after a restart; holding new deliveries bounds those to the ones already
        in flight. A timer tries the write again every second."""
        self._attempt_batch[:0] = batch
        if not self._store_failing:
            log.error(
                "cannot record %d attempts: %s; deliveries paused until it can", len(batch), why
            )
        self._store_failing = True
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        if self._retry_flush is None or self._retry_flush.cancelled():
            self._retry_flush = loop.call_later(STORE_RETRY_SECONDS, self._retry_attempts)

    def _retry_attempts(self) -> None:
        self._retry_flush = None
        self._flush_attempts()

    def _record_one_by_one(self, batch: list[AttemptRecord]) -> None:
        for record in batch:
            try:
                self.store.record_attempts([record])
            except StoreError as exc:
                self._hold_attempts([record], str(exc))
            except Exception as exc:
                log.error(
                    "attempt %d of %s not recorded: %s",
                    record.attempt,
                    record.event_id,
                    type(exc).__name__,
                )

    def queue_stored(self, seq: int, body: Mapping[str, Any]) -> str:
        """Queue an event the caller already stored (e.g. with its validation, atomically)."""
        self._queue(seq, dict(body), self._clock(), 0)
        self._nudge()
        return str(body["event_id"])

    def _queue(
        self,
        seq: int,
        body: dict[str, Any],
        due: float,
        attempts: int,
        encoded: bytes | None = None,
    ) -> None:
        self._idle.clear()
        self._scheduler.add(
            seq,
            str(body["event_id"]),
            str(body["validation_id"]),
            due,
            encoded if encoded is not None else transport.encode(body),
            attempts,
        )

    def redeliver(self, event_id: str) -> bool:
        """Send a sent or failed event again; False if it is still queued or unknown."""
        self._flush_attempts()
        if event_id in self._scheduler or not self.store.requeue(event_id, self._clock()):
            return False
        row = self.store.event(event_id)
        assert row is not None
        self._queue(
            row["seq"],
            json.loads(row["body"]),
            self._clock(),
            row["attempts"],
            row["body"].encode(),
        )
        self._nudge()
        return True

    @property
    def queued(self) -> int:
        return len(self._scheduler)

    async def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until nothing is queued (all sent or failed); False on timeout."""
        if len(self._scheduler):
            try:
                await asyncio.wait_for(self._idle.wait(), timeout)
            except TimeoutError:
                return False
        self._flush_attempts()
        return True

    # -- the loop ------------------------------------------------------------------------------

    def _nudge(self) -> None:
        """Work may be due now: wake the workers and the coordinator."""
        self._work.set()
        self._wake.set()

    async def _run(self) -> None:
        """The coordinator: wakes the workers when work is due, sleeps until the next due time.

        Only this loop sleeps, so an injected sleep that advances a fake clock is called once
        per wait, not once per worker.
        """
        while not self._stopping:
            self._wake.clear()
            target = self._target
            wait_for: float | None = None
            if target is not None and target.enabled and not self._store_failing:
                next_due = self._scheduler.next_due()
                if next_due is not None:
                    wait_for = next_due - self._clock()
                    if wait_for <= 0:
                        self._work.set()
                        wait_for = None  # the workers have it; wait for the next change
            if not len(self._scheduler):
                self._idle.set()
            await self._wait(wait_for)

    async def _wait(self, seconds: float | None) -> None:
        if seconds is None:
            await self._wake.wait()
            return
        waker = asyncio.ensure_future(self._wake.wait())
        sleeper = asyncio.ensure_future(self._sleep(seconds))
        _, pending = await asyncio.wait({waker, sleeper}, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()

    async def _worker(self) -> None:
        """Take the next due event, deliver it, repeat; wait when nothing is due.

        Long-lived workers instead of a task per attempt: task creation and its callbacks were a
        visible share of the per-delivery cost.
        """
        while not self._stopping:
            target = self._target
            entries = (
                self._scheduler.take_due(self._clock(), 1)
                if target is not None and target.enabled and not self._store_failing
                else []
            )
            if entries:
                try:
                    await self._attempt(entries[0], target)  # type: ignore[arg-type]
                except Exception:  # a bug must not stop the worker; the event stays queued
                    log.exception("delivery of %s failed unexpectedly", entries[0].event_id)
                    self._scheduler.release(entries[0].event_id)
                if not len(self._scheduler):
                    self._idle.set()
                    self._wake.set()
                continue
            self._work.clear()
            self._wake.set()  # let the coordinator look for the next due time
            await self._work.wait()

    async def _attempt(self, entry: Entry, target: Target) -> None:
        event_id = entry.event_id
        oauth = self._oauth
        assert oauth is not None
        attempt = entry.attempts + 1
        at = self._clock()
        try:
            result = await transport.deliver(
                self.session,
                oauth,
                target.url,
                entry.body,
                event_id=event_id,
                timeout=self.settings.timeout,
            )
        except Exception as exc:  # a bug must not lose the event: it is retried like a failure
            log.exception("unexpected error delivering %s", event_id)
            result = AttemptResult("connect_error", f"internal error: {type(exc).__name__}", 0.0)
        result = _scrubbed(result, target)
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "event %s attempt %d to %s: %s %s",
                event_id,
                attempt,
                target.url,
                result.outcome,
                result.reason,
            )
        decision = self.settings.policy.decide(
            attempt, result, now=self._clock(), rand=self._rng.random()
        )
        state = STATE_FOR_ACTION[decision.action]
        if decision.action == "disable":
            result = AttemptResult(
                result.outcome, decision.reason, result.duration_ms, result.http_status
            )
        next_at = decision.next_attempt_at if decision.action == "retry" else None
        if decision.action == "disable":
            next_at = self._clock()
        self._record(AttemptRecord(entry.seq, event_id, attempt, at, result, state, next_at))
        entry.attempts = attempt
        if decision.action in ("done", "fail"):
            self._scheduler.finish(event_id)
            self._work.set()  # the validation's next event may now go
        elif decision.action == "retry":
            assert next_at is not None
            self._scheduler.reschedule(event_id, next_at)
            self._wake.set()  # the coordinator sleeps until the earliest retry
        else:
            self._scheduler.reschedule(event_id, self._clock())
            self._disable(decision.reason)

    def _disable(self, reason: str) -> None:
        if self._target is not None:
            self.set_target(Target(self._target.url, self._target.oauth, enabled=False))
        if self._on_disable is not None:
            self._on_disable(reason)


def _scrubbed(result: AttemptResult, target: Target) -> AttemptResult:
    reason = scrub(result.reason, [target.oauth.client_secret])
    if reason == result.reason:
        return result
    return AttemptResult(
        result.outcome,
        reason,
        result.duration_ms,
        result.http_status,
        result.retry_after,
        result.token_refreshed,
    )
