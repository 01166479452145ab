"""The delivery queue on PostgreSQL, shared by any number of worker processes.

Every operation on the delivery path is one round trip per batch: inserts are batched per
event-loop turn (arrays, ``unnest``); a claim fetches many heads and carries the completions
buffered since the last one (a server-side routine, :data:`CLAIM_ROUTINE`), and completions that
no claim carries are written by a timer. A claim reads each account's first due heads in index
order, so its work does not grow with the backlog. Idle workers are woken by ``NOTIFY``, sent
after the insert commits (never inside it, so a slow listener cannot hold the insert's locks).
Statements that wait for a head's lock (inserts, completions) lock heads in ``validation_id``
order, and claims skip locked heads rather than wait: no two batches deadlock.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import logging
import secrets
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager, suppress
from typing import Any

import asyncpg
import orjson

from webhook_kit.delivery.breaker import Breaker
from webhook_kit.errors import DuplicateEvent, StoreError
from webhook_kit.storage.base import Requeued
from webhook_kit.storage.postgres.errors import (
    CALL_DEADLINE,
    bounded_call,
    translated,
    unanswered,
)
from webhook_kit.storage.rows import (
    DEFAULT_MAX_IN_FLIGHT,
    AttemptRecord,
    AttemptRow,
    Claim,
    EventFilter,
    EventRow,
    NewEvent,
    Next,
    QueueStat,
    ValidationSummary,
    storable,
)

log = logging.getLogger("webhook_kit.storage")

Clock = Callable[[], float]
PROBE_CHECK_SECONDS = 1.0
#: Other workers' completions and expired leases are not announced: look this often.
POLL_SECONDS = 1.0
#: Completions wait at most this long to be written, chains' included; under load they ride on
#: the next claim sooner, so this is the pace of the write only when no claim comes.
FLUSH_SECONDS = 0.05
#: While a chain waits for completions (:meth:`PostgresEvents.written` without ``hurry``), they
#: are written once this many are buffered (or what the caller's ``batch`` says, if fewer), else
#: by the timer: batches big enough that a worker's writes stay few per delivery, soon enough
#: that its chains keep moving (the slots send other heads meanwhile; a validation's statuses are
#: normally minutes apart, so only a backlog's chains wait at all). A round trip costs the worker
#: and its backend about the same whatever it carries, and every worker pays its own: 16 (and a
#: 20 ms timer) made twice the round trips per delivery with 4 workers (bench_workers,
#: 2026-12-02).
CHAIN_BATCH = 64
FLUSH_SIZE = 512
#: The longest pause between tries to write held completions: short, because claims wait for
#: them (a database that is back should not sit unused for half a minute).
RETRY_MAX = 2.0
#: Seconds between attempts to listen again after the listening connection was lost.
LISTEN_RETRY = 5.0

EVENT_COLUMNS = (
    "seq, event_id, validation_id, status, body, state, created_at, next_attempt_at, sent_at, "
    "attempts, account"
)

INSERT = """
WITH new AS (
    INSERT INTO events
        (event_id, validation_id, status, body, state, created_at, next_attempt_at, account)
    SELECT e, v, s, b, 'pending', $5, $5, a
    FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $6::text[])
        WITH ORDINALITY AS t(e, v, s, b, a, n)
    ORDER BY n
    RETURNING validation_id, account
)
INSERT INTO heads AS h (validation_id, pending, due, account)
SELECT validation_id, count(*), $5, min(account) FROM new
GROUP BY validation_id ORDER BY validation_id
ON CONFLICT (validation_id) DO UPDATE
SET pending = h.pending + excluded.pending,
    due = CASE WHEN h.pending = 0 THEN excluded.due ELSE h.due END,
    version = h.version + 1
