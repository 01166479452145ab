"""The dispatcher: claims due events from the store, delivers them, records each attempt.

I/O lives here; the decisions live in :mod:`policy`, the queue and its claims in the store
(:mod:`webhook_kit.storage`). The same loop runs in the provider, in ``emit``, in certify and in
each ``webhook-kit worker`` process: with PostgreSQL, any number of them share one queue.

One coordinator claims work in batches (a claim is one database round trip for up to
``concurrency`` events); long-lived worker tasks take claims from a local queue and attempt them.
The HTTP call happens after the claim is committed, never inside a transaction. The clock and the
sleep are parameters, so a test can run a three-day retry schedule in milliseconds.
"""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import aiohttp

from webhook_kit.delivery import transport
from webhook_kit.delivery.breaker import (
    Breaker,
    BreakerPolicy,
    BreakerState,
    admits,
    after,
    unwell,
)
from webhook_kit.delivery.guard import AddressPolicy, url_problem
from webhook_kit.delivery.outcome import AttemptResult
from webhook_kit.delivery.policy import RetryPolicy
from webhook_kit.delivery.prefetch import Prefetch
from webhook_kit.errors import ConfigError, StoreError
from webhook_kit.oauth.client import OAuthClient, OAuthSettings
from webhook_kit.redact import scrub
from webhook_kit.storage.base import EventStore, Requeued
from webhook_kit.storage.rows import (
    DEFAULT_ACCOUNT,
    DONE_STATES,
    AttemptRecord,
    Claim,
    EventState,
    NewEvent,
)

log = logging.getLogger("webhook_kit.dispatcher")

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]
STATE_FOR_ACTION: dict[str, EventState] = {
    "done": "sent",
    "retry": "retrying",
    "fail": "failed",
    "disable": "pending",
}
#: How long the coordinator waits for news before it looks at the store again (other processes'
#: completions and expired leases are not announced).
POLL_SECONDS = 1.0
#: Attempts made and not yet written, per slot, at most: what a crash can make a worker send
#: twice (in flight, or done and its completion buffered).
UNRECORDED = 8
#: Events of one validation a claim may carry, sent one after the other under its lease with no
#: claim between them: a backlog of a validation's events costs one claim per ``CHAIN``.
CHAIN = 8
MIN_WAIT = 0.01
#: Seconds a loaded target is used before its stored settings are read again.
TARGET_TTL = 60.0
#: Seconds kept between the end of an attempt and its lease's end; an attempt needs at least
#: MIN_ATTEMPT seconds of lease left to start.
LEASE_MARGIN = 0.5
MIN_ATTEMPT = 0.5
#: The longest wait between attempts to reach a database that went away.
STORE_BACKOFF_MAX = 30.0


@dataclass(frozen=True)
class Target:
    """Where and how to deliver: the customer's URL and its OAuth client credentials."""

    url: str
    oauth: OAuthSettings
    enabled: bool = True

    def __post_init__(self) -> None:
        token = ("token URL", self.oauth.token_url)
        if not self.oauth.token_url and self.oauth.issuer:
            # The token URL comes from the issuer's metadata, when the first token is fetched.
            token = ("issuer", self.oauth.issuer)
        for name, value in (("url", self.url), token):
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
    #: How long a claim is this process's alone. A worker that dies loses its claims after this
    #: long; it must outlast a token fetch and a POST (each bounded by ``timeout``) and the wait
    #: in the local queue, hence at least three timeouts.
    lease: float = 60.0

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise ConfigError("concurrency must be at least 1")
        if self.timeout <= 0:
            raise ConfigError("timeout must be positive")
        if self.lease < 3 * self.timeout:
            raise ConfigError(
                f"the lease ({self.lease:g} s) must be at least three timeouts "
                f"({3 * self.timeout:g} s): a token fetch, a POST and the wait before them"
            )


class DeliveryObserver(Protocol):
    """What the dispatcher reports as it goes (the metrics); every call must be cheap."""

    def attempt(
        self, account: str, outcome: str, failure_class: str | None, seconds: float
    ) -> None: ...

    def token_fetch(self, account: str, ok: bool) -> None: ...

    def breaker(self, account: str, state: BreakerState) -> None: ...


