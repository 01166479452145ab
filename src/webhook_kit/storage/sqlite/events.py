"""The delivery queue in one SQLite file: events, attempts, and claims kept in memory.

One process per file (see :mod:`files`), so the :class:`Scheduler` holds the claims, rebuilt
from the file on open, and sequence numbers are assigned here (``executemany`` with known keys
was the cheapest insert measured).
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable, Sequence
from contextlib import suppress

from webhook_kit.delivery.breaker import Breaker, admits, probing
from webhook_kit.errors import DuplicateEvent, StoreError
from webhook_kit.storage.base import Requeued
from webhook_kit.storage.rows import (
    DEFAULT_MAX_IN_FLIGHT,
    AttemptRecord,
    AttemptRow,
    Claim,
    EventFilter,
    EventRow,
    NewEvent,
    QueueStat,
    ValidationSummary,
    storable,
)
from webhook_kit.storage.scheduler import Admission, Scheduler
from webhook_kit.storage.sqlite.sql import read, writing

log = logging.getLogger("webhook_kit.storage")

Clock = Callable[[], float]
EVENT_COLUMNS = (
    "seq, event_id, validation_id, status, body, state, created_at, next_attempt_at, sent_at, "
    "attempts, account"
)
ATTEMPT_COLUMNS = "a.attempt, a.at, a.duration_ms, a.outcome, a.http_status, a.reason"
FLUSH_SECONDS = 0.01
FLUSH_SIZE = 512
RETRY_SECONDS = 1.0


class SqliteEvents:
    """The delivery queue in one SQLite file (see :class:`~webhook_kit.storage.base.EventStore`)."""

    def __init__(self, db: sqlite3.Connection, clock: Clock) -> None:
        self._db = db
        self._clock = clock
        self._scheduler = Scheduler()
        self._next_seq = 1
        self._inserts: list[tuple[Sequence[NewEvent], asyncio.Future[None]]] = []
        self._completions: list[AttemptRecord] = []
        self._flush_timer: asyncio.TimerHandle | None = None
        self._retry_timer: asyncio.TimerHandle | None = None
        self._failing = False
        self._wake = asyncio.Event()
        #: Per account with stored settings: (enabled, in-flight cap), kept by the records.
        self._stored: dict[str, tuple[bool, int | None]] = {}
        self._breakers: dict[str, Breaker] = {}

    def load(self) -> None:
        """Queue what a restart must deliver: events not yet sent or failed, oldest first."""
        self._next_seq = 1 + (self._db.execute("SELECT MAX(seq) FROM events").fetchone()[0] or 0)
        for seq, event_id, validation_id, body, due, attempts, account in self._db.execute(
            "SELECT seq, event_id, validation_id, body, next_attempt_at, attempts, account"
            " FROM events WHERE state IN ('pending', 'retrying') ORDER BY seq"
        ):
            # The stored text is what is sent again: retries are byte-identical across restarts.
            self._scheduler.add(seq, event_id, validation_id, due, body.encode(), attempts, account)
        for account, enabled, cap in self._db.execute(
            "SELECT account, enabled, max_in_flight FROM account_settings"
        ):
            self._stored[account] = (bool(enabled), cap)
        for account, *state in self._db.execute(
            "SELECT account, state, since, reason, failures, pause, probe_at FROM breakers"
        ):
            self._breakers[account] = Breaker(*state)

    def stored_settings(self, account: str, enabled: bool | None, cap: int | None) -> None:
        """The records changed an account's settings (``enabled`` ``None``: deleted)."""
        if enabled is None:
            self._stored.pop(account, None)
        else:
            self._stored[account] = (enabled, cap)
        self._wake.set()

    def forget(self, account: str) -> None:
        """The records removed ``account`` and everything of it."""
        self._scheduler.drop_account(account)
        self._stored.pop(account, None)
        self._breakers.pop(account, None)

    # -- writes --------------------------------------------------------------------------------

    async def insert(self, events: Sequence[NewEvent]) -> None:
        if not events:
            return
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._inserts.append((events, future))
        if len(self._inserts) == 1:
            loop.call_soon(self._flush_inserts)
        await future

    def _flush_inserts(self) -> None:
        batch, self._inserts = self._inserts, []
        now = self._clock()
        try:
            self._insert_rows([e for events, _ in batch for e in events], now)
            outcomes: list[BaseException | None] = [None] * len(batch)
        except sqlite3.IntegrityError:
            # One call's repeated event id must not fail the others: each call on its own.
            outcomes = []
            for events, _ in batch:
                try:
                    self._insert_rows(events, now)
                    outcomes.append(None)
                except sqlite3.IntegrityError:
                    outcomes.append(DuplicateEvent("an event with this event_id is stored"))
                except StoreError as exc:
                    outcomes.append(exc)
        except StoreError as exc:
            outcomes = [exc] * len(batch)
        for (_, future), outcome in zip(batch, outcomes, strict=True):
            if future.done():
                continue
            if outcome is None:
                future.set_result(None)
            else:
                future.set_exception(outcome)
        self._wake.set()

    def _insert_rows(self, events: Sequence[NewEvent], now: float) -> None:
        first = self._next_seq
        rows = [
            (first + i, e.event_id, e.validation_id, e.status, e.body, now, now, e.account)
            for i, e in enumerate(events)
        ]
        with writing(self._db) as db:
            db.executemany(
                "INSERT INTO events (seq, event_id, validation_id, status, body, state,"
                " created_at, next_attempt_at, account)"
                " VALUES (?, ?, ?, ?, ?, 'pending', ?, ?, ?)",
                rows,
            )
        self._next_seq = first + len(rows)
        for seq, event_id, validation_id, _, body, _, due, account in rows:
            self._scheduler.add(seq, event_id, validation_id, due, body.encode(), 0, account)

    def insert_in(self, db: sqlite3.Connection, event: NewEvent, now: float) -> int:
        """Insert one event inside the caller's transaction (the provider's records)."""
        seq = self._next_seq
        db.execute(
            "INSERT INTO events (seq, event_id, validation_id, status, body, state, created_at,"
            " next_attempt_at, account) VALUES (?, ?, ?, ?, ?, 'pending', ?, ?, ?)",
            (
                seq,
                event.event_id,
                event.validation_id,
                event.status,
                event.body,
                now,
                now,
                event.account,
            ),
        )
        return seq

    def inserted(self, seq: int, event: NewEvent, now: float) -> None:
        """The caller's transaction that ran :meth:`insert_in` committed: queue the event."""
        self._next_seq = seq + 1
        self._scheduler.add(
            seq, event.event_id, event.validation_id, now, event.body.encode(), 0, event.account
        )
        self._wake.set()

    def complete(self, record: AttemptRecord) -> None:
        claim = record.claim
        if record.state in ("sent", "failed"):
            self._scheduler.finish(claim.event_id)
        else:
            assert record.next_attempt_at is not None
            self._scheduler.reschedule(claim.event_id, record.next_attempt_at)
        self._scheduler.set_attempts(claim.event_id, record.attempt)
        # Written in small timed batches (every FLUSH_SECONDS, or sooner when many pile up): a
        # commit per attempt was the largest cost of the delivery path.
        self._completions.append(record)
        if len(self._completions) >= FLUSH_SIZE:
            self._flush_completions()
        elif self._flush_timer is None and not self._failing:
            self._flush_timer = asyncio.get_running_loop().call_later(
                FLUSH_SECONDS, self._flush_completions
            )

    def _flush_completions(self) -> None:
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None
        batch, self._completions = self._completions, []
        if not batch:
            return
        try:
            self._write_completions(batch)
        except StoreError as exc:
            self._hold(batch, str(exc))
            return
        except Exception:
            # One record the database refuses must not take the rest of the batch with it.
            for record in batch:
                try:
                    self._write_completions([record])
                except StoreError as exc:
                    self._hold([record], str(exc))
                except Exception as exc:
                    log.error(
                        "attempt %d of %s not recorded: %s",
                        record.attempt,
                        record.claim.event_id,
                        type(exc).__name__,
                    )
        if self._failing and not self._completions:
            self._failing = False
            log.warning("the database takes writes again: deliveries resume")
            self._wake.set()

    def _write_completions(self, records: Sequence[AttemptRecord]) -> None:
        with writing(self._db) as db:
            db.executemany(
                "INSERT INTO attempts (seq, attempt, at, duration_ms, outcome, http_status,"
                " reason) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        r.claim.seq,
                        r.attempt,
                        r.at,
                        r.result.duration_ms,
                        r.result.outcome,
                        r.result.http_status,
                        storable(r.result.reason[:500]),
                    )
                    for r in records
                ],
            )
            db.executemany(
                "UPDATE events SET state = ?, attempts = ?, next_attempt_at = ?,"
                " sent_at = CASE WHEN ? = 'sent' THEN ? ELSE sent_at END WHERE seq = ?",
                [
                    (r.state, r.attempt, r.next_attempt_at, r.state, r.at, r.claim.seq)
                    for r in records
                ],
            )

    def _hold(self, batch: list[AttemptRecord], why: str) -> None:
        """The database cannot take writes (a full disk): keep the records in memory, and claim
        nothing more until it can (:attr:`writable`). A delivered event whose completion is not
        yet written would be sent again after a restart; holding new claims bounds those to the
        ones already in flight. A timer tries the write again every second."""
        self._completions[:0] = batch
        if not self._failing:
            log.error(
                "cannot record %d attempts: %s; deliveries paused until it can", len(batch), why
            )
        self._failing = True
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        if self._retry_timer is None:
            self._retry_timer = loop.call_later(RETRY_SECONDS, self._retry)

    def _retry(self) -> None:
        self._retry_timer = None
        self._flush_completions()

    @property
    def poll_interval(self) -> float | None:
        return None  # one process: every insert, completion and release is seen here

    @property
    def writable(self) -> bool:
        return not self._failing

    @property
    def unwritten(self) -> int:
        return len(self._completions)

    async def written(self, *, hurry: bool = True, batch: int | None = None) -> None:
        self.flush_now()  # a local write: batching it would save little

    def flush_now(self) -> None:
        """Write buffered completions before a read, so this process reads its own writes."""
        if self._completions and not self._failing:
            self._flush_completions()

    def shutdown(self) -> None:
        for timer in (self._flush_timer, self._retry_timer):
            if timer is not None:
                timer.cancel()
        self._flush_timer = self._retry_timer = None
        self._failing = False
        self._flush_completions()
        if self._completions:
            log.error(
                "%d attempts could not be written: those events will be delivered again on the "
                "next start (at-least-once)",
                len(self._completions),
            )
            self._completions = []

    # -- claims --------------------------------------------------------------------------------

    def _gates(
        self, now: float, accounts: Sequence[str] | None, cap: int | None
    ) -> tuple[Callable[[str], int | None], Callable[[str], Admission]]:
        """The scheduler's cap and admission for one of the two claim scopes."""
        if accounts is not None:
            only = set(accounts)
            return (lambda account: cap), (lambda a: "yes" if a in only else "no")

        def stored_cap(account: str) -> int | None:
            return self._stored.get(account, (False, None))[1] or DEFAULT_MAX_IN_FLIGHT

        def admit(account: str) -> Admission:
            if not self._stored.get(account, (False, None))[0]:
                return "no"
            breaker = self._breakers.get(account)
            return "yes" if breaker is None else admits(breaker, now)

        return stored_cap, admit

    async def claim(
        self,
        now: float,
        limit: int,
        lease: float,
        *,
        accounts: Sequence[str] | None = None,
        cap: int | None = None,
        chain: int = 1,
    ) -> list[Claim]:
        # One event per claim, whatever ``chain``: a claim here is a call, not a round trip.
        if self._failing:
            return []
        cap_of, admit = self._gates(now, accounts, cap)
        taken = self._scheduler.take_due(now, limit, cap=cap_of, admit=admit)
        if accounts is None:
            for account in {e.account for e in taken}:
                breaker = self._breakers.get(account)
                if breaker is not None and breaker.state != "closed":
                    await self.set_breaker(account, probing(breaker, now, lease))
        return [
            Claim(e.seq, e.event_id, e.validation_id, e.body, e.attempts, "", e.account)
            for e in taken
        ]

    async def release(self, claims: Sequence[Claim]) -> None:
        for claim in claims:
            self._scheduler.release(claim.event_id)
        if claims:
            self._wake.set()

    async def next_due(
        self, now: float, *, accounts: Sequence[str] | None = None, cap: int | None = None
    ) -> float | None:
        if self._failing:
            return None
        cap_of, admit = self._gates(now, accounts, cap)
        due = self._scheduler.next_due(cap=cap_of, admit=admit, at=now)
        if accounts is None:
            # An open breaker's next probe is due work too.
            probes = [
                b.probe_at
                for a, b in self._breakers.items()
                if b.state != "closed"
                and b.probe_at is not None
                and self._scheduler.accounts().get(a)
            ]
            due = min([d for d in (due, *probes) if d is not None], default=None)
        return due

    async def wait_for_work(self, timeout: float) -> None:
        if not self._wake.is_set():
            with suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)
        self._wake.clear()

    async def requeue(self, event_id: str, now: float, *, account: str | None = None) -> Requeued:
        self.flush_now()
        row = await self.event(event_id, account=account)
        if row is None:
            return "unknown"
        if event_id in self._scheduler:
            return "queued"
        with writing(self._db) as db:
            changed = db.execute(
                "UPDATE events SET state = 'pending', next_attempt_at = ?"
                " WHERE event_id = ? AND state IN ('sent', 'failed')",
                (now, event_id),
            ).rowcount
        if changed != 1:
            return "unknown" if await self.event(event_id) is None else "queued"
        self._scheduler.add(
            row.seq, event_id, row.validation_id, now, row.body.encode(), row.attempts, row.account
        )
        self._wake.set()
        return "requeued"

    # -- reads ---------------------------------------------------------------------------------

    async def event(self, event_id: str, *, account: str | None = None) -> EventRow | None:
        self.flush_now()
        rows = read(
            self._db,
            f"SELECT {EVENT_COLUMNS} FROM events WHERE event_id = ? AND (? IS NULL OR account = ?)",
            (event_id, account, account),
        )
        return EventRow(*rows[0]) if rows else None

    async def attempts(self, event_id: str) -> list[AttemptRow]:
        return (await self.attempts_of([event_id]))[event_id]

    async def attempts_of(self, event_ids: Sequence[str]) -> dict[str, list[AttemptRow]]:
        self.flush_now()
        found: dict[str, list[AttemptRow]] = {event_id: [] for event_id in event_ids}
        for start in range(0, len(event_ids), 500):  # SQLite's bound-parameter limit
            chunk = event_ids[start : start + 500]
            marks = ", ".join("?" * len(chunk))
            for event_id, *row in read(
                self._db,
                f"SELECT e.event_id, {ATTEMPT_COLUMNS} FROM attempts AS a"
                f" JOIN events AS e ON e.seq = a.seq WHERE e.event_id IN ({marks})"
                " ORDER BY a.seq, a.attempt, a.id",
                chunk,
            ):
                found[event_id].append(AttemptRow(*row))
        return found

    async def events(
        self, where: EventFilter, *, after_seq: int = 0, limit: int = 100
    ) -> list[EventRow]:
        self.flush_now()
        clauses: list[str] = ["seq > ?"]
        params: list[object] = [after_seq]
        if where.sent is True:
            clauses.append("state = 'sent'")
        elif where.sent is False:
            clauses.append("state != 'sent'")
        for column, value in (
            ("account", where.account),
            ("status", where.status),
            ("validation_id", where.validation_id),
            ("state", where.state),
        ):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        if where.since is not None:
            clauses.append("created_at >= ?")
            params.append(where.since)
        if where.until is not None:
            clauses.append("created_at < ?")
            params.append(where.until)
        params.append(limit)
        rows = read(
            self._db,
            f"SELECT {EVENT_COLUMNS} FROM events WHERE {' AND '.join(clauses)}"
            " ORDER BY seq LIMIT ?",
            params,
        )
        return [EventRow(*row) for row in rows]

    async def validations_by_sent(
        self, sent: bool, *, after: str = "", limit: int = 100, account: str | None = None
    ) -> list[ValidationSummary]:
        self.flush_now()
        having = "SUM(state != 'sent') = 0" if sent else "SUM(state != 'sent') > 0"
        rows = read(
            self._db,
            "SELECT validation_id, COUNT(*), SUM(state = 'sent'), SUM(state != 'sent')"
            " FROM events WHERE validation_id > ? AND (? IS NULL OR account = ?)"
            f" GROUP BY validation_id HAVING {having} ORDER BY validation_id LIMIT ?",
            (after, account, account, limit),
        )
        return [ValidationSummary(*row) for row in rows]

    async def counts(self, *, account: str | None = None) -> dict[str, int]:
        self.flush_now()
        return dict(
            read(
                self._db,
                "SELECT state, COUNT(*) FROM events WHERE ? IS NULL OR account = ? GROUP BY state",
                (account, account),
            )
        )

    async def queue_stats(self, now: float) -> list[QueueStat]:
        self.flush_now()
        rows = read(
            self._db,
            "SELECT account, COUNT(*), MIN(created_at) FROM events"
            " WHERE state = 'pending' OR state = 'retrying' GROUP BY account",
        )
        return [
            QueueStat(account, depth, max(0.0, now - oldest)) for account, depth, oldest in rows
        ]

    async def breaker(self, account: str) -> Breaker:
        return self._breakers.get(account, Breaker())

    async def set_breaker(self, account: str, breaker: Breaker) -> None:
        with writing(self._db) as db:
            db.execute(
                "INSERT INTO breakers (account, state, since, reason, failures, pause, probe_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (account) DO UPDATE SET"
                " state = excluded.state, since = excluded.since, reason = excluded.reason,"
                " failures = excluded.failures, pause = excluded.pause,"
                " probe_at = excluded.probe_at",
                (
                    account,
                    breaker.state,
                    breaker.since,
                    storable(breaker.reason),
                    breaker.failures,
                    breaker.pause,
                    breaker.probe_at,
                ),
            )
        self._breakers[account] = breaker
        self._wake.set()

    async def outstanding(self) -> int:
        return len(self._scheduler)