"""

# Accounts take turns: each account's due heads are ranked, rank 1 of every account comes
# before rank 2 of any, and an account gets no more than its cap minus what it has in flight.
# $5: only these accounts (a fixed target; NULL: every account with enabled settings),
# $6: their cap (NULL: none), $7: the cap for settings without one, $8: accounts to probe.
CLAIM = """
WITH RECURSIVE waiting(account) AS (
    -- The accounts with pending heads, one index probe each (a skip scan of heads_ready): the
    -- work of a claim grows with the accounts that have work, not with every account.
    (SELECT account FROM heads WHERE pending > 0 ORDER BY account LIMIT 1)
    UNION ALL
    SELECT (SELECT h.account FROM heads AS h WHERE h.pending > 0 AND h.account > w.account
            ORDER BY h.account LIMIT 1)
    FROM waiting AS w WHERE w.account IS NOT NULL
), accounts AS MATERIALIZED (
    -- Who may send now: a fixed target's accounts, or every account with work and enabled
    -- settings whose breaker is closed or which is to be probed; and how many more heads each
    -- may hold (NULL: no cap, and nothing to count).
    SELECT a.account,
           CASE WHEN a.account = ANY($8::text[]) THEN 1 - busy.n
                WHEN a.cap IS NOT NULL THEN a.cap - busy.n END AS room
    FROM (
        SELECT DISTINCT t.account, $6::int AS cap FROM unnest($5::text[]) AS t(account)
        UNION ALL
        SELECT s.account, coalesce(s.max_in_flight, $7::int)
        FROM waiting AS w JOIN account_settings AS s ON s.account = w.account
        LEFT JOIN breakers AS k ON k.account = s.account
        WHERE $5::text[] IS NULL AND s.enabled
          AND (k.state IS NULL OR k.state = 'closed' OR s.account = ANY($8::text[]))
    ) AS a
    LEFT JOIN LATERAL (
        SELECT count(*) AS n FROM heads AS b WHERE b.account = a.account
        AND b.lease_token IS NOT NULL AND b.lease_until > $1
        AND (a.cap IS NOT NULL OR a.account = ANY($8::text[]))
    ) AS busy ON true
), candidates AS (
    -- Each account's earliest due heads, at most its room, read in index order: the work of
    -- this step grows with the accounts that may send, not with the backlog, nor with the heads
    -- that workers hold (free heads and run-out leases come from indexes of their own; the
    -- busy count above still reads an account's live leases, at most its cap). Up to twice
    -- what the claim takes: other workers are claiming the first ones at the same moment, and
    -- a claim that finds them taken goes on to the next. One limit over both kinds: the room
    -- is the account's, whichever index a head comes from.
    SELECT h.validation_id, h.account, h.due, h.version, a.room
    FROM accounts AS a CROSS JOIN LATERAL (
        SELECT * FROM (
            (SELECT validation_id, account, due, version FROM heads
             WHERE account = a.account AND pending > 0 AND lease_token IS NULL AND due <= $1
             ORDER BY due
             LIMIT greatest(least(a.room, 2 * $2), 0))
            UNION ALL
            -- A dead worker's leases end together: among them, the earliest due first.
            (SELECT validation_id, account, due, version FROM heads
             WHERE account = a.account AND lease_token IS NOT NULL AND lease_until <= $1
               AND pending > 0 AND due <= $1
             ORDER BY lease_until, due
             LIMIT greatest(least(a.room, 2 * $2), 0))
        ) AS due_heads
        ORDER BY due
        LIMIT greatest(least(a.room, 2 * $2), 0)
    ) AS h
    WHERE a.room IS NULL OR a.room > 0
), chosen AS (
    SELECT c.validation_id, c.due, c.version,
           row_number() OVER (PARTITION BY c.account ORDER BY c.due) AS rank
    FROM candidates AS c
), picked AS (
    -- Locked rows are rechecked as they are now: a head that another worker claimed or
    -- completed since this statement's snapshot has a new version and is left alone, for the
    -- events read below are as of that snapshot. Skipped rows do not count toward the limit.
    SELECT h.validation_id FROM heads AS h JOIN chosen AS c ON c.validation_id = h.validation_id
    WHERE h.lease_until <= $1 AND h.version = c.version
    ORDER BY c.rank, c.due LIMIT $2
    FOR UPDATE OF h SKIP LOCKED
), leased AS (
    UPDATE heads AS h SET lease_until = $1 + $3, lease_token = $4, version = h.version + 1
    FROM picked WHERE h.validation_id = picked.validation_id
    RETURNING h.validation_id, h.account
)
SELECT l.validation_id, e.seq, e.event_id, e.body, e.attempts, l.account, e.next_attempt_at
FROM leased AS l JOIN chosen AS c ON c.validation_id = l.validation_id
LEFT JOIN LATERAL (
    SELECT seq, event_id, body, attempts, next_attempt_at FROM events
    WHERE validation_id = l.validation_id AND state IN ('pending', 'retrying')
    ORDER BY seq LIMIT $10
) AS e ON true
ORDER BY c.rank, c.due, l.validation_id, e.seq
"""

# A completion moves the event and its head on only while the head is still leased to the
# claim (the fencing token): a worker whose lease expired records its attempt, nothing more.
# The heads are locked first (in one order), so that a claim committing meanwhile fences the
# completion off whole, its event included. Only an event still to deliver, and not already
# moved by this attempt, moves; the head counts only the events that moved: a batch written
# twice (its first write's answer was lost) changes nothing the second time, even while a
# chain keeps its lease or after the event was queued again. A chain's completions in one batch
# move their head once: the last of them (by seq) says when it is due next and whether the
# chain keeps the lease.
# Completions travel as one JSON document ($9 of the claim routine): one parameter, where
# eleven arrays cost the driver more to encode than the statement costs the server.
COMPLETE = """
WITH input AS (
    SELECT * FROM json_to_recordset($9::json) AS t(
        seq bigint, validation_id text, token text, attempt int, at float8, duration_ms float8,
        outcome text, http_status int, reason text, state text, next_at float8, keep bool)
), recorded AS (
    INSERT INTO attempts (seq, attempt, at, duration_ms, outcome, http_status, reason)
    SELECT seq, attempt, at, duration_ms, outcome, http_status, reason FROM input
), claims AS (
    SELECT validation_id, token, (array_agg(keep ORDER BY seq DESC))[1] AS keep
    FROM input GROUP BY validation_id, token
), locked AS (
    -- By primary key (a join here would read every leased head); a head leased to a token
    -- of another of the batch's claims is dropped below.
    SELECT validation_id, lease_token FROM heads
    WHERE validation_id = ANY (ARRAY(SELECT validation_id FROM claims))
      AND coalesce(lease_token, '') = ANY (ARRAY(SELECT token FROM claims))
    ORDER BY validation_id
    FOR UPDATE
), owned AS MATERIALIZED (
    SELECT c.validation_id, c.token, c.keep
    FROM claims AS c JOIN locked AS l
        ON l.validation_id = c.validation_id AND l.lease_token = c.token
), moved AS (
    UPDATE events AS e
    SET state = i.state, attempts = i.attempt, next_attempt_at = i.next_at,
        sent_at = CASE WHEN i.state = 'sent' THEN i.at ELSE e.sent_at END
    FROM input AS i JOIN owned AS o ON o.validation_id = i.validation_id AND o.token = i.token
    WHERE e.seq = i.seq AND e.state IN ('pending', 'retrying') AND e.attempts < i.attempt
    RETURNING i.validation_id, i.seq, i.state, i.at, i.next_at
), heads_moved AS MATERIALIZED (
    -- Each owned head once, with what moved of it (one group, rather than a join that would
    -- scan the moved events once per head).
    SELECT validation_id, bool_or(keep) AS keep,
           count(*) FILTER (WHERE state IN ('sent', 'failed')) AS done,
           (array_agg(CASE WHEN state IN ('sent', 'failed') THEN at ELSE next_at END
                      ORDER BY seq DESC) FILTER (WHERE seq IS NOT NULL))[1] AS due
    FROM (
        SELECT validation_id, keep, NULL::text AS state, NULL::float8 AS at,
               NULL::float8 AS next_at, NULL::bigint AS seq
        FROM owned
        UNION ALL
        SELECT validation_id, NULL, state, at, next_at, seq FROM moved
    ) AS both_
    GROUP BY validation_id
)
UPDATE heads AS h
SET pending = h.pending - m.done, due = coalesce(m.due, h.due),
    lease_until = CASE WHEN m.keep THEN h.lease_until ELSE 0 END,
    lease_token = CASE WHEN m.keep THEN h.lease_token END,
    version = h.version + 1
FROM heads_moved AS m
WHERE h.validation_id = m.validation_id
"""


def _claim_routine() -> tuple[str, str]:
    """A server-side function that writes completions, then claims (if its limit is not 0), in
    one round trip.

    Two statements, so the claim sees the heads that the completions freed (one statement would
    see them as of its start). Its name carries a digest of its text: builds that differ install
    and call their own, side by side.
    """
    body = (
        "BEGIN\n"
        f"IF $9 IS NOT NULL THEN\n{COMPLETE};\nEND IF;\n"
        f"IF $2 > 0 THEN\nRETURN QUERY {CLAIM};\nEND IF;\nEND"
    )
    definition = (
        "(float8, int, float8, text, text[], int, int, text[], json, int)"
        " RETURNS TABLE (o_validation_id text, o_seq bigint, o_event_id text, o_body text,"
        " o_attempts int, o_account text, o_due float8) LANGUAGE plpgsql"
        # Its plans are generic (a claim's limits are parameters): without these, once the
        # tables grow, the planner may read an account's every due head and sort them, instead
        # of walking heads_free in order and stopping, or join completions to every head.
        " SET enable_bitmapscan = off SET enable_seqscan = off"
        f" AS $routine$\n{body}\n$routine$"
    )
    name = "webhook_kit_claim_" + hashlib.sha256(definition.encode()).hexdigest()[:12]
    ddl = f"CREATE FUNCTION {name}{definition}"
    return name, ddl


#: (name, definition) of the claim routine, installed by :func:`~.migrations.migrate`.
CLAIM_ROUTINE = _claim_routine()
#: A claim that carries completions ($9, or NULL), and a write of completions alone.
CLAIM_CALL = f"SELECT * FROM {CLAIM_ROUTINE[0]}($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
WRITE_CALL = (
    f"SELECT count(*) FROM {CLAIM_ROUTINE[0]}(0, 0, 0, NULL, NULL, NULL, NULL, NULL, $1, 1)"
)

# When the earliest head that a claim could take is due: leased heads when their lease ends,
# accounts at their cap and behind an open breaker left out (but a breaker's next probe).
NEXT_DUE = """
WITH busy AS (
    SELECT account, count(*) AS n FROM heads
    WHERE lease_token IS NOT NULL AND lease_until > $2 GROUP BY account
)
SELECT min(t) FROM (
    SELECT greatest(h.due, h.lease_until) AS t
    FROM heads AS h
    LEFT JOIN account_settings AS s ON s.account = h.account
    LEFT JOIN breakers AS k ON k.account = h.account
    LEFT JOIN busy AS b ON b.account = h.account
    WHERE h.pending > 0
      AND CASE WHEN $1::text[] IS NOT NULL THEN h.account = ANY($1::text[])
               ELSE coalesce(s.enabled, false) AND (k.state IS NULL OR k.state = 'closed')
                    AND coalesce(b.n, 0) < coalesce(s.max_in_flight, $3::int)
          END
    UNION ALL
    SELECT k.probe_at FROM breakers AS k
    WHERE $1::text[] IS NULL AND k.state <> 'closed' AND k.probe_at IS NOT NULL
      AND EXISTS (SELECT 1 FROM heads AS h WHERE h.account = k.account AND h.pending > 0)
) AS due_times
"""

PROBE = """
UPDATE breakers AS k SET state = 'half_open', since = $1, probe_at = $1 + $2
WHERE k.state <> 'closed' AND k.probe_at <= $1
  AND EXISTS (
      SELECT 1 FROM heads AS h WHERE h.account = k.account AND h.pending > 0 AND h.due <= $1
  )
RETURNING k.account
"""

BREAKER_COLUMNS = "state, since, reason, failures, pause, probe_at"

RELEASE = """
UPDATE heads SET lease_until = 0, lease_token = NULL, version = version + 1
WHERE validation_id = ANY($1::text[]) AND lease_token = ANY($2::text[])
"""

REQUEUE = """
WITH again AS (
    UPDATE events SET state = 'pending', next_attempt_at = $2
    WHERE event_id = $1 AND state IN ('sent', 'failed') AND ($3::text IS NULL OR account = $3)
    RETURNING validation_id, account
)
INSERT INTO heads AS h (validation_id, pending, due, account)
SELECT validation_id, 1, $2, account FROM again
ON CONFLICT (validation_id) DO UPDATE
SET pending = h.pending + 1, due = CASE WHEN h.pending = 0 THEN excluded.due ELSE h.due END,
    version = h.version + 1
RETURNING validation_id
"""


class PostgresEvents:
    """See :class:`~webhook_kit.storage.base.EventStore`."""

    def __init__(self, pool: asyncpg.Pool, channel: str, clock: Clock) -> None:
        self._pool = pool
        self._channel = channel
        self._clock = clock
        self._inserts: list[tuple[Sequence[NewEvent], asyncio.Future[None]]] = []
        self._completions: list[AttemptRecord] = []
        #: Who waits for the buffered completions to be written (readers flushing), and for each
        #: batch being written (by the timer's write or carried by a claim): resolved when it
        #: is written, or when writes fail.
        self._buffer_waiters: list[asyncio.Future[None]] = []
        self._transit: dict[int, list[asyncio.Future[None]]] = {}
        self._batches = itertools.count()
        self._flush_timer: asyncio.TimerHandle | None = None
        self._flushing: asyncio.Task[None] | None = None
        self._failing = False
        self._wake = asyncio.Event()
        self._listener: Any = None
        self._connect: Callable[[], Any] | None = None
        self._listen_tried = 0.0
        self._tasks: set[asyncio.Task[Any]] = set()
        #: Tokens of claims that failed in flight (committed or not: unknown).
        self._orphans: set[str] = set()
        #: Claims whose release failed (the database was away): released on the next claim.
        self._unreleased: list[Claim] = []
        self._write_lock = asyncio.Lock()
        #: A reader waits for the buffered completions: write them at once, not in a batch.
        self._hurry = False
        #: How many buffered completions make a write go while chains wait for them.
        self._chain_batch = CHAIN_BATCH
        self._in_transit = 0
        self._next_probe_check = 0.0

    # -- wake-ups ------------------------------------------------------------------------------

    async def listen(self, connect: Callable[[], Any]) -> None:
        """Hold a connection that LISTENs for new work (best effort: polling covers a gap)."""
        self._connect = connect
        self._listen_tried = time.monotonic()
        try:
            self._listener = await connect()
            await self._listener.add_listener(self._channel, self._notified)
        except Exception as exc:  # the dispatcher polls meanwhile
            log.warning("cannot listen for new work (%s): polling instead", exc)
            self._listener = None

    def _notified(self, *_: object) -> None:
        self._wake.set()

    async def notify(self) -> None:
        with suppress(StoreError):
            async with translated("cannot announce new work"):
                await self._pool.execute("SELECT pg_notify($1, '')", self._channel)

    async def wait_for_work(self, timeout: float) -> None:
        if self._listener is not None and self._listener.is_closed():
            self._listener = None  # gone with the server: polling until it listens again
        if (
            self._listener is None
            and self._connect is not None
            and time.monotonic() - self._listen_tried > LISTEN_RETRY
        ):
            await self.listen(self._connect)
        if not self._wake.is_set():
            with suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)
        self._wake.clear()

    # -- inserts -------------------------------------------------------------------------------

    async def insert(self, events: Sequence[NewEvent]) -> None:
        if not events:
            return
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._inserts.append((events, future))
        if len(self._inserts) == 1:
            loop.call_soon(self._spawn, self._flush_inserts())
        await future

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _flush_inserts(self) -> None:
        batch, self._inserts = self._inserts, []
        now = self._clock()
        try:
            await self._insert_rows([e for events, _ in batch for e in events], now)
            outcomes: list[BaseException | None] = [None] * len(batch)
        except DuplicateEvent:
            # One call's repeated event id must not fail the others: each call on its own.
            outcomes = []
            for events, _ in batch:
                try:
                    await self._insert_rows(events, now)
                    outcomes.append(None)
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
        if any(outcome is None for outcome in outcomes):
            self._wake.set()
            await self.notify()

    async def _insert_rows(self, events: Sequence[NewEvent], now: float) -> None:
        async with translated("cannot store the events"):
            await self._pool.execute(
                INSERT,
                [e.event_id for e in events],
                [e.validation_id for e in events],
                [e.status for e in events],
                [e.body for e in events],
                now,
                [e.account for e in events],
            )

    async def insert_in(self, conn: Any, event: NewEvent, now: float) -> None:
        """Insert one event inside the caller's transaction (the provider's records)."""
        await conn.execute(
            INSERT,
            [event.event_id],
            [event.validation_id],
            [event.status],
            [event.body],
            now,
            [event.account],
        )

    async def inserted(self) -> None:
        """The caller's transaction that ran :meth:`insert_in` committed: wake the workers."""
        self._wake.set()
        await self.notify()

    # -- claims and completions ----------------------------------------------------------------

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
        # One batch of completions in transit at a time (the lock), so that a chain's are
        # written in the order they were made. Those buffered now ride on the claim (one round
        # trip for both); a batch being written is waited for: the claim sees it.
        async with self._write_lock:
            if self._failing:
                return []
            return await self._claim(now, limit, lease, accounts, cap, chain)

    async def _claim(
        self,
        now: float,
        limit: int,
        lease: float,
        accounts: Sequence[str] | None,
        cap: int | None,
        chain: int,
    ) -> list[Claim]:
        probes = await self._probes(now, lease) if accounts is None else []
        if self._unreleased:
            held, self._unreleased = self._unreleased, []
            await self._give_back(held)  # on failure, it keeps them for the next try
        if self._orphans:
            # Claims whose answer was lost with the connection may have been committed: give
            # them back now, rather than leave their events waiting for the lease to expire.
            async with translated("cannot give back lost claims"):
                await self._pool.execute(
                    "UPDATE heads SET lease_until = 0, lease_token = NULL, version = version + 1"
                    " WHERE lease_token = ANY($1::text[])",
                    sorted(self._orphans),
                )
            self._orphans.clear()
        if self._failing:  # a write failed meanwhile: the batch it put back is its to retry
            return []
        token = secrets.token_hex(8)
        done, batch = self._take() if self._completions else ([], None)
        try:
            async with translated("cannot claim work"):
                rows = await self._pool.fetch(
                    CLAIM_CALL,
                    now,
                    limit,
                    lease,
                    token,
                    None if accounts is None else list(accounts),
                    cap,
                    DEFAULT_MAX_IN_FLIGHT,
                    probes,
                    _document(done) if done else None,
                    max(chain, 1),
                )
        except BaseException:  # a database error, or this task cancelled (stopping)
            self._orphans.add(token)
            if batch is not None:  # written or not: unknown; the write loop tries them (again)
                self._returned(done, batch)
                self._start_flush()
            raise
        if batch is not None:
            self._settled(batch, done)
        claims: list[Claim] = []
        empty: list[str] = []
        # A head's rows come together, its first pending event first.
        for validation_id, group in itertools.groupby(rows, key=lambda row: row[0]):
            (_, seq, event_id, body, attempts, account, _), *later = group
            if seq is None:
                empty.append(validation_id)
                continue
            rest: list[Next] = []
            for row in later:
                if row[6] > now:  # a retry waits for its own time, and what follows it waits too
                    break
                rest.append(Next(row[1], row[2], row[3].encode(), row[4]))
            claims.append(
                Claim(
                    seq,
                    event_id,
                    validation_id,
                    body.encode(),
                    attempts,
                    token,
                    account,
                    tuple(rest),
                )
            )
        if empty:
            # A head whose count says pending but whose events do not (it should not happen):
            # count them again, as of now, and give the head back.
            log.error("%d heads had no pending event: counting them again", len(empty))
            async with translated("cannot repair a head"):
                await self._pool.execute(
                    "UPDATE heads AS h SET lease_until = 0, lease_token = NULL,"
                    " version = h.version + 1, pending = (SELECT count(*) FROM events AS e"
                    " WHERE e.validation_id = h.validation_id"
                    " AND e.state IN ('pending', 'retrying'))"
                    " WHERE h.validation_id = ANY($1::text[]) AND h.lease_token = $2",
                    empty,
                    token,
                )
        return claims

    def complete(self, record: AttemptRecord) -> None:
        self._completions.append(record)
        if len(self._completions) >= self._batch_size:
            self._start_flush()
        elif not self._failing:
            self._flush_within(FLUSH_SECONDS)

    @property
    def _batch_size(self) -> int:
        """Buffered completions that make a write go at once: fewer while a chain waits."""
        return self._chain_batch if self._buffer_waiters else FLUSH_SIZE

    def _flush_within(self, seconds: float) -> None:
        """Write the buffered completions within ``seconds`` (or sooner, if a timer says so)."""
        loop = asyncio.get_running_loop()
        due = loop.time() + seconds
        if self._flush_timer is not None:
            if self._flush_timer.when() <= due:
                return
            self._flush_timer.cancel()
        self._flush_timer = loop.call_at(due, self._start_flush)

    def _start_flush(self) -> None:
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.ensure_future(self._flush_loop())

    async def _flush_loop(self) -> None:
        """Write the buffered completions (again and again while a full batch is waiting);
        while the database is down, keep them and claim nothing more (:attr:`writable`),
        trying again with a growing pause.

        Those that arrive during a write wait for their own timer or the next claim, which
        carries them: writing them at once, under load, would keep a write always running
        beside the claims."""
        pause = 0.25
        while self._completions:
            async with self._write_lock:
                if not self._completions:  # a claim carried them meanwhile
                    break
                try:
                    await self._write_buffered()
                    failure = None
                except StoreError as exc:
                    failure = exc
            if failure is not None:
                if not self._failing:
                    log.error(
                        "cannot record %d attempts (%s): deliveries paused until it can",
                        len(self._completions),
                        failure,
                    )
                self._failing = True
                self._release_waiters()
                await asyncio.sleep(pause)
                pause = min(pause * 2, RETRY_MAX)
                continue
            if self._failing:
                self._failing = False
                log.warning("the database takes writes again: deliveries resume")
                self._wake.set()
            if not self._hurry and len(self._completions) < self._batch_size:
                break
        if self._completions:
            self._flush_within(FLUSH_SECONDS)

    async def _write_buffered(self) -> None:
        """Write the buffered completions as one batch (under the write lock); on any error
        they go back to the front of the buffer."""
        records, batch = self._take()
        try:
            await self._write(records)
        except BaseException:  # a database error, stopping, or a bug
            self._returned(records, batch)
            raise
        self._settled(batch, records)

    async def _write(self, records: Sequence[AttemptRecord]) -> None:
        async with translated("cannot record attempts"):
            await self._pool.execute(WRITE_CALL, _document(records))

    def _take(self) -> tuple[list[AttemptRecord], int]:
        """The buffered completions as a batch in transit; their waiters go with them."""
        records, self._completions = self._completions, []
        self._hurry = False  # whoever hurried is in this batch
        batch = next(self._batches)
        self._transit[batch], self._buffer_waiters = self._buffer_waiters, []
        self._in_transit += len(records)
        return records, batch

    def _settled(self, batch: int, records: Sequence[AttemptRecord]) -> None:
        self._in_transit -= len(records)
        _resolve(self._transit.pop(batch, []))

    def _returned(self, records: list[AttemptRecord], batch: int) -> None:
        """A batch whose write failed (or may have): back to the front of the buffer."""
        self._in_transit -= len(records)
        self._completions[:0] = records
        self._buffer_waiters[:0] = self._transit.pop(batch, [])

    @property
    def unwritten(self) -> int:
        return len(self._completions) + self._in_transit

    async def written(self, *, hurry: bool = True, batch: int | None = None) -> None:
        if hurry:
            await self.flush()
            return
        if self._failing:
            return
        self._chain_batch = CHAIN_BATCH if batch is None else max(1, min(batch, CHAIN_BATCH))
        if self._completions:
            # Not now: with the next claim, a full batch, or the timer.
            self._flush_within(FLUSH_SECONDS)
            if len(self._completions) >= self._chain_batch:
                self._start_flush()
        await self._wait_written(buffered=True, hurry=False)

    def _release_waiters(self) -> None:
        """Writes fail: no one waits for them (a read then fails, or reads what is there)."""
        for waiters in (self._buffer_waiters, *self._transit.values()):
            _resolve(waiters)
            waiters.clear()

    async def _wait_written(self, *, buffered: bool, hurry: bool = True) -> None:
        """Wait until the batches being written now, and if ``buffered`` the completions
        buffered now, are written (or writes fail); not for those that come later. With
        ``hurry``, the buffered ones are written at once rather than with the next batch."""
        loop = asyncio.get_running_loop()
        waiting: list[asyncio.Future[None]] = []
        for waiters in self._transit.values():
            waiters.append(loop.create_future())
            waiting.append(waiters[-1])
        if buffered and self._completions:
            self._buffer_waiters.append(loop.create_future())
            waiting.append(self._buffer_waiters[-1])
            if hurry:
                self._hurry = True  # a write under way takes them next: a reader is waiting
                self._start_flush()
        if waiting:
            # Not cancelled with this caller: the writes go on.
            await asyncio.wait(waiting)

    async def flush(self) -> None:
        """Write the completions buffered now (before a read: this process reads its own
        writes), and wait for those being written; not for those that come later, which a
        reader would otherwise wait for as long as deliveries keep completing."""
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None
        if not self._failing:
            await self._wait_written(buffered=True)

    async def shutdown(self, timeout: float = 5.0) -> None:
        try:
            await asyncio.wait_for(self.flush(), timeout)
        except (TimeoutError, StoreError):
            pass
        if self._flushing is not None and not self._flushing.done():
            self._flushing.cancel()
            with suppress(BaseException):
                await self._flushing
        if self._completions:
            log.error(
                "%d attempts could not be written: those events will be delivered again when "
                "their leases expire (at-least-once)",
                len(self._completions),
            )
            self._completions = []
        for task in list(self._tasks):
            with suppress(BaseException):
                await task
        if self._listener is not None:
            with suppress(Exception):
                await self._listener.close()

    @property
    def poll_interval(self) -> float | None:
        return POLL_SECONDS

    @property
    def writable(self) -> bool:
        return not self._failing

    async def release(self, claims: Sequence[Claim]) -> None:
        if not claims:
            return
        async with self._write_lock:
            await self._give_back(claims)
        self._wake.set()

    async def _give_back(self, claims: Sequence[Claim]) -> None:
        """Release ``claims``, after writing the completions buffered now: a chain's head
        given back before them would fence them off, and their events would go again."""
        if self._completions:
            try:
                await self._write_buffered()
            except BaseException:
                self._unreleased.extend(claims)
                self._start_flush()
                raise
        try:
            async with translated("cannot give back claims"):
                await self._pool.execute(
                    RELEASE,
                    sorted({c.validation_id for c in claims}),
                    sorted({c.token for c in claims}),
                )
        except StoreError:
            # Given back once the database answers again, not left to their leases.
            self._unreleased.extend(claims)
            raise

    async def next_due(
        self, now: float, *, accounts: Sequence[str] | None = None, cap: int | None = None
    ) -> float | None:
        await self.flush()
        async with translated("cannot read the queue"):
            due = await self._pool.fetchval(
                NEXT_DUE, None if accounts is None else list(accounts), now, DEFAULT_MAX_IN_FLIGHT
            )
        return None if due is None else float(due)

    async def _probes(self, now: float, lease: float) -> list[str]:
        """Open breakers whose pause is over, and whose endpoint has work: one worker wins
        each, turns it half-open and sends the one probe."""
        if now < self._next_probe_check:
            return []
        self._next_probe_check = now + PROBE_CHECK_SECONDS
        async with translated("cannot read the breakers"):
            rows = await self._pool.fetch(PROBE, now, lease)
        return [r[0] for r in rows]

    @asynccontextmanager
    async def _read(self, what: str) -> AsyncIterator[Any]:
        """A connection for one read of the provider's API, within its deadline; this
        process's buffered completions are written first (it reads its own writes), within a
        deadline of their own."""
        # The flush first, with a connection of its own: held meanwhile, this one could be the
        # pool's last, which the flush's write waits for.
        try:
            async with asyncio.timeout(CALL_DEADLINE):
                await self.flush()
        except TimeoutError:
            raise unanswered(what, CALL_DEADLINE) from None
        async with bounded_call(self._pool, what) as conn:
            yield conn

    async def requeue(self, event_id: str, now: float, *, account: str | None = None) -> Requeued:
        async with self._read("cannot queue the event again") as conn:
            again = await conn.fetchval(REQUEUE, event_id, now, account)
            known = again is None and await conn.fetchval(
                "SELECT 1 FROM events WHERE event_id = $1 AND ($2::text IS NULL OR account = $2)",
                event_id,
                account,
            )
        if again is not None:
            # Announced once the connection is back in the pool: the notice takes one of its
            # own, and this one could have been the last.
            self._wake.set()
            await self.notify()
            return "requeued"
        return "queued" if known else "unknown"

    # -- reads ---------------------------------------------------------------------------------

    async def event(self, event_id: str, *, account: str | None = None) -> EventRow | None:
        async with self._read("cannot read the event") as conn:
            row = await conn.fetchrow(
                f"SELECT {EVENT_COLUMNS} FROM events"
                " WHERE event_id = $1 AND ($2::text IS NULL OR account = $2)",
                event_id,
                account,
            )
        return None if row is None else EventRow(*row)

    async def attempts(self, event_id: str) -> list[AttemptRow]:
        return (await self.attempts_of([event_id]))[event_id]

    async def attempts_of(self, event_ids: Sequence[str]) -> dict[str, list[AttemptRow]]:
        found: dict[str, list[AttemptRow]] = {event_id: [] for event_id in event_ids}
        async with self._read("cannot read the attempts") as conn:
            rows = await conn.fetch(
                "SELECT e.event_id, a.attempt, a.at, a.duration_ms, a.outcome, a.http_status,"
                " a.reason FROM attempts AS a JOIN events AS e ON e.seq = a.seq"
                " WHERE e.event_id = ANY($1::text[]) ORDER BY a.seq, a.attempt, a.id",
                list(event_ids),
            )
        for event_id, *row in rows:
            found[event_id].append(AttemptRow(*row))
        return found

    async def events(
        self, where: EventFilter, *, after_seq: int = 0, limit: int = 100
    ) -> list[EventRow]:
        clauses: list[str] = ["seq > $1"]
        params: list[object] = [after_seq]

        def add(clause: str, value: object) -> None:
            params.append(value)
            clauses.append(clause.replace("?", f"${len(params)}"))

        if where.sent is True:
            clauses.append("state = 'sent'")
        elif where.sent is False:
            clauses.append("state <> 'sent'")
        for column, value in (
            ("account", where.account),
            ("status", where.status),
            ("validation_id", where.validation_id),
            ("state", where.state),
        ):
            if value is not None:
                add(f"{column} = ?", value)
        if where.since is not None:
            add("created_at >= ?", where.since)
        if where.until is not None:
            add("created_at < ?", where.until)
        params.append(limit)
        async with self._read("cannot read the events") as conn:
            rows = await conn.fetch(
                f"SELECT {EVENT_COLUMNS} FROM events WHERE {' AND '.join(clauses)}"
                f" ORDER BY seq LIMIT ${len(params)}",
                *params,
            )
        return [EventRow(*row) for row in rows]

    async def validations_by_sent(
        self, sent: bool, *, after: str = "", limit: int = 100, account: str | None = None
    ) -> list[ValidationSummary]:
        having = "count(*) FILTER (WHERE state <> 'sent') " + ("= 0" if sent else "> 0")
        async with self._read("cannot read the validations") as conn:
            rows = await conn.fetch(
                "SELECT validation_id, count(*), count(*) FILTER (WHERE state = 'sent'),"
                " count(*) FILTER (WHERE state <> 'sent') FROM events WHERE validation_id > $1"
                " AND ($3::text IS NULL OR account = $3)"
                f" GROUP BY validation_id HAVING {having} ORDER BY validation_id LIMIT $2",
                after,
                limit,
                account,
            )
        return [ValidationSummary(*row) for row in rows]

    async def counts(self, *, account: str | None = None) -> dict[str, int]:
        async with self._read("cannot count the events") as conn:
            rows = await conn.fetch(
                "SELECT state, count(*) FROM events WHERE $1::text IS NULL OR account = $1"
                " GROUP BY state",
                account,
            )
        return {state: count for state, count in rows}

    async def queue_stats(self, now: float) -> list[QueueStat]:
        async with self._read("cannot read the queue") as conn:
            # From the heads (each holds its validation's oldest undelivered event): no scan
            # of the events table, which keeps every event ever sent.
            rows = await conn.fetch(
                "SELECT h.account, sum(h.pending)::int, min(e.created_at) FROM heads AS h"
                " JOIN LATERAL (SELECT created_at FROM events"
                " WHERE validation_id = h.validation_id AND state IN ('pending', 'retrying')"
                " ORDER BY seq LIMIT 1) AS e ON true"
                " WHERE h.pending > 0 GROUP BY h.account"
            )
        return [QueueStat(a, n, max(0.0, now - oldest)) for a, n, oldest in rows]

    async def breaker(self, account: str) -> Breaker:
        async with bounded_call(self._pool, "cannot read the breaker") as conn:
            row = await conn.fetchrow(
                f"SELECT {BREAKER_COLUMNS} FROM breakers WHERE account = $1", account
            )
        return Breaker() if row is None else Breaker(*row)

    async def set_breaker(self, account: str, breaker: Breaker) -> None:
        async with translated("cannot save the breaker"):
            await self._pool.execute(
                f"INSERT INTO breakers (account, {BREAKER_COLUMNS})"
                " VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (account) DO UPDATE SET"
                " state = excluded.state, since = excluded.since, reason = excluded.reason,"
                " failures = excluded.failures, pause = excluded.pause,"
                " probe_at = excluded.probe_at",
                account,
                breaker.state,
                breaker.since,
                storable(breaker.reason),
                breaker.failures,
                breaker.pause,
                breaker.probe_at,
            )
        if breaker.state == "open":
            self._next_probe_check = 0.0

    async def outstanding(self) -> int:
        await self.flush()
        async with translated("cannot read the queue"):
            count = await self._pool.fetchval(
                "SELECT coalesce(sum(pending), 0) FROM heads WHERE pending > 0"
            )
        return int(count)


def _resolve(waiters: Sequence[asyncio.Future[None]]) -> None:
    for waiter in waiters:
        if not waiter.done():
            waiter.set_result(None)


def _document(records: Sequence[AttemptRecord]) -> str:
    """Completions as the JSON document that :data:`COMPLETE` reads."""
    return orjson.dumps(
        [
            {
                "seq": r.claim.seq,
                "validation_id": r.claim.validation_id,
                "token": r.claim.token,
                "attempt": r.attempt,
                "at": r.at,
                "duration_ms": r.result.duration_ms,
                "outcome": r.result.outcome,
                "http_status": r.result.http_status,
                "reason": storable(r.result.reason[:500]),
                "state": r.state,
                "next_at": r.next_attempt_at,
                "keep": r.keeps_lease,
            }
            for r in records
        ]
    ).decode()