#: Where a provider's dispatcher finds each account's target (``None``: none, or unusable).
TargetLoader = Callable[[str], Awaitable["Target | None"]]


class Dispatcher:
    """Use as ``async with Dispatcher(events, settings, target=...) as d: await d.enqueue(...)``.

    Two ways to know where to deliver. ``target``: one fixed target for the default account
    (``emit``, certify, tests), every claim of that account, no cap, no breaker. ``targets``: a
    loader of each account's target from its stored settings (the provider and its workers);
    accounts take turns under their in-flight caps, each behind its circuit breaker
    (``breakers``), and :meth:`settings_changed` drops what was loaded.

    ``deliver=False`` makes one that stores and requeues but claims nothing: the provider's API
    process when separate workers deliver.
    """

    def __init__(
        self,
        events: EventStore,
        settings: DispatcherSettings | None = None,
        *,
        target: Target | None = None,
        targets: TargetLoader | None = None,
        clock: Clock = time.time,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
        on_disable: Callable[[str, str], Awaitable[None]] | None = None,
        deliver: bool = True,
        breakers: BreakerPolicy | None = None,
        observer: DeliveryObserver | None = None,
    ) -> None:
        self.events = events
        self.settings = settings or DispatcherSettings()
        self._clock = clock
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._on_disable = on_disable
        self._deliver = deliver
        self._tasks: list[asyncio.Task[None]] = []
        #: Claims waiting for a worker, each with the monotonic time its lease runs out here.
        self._claims: deque[tuple[Claim, float]] = deque()
        self._in_flight = 0
        #: Heads this dispatcher may hold, and the level at which the coordinator claims more.
        self._prefetch = Prefetch(self.settings.concurrency)
        #: Attempts in flight plus those not yet written, at most (see ``UNRECORDED``).
        self._unrecorded_cap = UNRECORDED * self.settings.concurrency
        #: At or below this many heads held, a completion wakes the coordinator to claim more.
        self._refill = self._prefetch.sizes()[1]
        #: Chains' next events, each queued once the completion before it is written.
        self._chained: list[tuple[Claim, float]] = []
        self._chaining: asyncio.Task[None] | None = None
        #: The claim each worker task is attempting now (given back if it is cut off).
        self._attempting: dict[asyncio.Task[Any] | None, Claim] = {}
        #: Wakes the coordinator: a slot freed, the target changed, or stopping.
        self._wake = asyncio.Event()
        #: Wakes the workers: claims are waiting in the local queue.
        self._work = asyncio.Event()
        #: Set after every completion: what :meth:`wait_idle` waits on.
        self._progress = asyncio.Event()
        self._stopping = False
        self._session: aiohttp.ClientSession | None = None
        self._ssl: ssl.SSLContext | None = None
        self._target: Target | None = None
        self._oauth: OAuthClient | None = None
        self._pending_target = target
        self._store_down_since: float | None = None
        self._loader = targets
        #: Per account (stored mode): its target and OAuth client, loaded when first needed.
        self._targets: dict[str, tuple[Target, OAuthClient] | None] = {}
        self._breaker_policy = breakers or BreakerPolicy()
        #: Breakers known not to be closed or to count failures; absent means closed and clean.
        self._breakers: dict[str, Breaker] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._targets_loaded_at = time.monotonic()
        self._stale: set[str] = set()
        self._observer = observer

    # -- lifecycle -----------------------------------------------------------------------------

    async def __aenter__(self) -> Dispatcher:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        from webhook_kit.tls import client_context

        self._ssl = client_context(self.settings.ca_file)
        self._session = transport.make_session(
            self._ssl, limit=self.settings.concurrency * 2, policy=self.settings.address_policy
        )
        self.set_target(self._pending_target)
        if self._deliver:
            self._tasks = [asyncio.ensure_future(self._coordinate())] + [
                asyncio.ensure_future(self._worker()) for _ in range(self.settings.concurrency)
            ]

    async def stop(self) -> None:
        """Stop claiming; let the attempts under way finish (each is bounded by the timeout),
        then give back every claim not attempted, so that another process takes it at once
        rather than after its lease."""
        self._stopping = True
        self._wake.set()
        self._work.set()
        coordinator, workers = self._tasks[:1], self._tasks[1:]
        await asyncio.gather(*coordinator, return_exceptions=True)
        if workers:
            # Twice the timeout: a token fetch, then the POST.
            await asyncio.wait(workers, timeout=2 * self.settings.timeout + 1)
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        if self._chaining is not None:
            self._chaining.cancel()
            await asyncio.gather(self._chaining, return_exceptions=True)
        cut_off = list(self._attempting.values())
        waiting = [*self._claims, *self._chained]
        unattempted = [*cut_off, *(claim for claim, _ in waiting)]
        self._claims, self._chained = deque(), []
        if unattempted:
            try:
                await self.events.release(unattempted)
            except StoreError as exc:  # their leases expire instead
                log.warning("cannot give back %d claims: %s", len(unattempted), exc)
        if self._session is not None:
            await self._session.close()

    @property
    def session(self) -> aiohttp.ClientSession:
        assert self._session is not None, "the dispatcher is not started"
        return self._session

    @property
    def ssl_context(self) -> ssl.SSLContext:
        assert self._ssl is not None, "the dispatcher is not started"
        return self._ssl

    @property
    def oauth(self) -> OAuthClient | None:
        return self._oauth

    @property
    def target(self) -> Target | None:
        return self._target

    def settings_changed(self, account: str | None = None) -> None:
        """Stored settings changed (one account's, or any): load the targets again."""
        if account is None:
            self._targets.clear()
        else:
            self._targets.pop(account, None)
        self._wake.set()

    async def load_target(self, account: str) -> Target | None:
        """The account's target as its stored settings say now (not cached)."""
        if self._loader is None:
            return self._target
        return await self._loader(account)

    async def _target_of(self, account: str) -> tuple[Target, OAuthClient] | None:
        if self._loader is None:
            target = self._usable()
            oauth = self._oauth
            return None if target is None or oauth is None else (target, oauth)
        if self._targets_loaded_at + TARGET_TTL < time.monotonic():
            # Look at the stored settings again now and then: what they imply may change with
            # no change to them (an account's signing key rotates at a set time).
            self._targets_loaded_at = time.monotonic()
            self._stale = set(self._targets)
        if account in self._stale:
            self._stale.discard(account)
            await self._reload(account)
        if account not in self._targets:
            # One load per account at a time: concurrent first deliveries share one client (one
            # token), instead of each building its own.
            lock = self._locks.setdefault(account, asyncio.Lock())
            async with lock:
                if account not in self._targets:
                    target = await self._loader(account)
                    if target is None or not target.enabled:
                        self._targets[account] = None
                    else:
                        # Accounts never share a token: one client (and its cache) per account.
                        client = OAuthClient(
                            target.oauth,
                            self.session,
                            clock=self._clock,
                            ca_file=self.settings.ca_file,
                        )
                        self._targets[account] = (target, client)
        return self._targets.get(account)

    async def _reload(self, account: str) -> None:
        """Load the account's target again; keep its client (and token) if nothing changed."""
        assert self._loader is not None
        target = await self._loader(account)
        known = self._targets.get(account)
        if known is not None and target is not None and known[0] == target:
            return
        self._targets.pop(account, None)

    def set_target(self, target: Target | None) -> None:
        """Deliver to ``target`` from now on (``None`` or disabled: hold every event)."""
        if target is not None and self._session is not None:
            same_auth = self._target is not None and self._target.oauth == target.oauth
            if not same_auth or self._oauth is None:
                self._oauth = OAuthClient(
                    target.oauth, self._session, clock=self._clock, ca_file=self.settings.ca_file
                )
        self._target = target
        self._wake.set()

    # -- queueing ------------------------------------------------------------------------------

    async def enqueue(self, notification: Mapping[str, Any]) -> str:
        """Store the event durably (it returns once it is committed); returns its ``event_id``."""
        event = NewEvent.of(notification)
        await self.events.insert([event])
        return event.event_id

    async def enqueue_many(self, notifications: Iterable[Mapping[str, Any]]) -> list[str]:
        """:meth:`enqueue` for a batch: stored in one transaction, delivered in order."""
        events = [NewEvent.of(n) for n in notifications]
        await self.events.insert(events)
        return [e.event_id for e in events]

    async def redeliver(self, event_id: str, *, account: str | None = None) -> Requeued:
        """Send a sent or failed event again (``account``: only if it is that account's)."""
        return await self.events.requeue(event_id, self._clock(), account=account)

    async def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until nothing is left to deliver (all sent or failed); False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while await self.events.outstanding() or self._in_flight:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return False
            self._progress.clear()
            # Other processes' progress is not announced here: look again now and then.
            wait = POLL_SECONDS / 20 if left is None else min(left, POLL_SECONDS / 20)
            try:
                await asyncio.wait_for(self._progress.wait(), wait)
            except TimeoutError:
                pass
        return True

    # -- the loop ------------------------------------------------------------------------------

    @property
    def _scope(self) -> dict[str, Any]:
        """Which accounts' events this dispatcher claims (see :class:`EventStore`)."""
        if self._loader is not None:
            return {}
        return {"accounts": [DEFAULT_ACCOUNT], "cap": None}

    @property
    def _held(self) -> int:
        """Heads held here: in flight, queued, or a chain's next event waiting for a write."""
        return self._in_flight + len(self._claims) + len(self._chained)

    def _usable(self) -> Target | None:
        target = self._target
        return target if target is not None and target.enabled else None

    async def _coordinate(self) -> None:
        """Claim due work while there is room for it; otherwise sleep until the next due time.

        It keeps as many claims as :class:`~webhook_kit.delivery.prefetch.Prefetch` says and
        refills once there is room for a batch, so that a claim fetches many events at a time
        rather than one per completion, and the slots have claims in hand while it does. Only
        this loop sleeps, so an injected sleep that advances a fake clock is called once per
        wait.
        """
        backoff = 0.0
        while not self._stopping:
            self._wake.clear()
            if self._claims and self.events.writable:
                self._work.set()  # the store takes writes again: the workers may go on
            poll = self.events.poll_interval
            wait_for: float | None = poll
            try:
                if (
                    self._loader is not None or self._usable() is not None
                ) and self.events.writable:
                    held = self._held
                    capacity, self._refill = self._prefetch.sizes()
                    if held <= self._refill:
                        now = self._clock()
                        started = time.monotonic()
                        claims = await self.events.claim(
                            now,
                            capacity - held,
                            self.settings.lease,
                            chain=CHAIN,
                            **self._scope,
                        )
                        if claims:
                            # The lease as this process sees it, from before the claim was
                            # sent: a local deadline that no clock step can stretch.
                            until = started + self.settings.lease
                            self._claims.extend((claim, until) for claim in claims)
                            self._work.set()
                            continue
                        due = await self.events.next_due(now, **self._scope)
                        if due is not None:
                            # Due already, yet not claimed (another process took it): a short
                            # pause rather than a busy loop.
                            wait_for = max(due - self._clock(), MIN_WAIT)
                            if poll is not None:
                                wait_for = min(wait_for, poll)
                    else:
                        wait_for = None  # a completion wakes us
                self._store_back()
                backoff = 0.0
            except StoreError as exc:
                backoff = min(max(2 * backoff, 0.5), STORE_BACKOFF_MAX)
                self._store_down(exc, backoff)
                wait_for = backoff
            await self._wait(wait_for)

    def _store_down(self, exc: StoreError, backoff: float) -> None:
        if self._store_down_since is None:
            self._store_down_since = self._clock()
            log.error("the database cannot be used (%s): trying again every few seconds", exc)
        else:
            log.debug("the database is still down: next try in %.1f s", backoff)

    def _store_back(self) -> None:
        if self._store_down_since is not None:
            log.warning(
                "the database is back after %.0f s: deliveries resume",
                self._clock() - self._store_down_since,
            )
            self._store_down_since = None

    async def _wait(self, seconds: float | None) -> None:
        waiters = {
            asyncio.ensure_future(self._wake.wait()),
            asyncio.ensure_future(self.events.wait_for_work(3600.0)),
        }
        if seconds is not None:
            waiters.add(asyncio.ensure_future(self._sleep(seconds)))
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in waiters:
                task.cancel()
            await asyncio.gather(*waiters, return_exceptions=True)

    async def _worker(self) -> None:
        """Take the next claim, deliver it, repeat; wait when there is none.

        Long-lived workers instead of a task per attempt: task creation and its callbacks were a
        visible share of the per-delivery cost.
        """
        while not self._stopping:
            # While the store cannot record attempts, nothing more goes out: what would be
            # sent again after a restart stays bounded by what was in flight.
            if not self._claims or not self.events.writable:
                self._work.clear()
                await self._work.wait()
                continue
            claim, until = self._claims.popleft()
            found = await self._found(claim)
            if self._in_flight + self.events.unwritten >= self._unrecorded_cap:
                # What a crash would send again (attempts in flight, and those made but not
                # yet written) stays within a bound, chains included. Checked after the
                # settings load, which may wait, and with no wait until the slot is taken.
                self._claims.appendleft((claim, until))
                await self.events.written()
                continue
            left = until - time.monotonic() - LEASE_MARGIN
            if left < MIN_ATTEMPT:
                # This process was stalled past the lease (paused, swapped out): another worker
                # may own the event now, and may have sent later events of its validation.
                # Sending it would break their order: drop it; its new owner sends it.
                log.warning(
                    "claim of %s expired before it could be sent: left to its new owner",
                    claim.event_id,
                )
                continue
            if found is None:  # no usable target (disabled meanwhile): give it back, due now
                await self._release(claim)
                if self._loader is not None and self._targets.get(claim.account, 0) is None:
                    # Claimed, so its stored settings say enabled, yet they cannot be used:
                    # disable them with the reason rather than claim the account in a loop.
                    await self._disable(claim.account, "the stored webhook settings cannot be used")
                continue
            target, oauth = found
            self._in_flight += 1
            me = asyncio.current_task()
            self._attempting[me] = claim
            try:
                following = await self._attempt(
                    claim, target, oauth, min(self.settings.timeout, left)
                )
                if following is not None:
                    self._chained.append((following, until))
                    if self._chaining is None or self._chaining.done():
                        self._chaining = asyncio.ensure_future(self._chain())
            except Exception:  # a bug must not stop the worker; the claim goes back
                log.exception("delivery of %s failed unexpectedly", claim.event_id)
                await self._release(claim)
            finally:
                self._attempting.pop(me, None)
                self._in_flight -= 1
                self._progress.set()
                self._prefetch.ended()
                if self._held <= self._refill:
                    self._wake.set()

    async def _chain(self) -> None:
        """Queue each chain's next event once the completion before it is written.

        Not sooner: a worker that takes a validation over after a crash sends again what was
        not recorded, and it must never send an earlier event after a later one. Written
        first, only the event in flight can go twice, and it goes again in its place."""
        while self._chained and not self._stopping:
            count = len(self._chained)
            # A batch of at most half the bound on unrecorded attempts: with few slots, a full
            # store batch would first stop every slot at the bound, each to wait for a write.
            await self.events.written(hurry=False, batch=self._unrecorded_cap // 2)
            if self._stopping:
                return
            ready = self._chained[:count]
            del self._chained[:count]
            if not self.events.writable:
                # Not known to be written: left to their leases, as a stalled process's are.
                log.warning("%d events wait for their leases: attempts cannot be written", count)
                continue
            # At the front: their leases are held already, and run from the chain's claim. One
            # that could not have a whole attempt (after the one a slot may still be making)
            # goes back, rather than be cut short and counted as a timeout.
            need = 2 * self.settings.timeout + LEASE_MARGIN
            now = time.monotonic()
            going = []
            for claim, until in ready:
                if until - now < need:
                    await self._release(claim)
                else:
                    going.append((claim, until))
            self._claims.extendleft(reversed(going))
            self._work.set()

    async def _release(self, claim: Claim) -> None:
        try:
            await self.events.release([claim])
        except StoreError as exc:  # its lease expires instead
            log.warning("cannot give back the claim of %s: %s", claim.event_id, exc)

    async def _found(self, claim: Claim) -> tuple[Target, OAuthClient] | None:
        try:
            return await self._target_of(claim.account)
        except StoreError as exc:
            log.warning("cannot load the settings of %s: %s", claim.account, exc)
            return None

    async def _attempt(
        self, claim: Claim, target: Target, oauth: OAuthClient, timeout: float
    ) -> Claim | None:
        """One attempt, bounded by ``timeout`` (at most what is left of the claim's lease);
        returns the claim of the validation's next event if this one is done and it has one."""
        event_id = claim.event_id
        fetches = oauth.fetches
        attempt = claim.attempts + 1
        at = self._clock()
        try:
            result = await transport.deliver(
                self.session,
                oauth,
                target.url,
                claim.body,
                event_id=event_id,
                timeout=timeout,
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
        if decision.action == "disable":
            result = AttemptResult(
                result.outcome, decision.reason, result.duration_ms, result.http_status
            )
            next_at: float | None = self._clock()
        else:
            next_at = decision.next_attempt_at if decision.action == "retry" else None
        state = STATE_FOR_ACTION[decision.action]
        self.events.complete(AttemptRecord(claim, attempt, at, result, state, next_at))
        if self._observer is not None:
            self._observer.attempt(claim.account, result.outcome, None, result.duration_ms / 1000)
            for _ in range(oauth.fetches - fetches):
                self._observer.token_fetch(claim.account, result.outcome != "token_error")
        if self._loader is not None:
            await self._update_breaker(claim.account, result)
        if decision.action == "disable":
            await self._disable(claim.account, decision.reason)
        following = claim.next() if state in DONE_STATES else None
        if following is not None and (unwell(result) or not self._closed(claim.account)):
            # An endpoint in trouble gets no more of the chain (a probe is one event): the
            # rest goes back to the queue, behind its breaker and the accounts' turns.
            await self._release(following)
            return None
        return following

    def _closed(self, account: str) -> bool:
        breaker = self._breakers.get(account)
        return breaker is None or admits(breaker, self._clock()) == "yes"

    async def _update_breaker(self, account: str, result: AttemptResult) -> None:
        """Move the account's breaker on; only a failure, or a breaker that is not closed and
        clean, costs a database call."""
        if account not in self._breakers and not unwell(result):
            return
        # The stored state is the truth (the store turns it half-open when it hands out a
        # probe, and other workers move it too); one update per account at a time here.
        async with self._locks.setdefault(f"breaker:{account}", asyncio.Lock()):
            try:
                current = await self.events.breaker(account)
                new = after(current, result, self._clock(), self._breaker_policy)
                if new != current:
                    await self.events.set_breaker(account, new)
                    if new.state != current.state:
                        log.warning(
                            "endpoint of %s: breaker %s (%s)", account, new.state, new.reason
                        )
                        if self._observer is not None:
                            self._observer.breaker(account, new.state)
            except StoreError as exc:  # the breaker is advice; delivery goes on
                log.warning("cannot update the breaker of %s: %s", account, exc)
                return
            if new.state == "closed" and new.failures == 0:
                self._breakers.pop(account, None)
            else:
                self._breakers[account] = new

    async def _disable(self, account: str, reason: str) -> None:
        if self._loader is not None:
            self._targets[account] = None
        elif self._target is not None:
            self.set_target(Target(self._target.url, self._target.oauth, enabled=False))
        if self._on_disable is not None:
            await self._on_disable(account, reason)


def _scrubbed(result: AttemptResult, target: Target) -> AttemptResult:
    if result.outcome == "success":  # its reason is the status code: nothing to scrub
        return result
    reason = scrub(result.reason, list(target.oauth.secrets))
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
