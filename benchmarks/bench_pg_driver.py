"""PostgreSQL driver for the delivery engine (issue 12): asyncpg against psycopg 3, measured.

The engine's own database pattern, each operation one round trip per batch:

a. store a batch of 100 events and count them into their validations' heads;
b. claim up to 16 due, unleased heads (``FOR UPDATE SKIP LOCKED``), lease them, and return each
   head's first pending event;
c. complete a batch of 16-64 attempts: attempt rows, event states, and the heads (one fewer
   pending, or their next due time after a failure).

Every variant runs on its own connection in the same process, on the same event loop (uvloop,
as the engine), against fresh tables, in rounds whose order rotates: drift on a shared machine
hits all of them alike. Per event it reports wall time, round trips (by construction: driver
calls that wait for the server; a psycopg pipeline sync is one), the backend's voluntary context
switches (its wake-ups: an empirical check on the round trips, plus WAL flushes), client CPU
(``time.process_time``) and the PostgreSQL backend's CPU (``/proc/<pid>/stat`` of the
connection's backend: the server must run on this machine).

    python benchmarks/bench_pg_driver.py [--dsn postgresql://postgres@127.0.0.1:5432/test]
        [--events 20000] [--rounds 3]

It creates the schema ``bench_driver_<pid>`` and drops it at the end.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import re
import statistics
import sys
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped,unused-ignore]
import orjson
import psycopg
import uuid_utils

sys.path.insert(0, str(Path(__file__).resolve().parent))

from webhook_kit.contract import notifications  # noqa: E402
from webhook_kit.serving.loop import new_event_loop  # noqa: E402

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
INSERT_BATCH = 100
CLAIM_LIMIT = 16
COMPLETE_BATCH = 64
VALIDATIONS = 256
LEASE_SECONDS = 30.0
#: One attempt in this many fails and is retried at once (the head's next due is "now").
FAIL_EVERY = 20

SCHEMA = """
CREATE TABLE events (
    seq bigserial PRIMARY KEY,
    event_id uuid NOT NULL UNIQUE,
    validation_id text NOT NULL,
    status text NOT NULL,
    body text NOT NULL,
    state text NOT NULL,
    created_at double precision NOT NULL,
    next_attempt_at double precision,
    sent_at double precision,
    attempts int NOT NULL DEFAULT 0
) WITH (autovacuum_enabled = false);
CREATE INDEX events_pending ON events (validation_id, seq) WHERE state IN ('pending', 'retrying');
CREATE TABLE heads (
    validation_id text PRIMARY KEY,
    pending int NOT NULL,
    due double precision NOT NULL,
    lease_until double precision NOT NULL DEFAULT 0,
    lease_token text
) WITH (autovacuum_enabled = false);
CREATE INDEX heads_due ON heads (due);
CREATE TABLE attempts (
    id bigserial PRIMARY KEY,
    seq bigint NOT NULL,
    attempt int NOT NULL,
    at double precision NOT NULL,
    duration_ms double precision NOT NULL,
    outcome text NOT NULL,
    http_status int,
    reason text NOT NULL
) WITH (autovacuum_enabled = false);
"""

# A head stays when its last pending event is sent, with due = infinity, out of the claim's
# range: deleting it in the statement that decrements it is impossible (a statement cannot
# modify a row twice), and the next insert for the validation revives it with one update.

#: (a) one statement: the batch as arrays, the heads counted from what was inserted.
A_UNNEST = """
WITH new AS (
    INSERT INTO events (created_at, event_id, validation_id, status, body, state)
    SELECT $1::float8, u.event_id, u.validation_id, u.status, u.body, 'pending'
    FROM unnest($2::uuid[], $3::text[], $4::text[], $5::text[])
        WITH ORDINALITY AS u (event_id, validation_id, status, body, n)
    ORDER BY u.n
    RETURNING validation_id, created_at
)
INSERT INTO heads AS h (validation_id, pending, due)
SELECT validation_id, count(*), min(created_at) FROM new GROUP BY validation_id
ON CONFLICT (validation_id) DO UPDATE
SET pending = h.pending + excluded.pending,
    due = CASE WHEN h.pending = 0 THEN excluded.due ELSE h.due END
"""

#: (a) executemany: the same per event.
A_ROW = """
WITH new AS (
    INSERT INTO events (event_id, validation_id, status, body, state, created_at)
    VALUES ($1, $2, $3, $4, 'pending', $5)
    RETURNING validation_id, created_at
)
INSERT INTO heads AS h (validation_id, pending, due)
SELECT validation_id, 1, created_at FROM new
ON CONFLICT (validation_id) DO UPDATE
SET pending = h.pending + 1,
    due = CASE WHEN h.pending = 0 THEN excluded.due ELSE h.due END
"""

#: (a) psycopg pipeline: plain inserts, then the heads counted by the client.
A_PLAIN_EVENTS = """
INSERT INTO events (event_id, validation_id, status, body, state, created_at)
VALUES ($1, $2, $3, $4, 'pending', $5)
"""
A_PLAIN_HEADS = """
INSERT INTO heads AS h (validation_id, pending, due)
SELECT u.validation_id, u.pending, $1::float8 FROM unnest($2::text[], $3::int[])
    AS u (validation_id, pending)
ON CONFLICT (validation_id) DO UPDATE
SET pending = h.pending + excluded.pending,
    due = CASE WHEN h.pending = 0 THEN excluded.due ELSE h.due END
"""

#: (b) claim: every variant.
B_CLAIM = """
WITH due AS (
    SELECT validation_id FROM heads
    WHERE due <= $1 AND lease_until <= $2
    ORDER BY due
    LIMIT $3
    FOR UPDATE SKIP LOCKED
), leased AS (
    UPDATE heads AS h SET lease_until = $4, lease_token = $5
    FROM due WHERE h.validation_id = due.validation_id
    RETURNING h.validation_id, h.lease_token
)
SELECT l.validation_id, l.lease_token, e.seq, e.event_id, e.status, e.body, e.attempts
FROM leased AS l
CROSS JOIN LATERAL (
    SELECT seq, event_id, status, body, attempts FROM events
    WHERE events.validation_id = l.validation_id AND state IN ('pending', 'retrying')
    ORDER BY seq
    LIMIT 1
) AS e
"""

_COMPLETE_BODY = """
), logged AS (
    INSERT INTO attempts (seq, attempt, at, duration_ms, outcome, http_status, reason)
    SELECT seq, attempt, at, duration_ms, outcome, http_status, reason FROM done
), moved AS (
    UPDATE events AS e
    SET state = d.state, attempts = d.attempt, next_attempt_at = d.next_at,
        sent_at = CASE WHEN d.state = 'sent' THEN d.at END
    FROM done AS d
    WHERE e.seq = d.seq
)
UPDATE heads AS h
SET pending = h.pending - (d.state <> 'retrying')::int,
    due = CASE WHEN h.pending = (d.state <> 'retrying')::int THEN 'infinity'
               WHEN d.state = 'retrying' THEN d.next_at
               ELSE d.at END,
    lease_until = 0, lease_token = NULL
FROM done AS d
WHERE h.validation_id = d.validation_id AND h.lease_token = d.lease_token
"""

#: (c) one statement: the batch as arrays.
C_UNNEST = (
    """
WITH done AS (
    SELECT * FROM unnest($1::bigint[], $2::int[], $3::float8[], $4::float8[], $5::text[],
                         $6::int[], $7::text[], $8::text[], $9::float8[], $10::text[],
                         $11::text[])
        AS d (seq, attempt, at, duration_ms, outcome, http_status, reason, state, next_at,
              validation_id, lease_token)
"""
    + _COMPLETE_BODY
)

#: (c) executemany: the same per attempt.
C_ROW = (
    """
WITH done AS (
    SELECT $1::bigint AS seq, $2::int AS attempt, $3::float8 AS at, $4::float8 AS duration_ms,
           $5::text AS outcome, $6::int AS http_status, $7::text AS reason, $8::text AS state,
           $9::float8 AS next_at, $10::text AS validation_id, $11::text AS lease_token
"""
    + _COMPLETE_BODY
)

#: (c) psycopg pipeline: three plain statements, each executemany.
C_PLAIN_ATTEMPTS = """
INSERT INTO attempts (seq, attempt, at, duration_ms, outcome, http_status, reason)
VALUES ($1, $2, $3, $4, $5, $6, $7)
"""
C_PLAIN_EVENTS = """
UPDATE events SET state = $1, attempts = $2, next_attempt_at = $3, sent_at = $4 WHERE seq = $5
"""
C_PLAIN_HEADS = """
UPDATE heads
SET pending = pending - $1,
    due = CASE WHEN pending = $2 THEN 'infinity' ELSE $3 END,
    lease_until = 0, lease_token = NULL
WHERE validation_id = $4 AND lease_token = $5
"""


def psycopg_sql(sql: str, binary: bool) -> str:
    """asyncpg's ``$n`` placeholders as psycopg's ``%b`` (binary) or ``%s`` (text): the
    statements number their parameters in the order they appear, each once, so one text serves
    both drivers."""
    numbers = [int(n) for n in re.findall(r"\$(\d+)", sql)]
    assert numbers == list(range(1, len(numbers) + 1)), numbers
    assert "%" not in sql
    return re.sub(r"\$\d+", "%b" if binary else "%s", sql)


# --- workload -------------------------------------------------------------------------------


class Event:
    __slots__ = ("event_id", "validation_id", "status", "body")

    def __init__(self, event_id: uuid.UUID, validation_id: str, status: str, body: str) -> None:
        self.event_id = event_id
        self.validation_id = validation_id
        self.status = status
        self.body = body


def make_events(count: int, seed: int) -> list[Event]:
    """``count`` notifications over ``VALIDATIONS`` validations, UUIDv7 ids as the engine's."""
    rng = random.Random(seed)
    templates = list(notifications.lifecycle())
    validations = [str(uuid_utils.uuid7()) for _ in range(VALIDATIONS)]
    out: list[Event] = []
    for i in range(count):
        event_id = uuid.UUID(str(uuid_utils.uuid7()))
        validation_id = validations[rng.randrange(VALIDATIONS)]
        body = dict(templates[i % len(templates)])
        body.update(event_id=str(event_id), validation_id=validation_id)
        out.append(Event(event_id, validation_id, str(body["status"]), orjson.dumps(body).decode()))
    return out


class Claimed:
    """A head's first pending event, as the claim returns it."""

    __slots__ = ("validation_id", "lease_token", "seq", "attempts")

    def __init__(self, row: Sequence[Any]) -> None:
        self.validation_id: str = row[0]
        self.lease_token: str = row[1]
        self.seq: int = row[2]
        self.attempts: int = row[6]


Completion = tuple[
    int, int, float, float, str, int, str, str, float | None, str, str
]  # seq, attempt, at, duration_ms, outcome, http_status, reason, state, next_at, validation, token


def complete(item: Claimed, now: float) -> Completion:
    attempt = item.attempts + 1
    if (item.seq * 7 + attempt) % FAIL_EVERY == 0 and attempt == 1:
        return (item.seq, attempt, now, 12.5, "http_status", 503, "503 Service Unavailable",
                "retrying", now, item.validation_id, item.lease_token)  # fmt: skip
    return (item.seq, attempt, now, 3.2, "delivered", 200, "",
            "sent", None, item.validation_id, item.lease_token)  # fmt: skip


# --- drivers ----------------------------------------------------------------------------------


class Variant:
    """One driver and one way of writing the batches, on its own connection."""

    driver = ""
    name = ""

    async def connect(self, dsn: str, schema: str) -> int:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError

    async def insert(self, batch: list[Event], now: float) -> None:
        raise NotImplementedError

    async def claim(self, now: float, token: str) -> list[Claimed]:
        raise NotImplementedError

    async def complete(self, done: list[Completion]) -> None:
        raise NotImplementedError

    @property
    def label(self) -> str:
        return f"{self.driver} {self.name}"


class AsyncpgVariant(Variant):
    driver = "asyncpg"

    def __init__(self, name: str) -> None:
        self.name = name
        self.conn: Any = None

    async def connect(self, dsn: str, schema: str) -> int:
        self.conn = await asyncpg.connect(dsn, server_settings={"search_path": schema})
        pid: int = await self.conn.fetchval("SELECT pg_backend_pid()")
        return pid

    async def close(self) -> None:
        await self.conn.close()

    async def insert(self, batch: list[Event], now: float) -> None:
        if self.name == "unnest":
            await self.conn.execute(
                A_UNNEST,
                now,
                [e.event_id for e in batch],
                [e.validation_id for e in batch],
                [e.status for e in batch],
                [e.body for e in batch],
            )
        else:
            await self.conn.executemany(
                A_ROW, [(e.event_id, e.validation_id, e.status, e.body, now) for e in batch]
            )

    async def claim(self, now: float, token: str) -> list[Claimed]:
        rows = await self.conn.fetch(B_CLAIM, now, now, CLAIM_LIMIT, now + LEASE_SECONDS, token)
        return [Claimed(r) for r in rows]

    async def complete(self, done: list[Completion]) -> None:
        if self.name == "unnest":
            await self.conn.execute(C_UNNEST, *(list(column) for column in zip(*done, strict=True)))
        else:
            await self.conn.executemany(C_ROW, done)


class PsycopgVariant(Variant):
    driver = "psycopg"

    def __init__(self, name: str, *, binary: bool = True) -> None:
        # Binary parameters: psycopg's default, text, quotes every element of an array
        # parameter in Python (about 20 us of client CPU per event for the insert batch).
        self.name = name if binary else f"{name}, text parameters"
        self.binary = binary
        self.conn: psycopg.AsyncConnection[tuple[Any, ...]] | None = None
        self.sql = {
            key: psycopg_sql(value, binary)
            for key, value in {
                "a_unnest": A_UNNEST,
                "a_row": A_ROW,
                "a_events": A_PLAIN_EVENTS,
                "a_heads": A_PLAIN_HEADS,
                "b": B_CLAIM,
                "c_unnest": C_UNNEST,
                "c_row": C_ROW,
                "c_attempts": C_PLAIN_ATTEMPTS,
                "c_events": C_PLAIN_EVENTS,
                "c_heads": C_PLAIN_HEADS,
            }.items()
        }

    @property
    def connection(self) -> psycopg.AsyncConnection[tuple[Any, ...]]:
        assert self.conn is not None
        return self.conn

    async def connect(self, dsn: str, schema: str) -> int:
        self.conn = await psycopg.AsyncConnection.connect(
            dsn, autocommit=True, options=f"-c search_path={schema}"
        )
        cursor = await self.conn.execute("SELECT pg_backend_pid()")
        row = await cursor.fetchone()
        assert row is not None
        pid: int = row[0]
        return pid

    async def close(self) -> None:
        await self.connection.close()

    async def insert(self, batch: list[Event], now: float) -> None:
        conn = self.connection
        if self.name.startswith("unnest"):
            await conn.execute(
                self.sql["a_unnest"],
                (
                    now,
                    [e.event_id for e in batch],
                    [e.validation_id for e in batch],
                    [e.status for e in batch],
                    [e.body for e in batch],
                ),
            )
            return
        # One pipeline, one sync: the server runs everything before the sync as one implicit
        # transaction (autocommit mode). conn.transaction() would cost two more round trips:
        # psycopg syncs after BEGIN and after COMMIT.
        rows = [(e.event_id, e.validation_id, e.status, e.body, now) for e in batch]
        async with conn.pipeline(), conn.cursor() as cursor:
            if self.name == "executemany":
                await cursor.executemany(self.sql["a_row"], rows)
            else:
                counts = Counter(e.validation_id for e in batch)
                await cursor.executemany(self.sql["a_events"], rows)
                await cursor.execute(
                    self.sql["a_heads"], (now, list(counts), list(counts.values()))
                )

    async def claim(self, now: float, token: str) -> list[Claimed]:
        cursor = await self.connection.execute(
            self.sql["b"], (now, now, CLAIM_LIMIT, now + LEASE_SECONDS, token), binary=self.binary
        )
        return [Claimed(r) for r in await cursor.fetchall()]

    async def complete(self, done: list[Completion]) -> None:
        conn = self.connection
        if self.name.startswith("unnest"):
            await conn.execute(
                self.sql["c_unnest"], tuple(list(c) for c in zip(*done, strict=True))
            )
            return
        async with conn.pipeline(), conn.cursor() as cursor:
            if self.name == "executemany":
                await cursor.executemany(self.sql["c_row"], done)
            else:
                await cursor.executemany(self.sql["c_attempts"], [d[:7] for d in done])
                await cursor.executemany(
                    self.sql["c_events"],
                    [(d[7], d[1], d[8], d[2] if d[7] == "sent" else None, d[0]) for d in done],
                )
                await cursor.executemany(
                    self.sql["c_heads"],
                    [
                        (dec, dec, d[8] if d[7] == "retrying" else d[2], d[9], d[10])
                        for d in done
                        for dec in (0 if d[7] == "retrying" else 1,)
                    ],
                )


def variants() -> list[Variant]:
    return [
        AsyncpgVariant("unnest"),
        AsyncpgVariant("executemany"),
        PsycopgVariant("unnest"),
        PsycopgVariant("unnest", binary=False),
        PsycopgVariant("executemany"),
        PsycopgVariant("pipeline"),
    ]


# --- measurement ------------------------------------------------------------------------------


def backend_cpu(pid: int) -> float:
    """User + system CPU seconds of a PostgreSQL backend, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def backend_wakeups(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("voluntary_ctxt_switches:"):
            return int(line.split()[1])
    raise RuntimeError(f"no voluntary_ctxt_switches for {pid}")


@dataclass
class Totals:
    """Sums for one operation of one variant, over rounds."""

    wall: float = 0.0
    client: float = 0.0
    server: float = 0.0
    wakeups: int = 0
    calls: int = 0
    events: int = 0

    def add(self, other: Totals) -> None:
        self.wall += other.wall
        self.client += other.client
        self.server += other.server
        self.wakeups += other.wakeups
        self.calls += other.calls
        self.events += other.events


@dataclass
class Meter:
    """Times driver calls; the /proc reads stay outside the timed part."""

    pid: int
    totals: dict[str, Totals] = field(default_factory=lambda: {op: Totals() for op in "abc"})

    async def timed(self, op: str, call: Awaitable[Any]) -> Any:
        server = backend_cpu(self.pid)
        wakeups = backend_wakeups(self.pid)
        client = time.process_time()
        wall = time.perf_counter()
        result = await call
        wall = time.perf_counter() - wall
        client = time.process_time() - client
        total = self.totals[op]
        total.wall += wall
        total.client += client
        total.server += backend_cpu(self.pid) - server
        total.wakeups += backend_wakeups(self.pid) - wakeups
        total.calls += 1
        return result


async def run_one(variant: Variant, pid: int, events: list[Event]) -> dict[str, Totals]:
    meter = Meter(pid)
    for start in range(0, len(events), INSERT_BATCH):
        await meter.timed("a", variant.insert(events[start : start + INSERT_BATCH], time.time()))
    remaining = len(events)
    pending: list[Completion] = []
    claims = 0
    while remaining:
        now = time.time()
        claims += 1
        got: list[Claimed] = await meter.timed("b", variant.claim(now, f"w1-{claims}"))
        pending.extend(complete(item, now) for item in got)
        if pending and (len(pending) >= COMPLETE_BATCH - CLAIM_LIMIT or len(got) < CLAIM_LIMIT):
            await meter.timed("c", variant.complete(pending))
            remaining -= sum(1 for d in pending if d[7] == "sent")
            pending = []
        elif not got:
            raise RuntimeError(f"{variant.label}: nothing to claim, {remaining} events unsent")
    for total in meter.totals.values():
        total.events = len(events)
    return meter.totals


async def reset(admin: Any, schema: str) -> None:
    await admin.execute(
        f"TRUNCATE {schema}.events, {schema}.heads, {schema}.attempts RESTART IDENTITY"
    )
    # Every variant starts right after a checkpoint: the first write to each page after one
    # logs the whole page, which would otherwise favour whichever ran later.
    await admin.execute("CHECKPOINT")


async def verify(admin: Any, schema: str, events: int) -> None:
    counts = dict(await admin.fetch(f"SELECT state, count(*) FROM {schema}.events GROUP BY 1"))
    assert counts == {"sent": events}, counts
    heads = await admin.fetchval(
        f"SELECT count(*) FROM {schema}.heads WHERE pending <> 0 OR lease_token IS NOT NULL"
    )
    assert heads == 0, heads


@dataclass
class Results:
    variants: list[Variant]
    #: Per variant label, per operation, summed over rounds.
    totals: dict[str, dict[str, Totals]]
    #: Per round, per variant label: the three operations' wall time.
    rounds: list[dict[str, float]]


async def bench(dsn: str, count: int, rounds: int) -> Results:
    schema = f"bench_driver_{os.getpid()}"
    admin = await asyncpg.connect(dsn)
    await admin.execute(f"CREATE SCHEMA {schema}")
    try:
        await admin.execute(f"SET search_path = {schema}")
        await admin.execute(SCHEMA)
        all_ = variants()
        pids = {v.label: await v.connect(dsn, schema) for v in all_}
        results = Results(all_, {v.label: {op: Totals() for op in "abc"} for v in all_}, [])
        for r in range(rounds):
            results.rounds.append({})
            for variant in all_[r % len(all_) :] + all_[: r % len(all_)]:
                events = make_events(count, seed=r)
                await reset(admin, schema)
                totals = await run_one(variant, pids[variant.label], events)
                await verify(admin, schema, count)
                for op, total in totals.items():
                    results.totals[variant.label][op].add(total)
                wall = sum(t.wall for t in totals.values())
                results.rounds[-1][variant.label] = wall
                print(
                    f"round {r + 1} {variant.label:32} {wall / count * 1e6:7.1f} µs/event",
                    file=sys.stderr,
                )
        for v in all_:
            await v.close()
    finally:
        await admin.execute(f"DROP SCHEMA {schema} CASCADE")
        await admin.close()
    return results


def us(seconds: float, events: int) -> str:
    return f"{seconds / events * 1e6:.1f}"


def report(results: Results, count: int, rounds: int) -> None:
    print(
        f"\n{count:,} events x {rounds} rounds; {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, asyncpg {asyncpg.__version__}, "
        f"psycopg {psycopg.__version__} (libpq {psycopg.pq.version()})\n"
    )
    print(
        "| driver | variant | a insert | b claim | c complete | **total** | round trips "
        "| backend wake-ups | client CPU (a/b/c) | backend CPU (a/b/c) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for variant in results.variants:
        totals = results.totals[variant.label]
        events = totals["a"].events
        a, b, c = (totals[op] for op in "abc")
        wall = a.wall + b.wall + c.wall
        trips = (a.calls + b.calls + c.calls) / events
        wakeups = (a.wakeups + b.wakeups + c.wakeups) / events
        client = "/".join(us(t.client, events) for t in (a, b, c))
        server = "/".join(us(t.server, events) for t in (a, b, c))
        print(
            f"| {variant.driver} | {variant.name} | {us(a.wall, events)} | {us(b.wall, events)} "
            f"| {us(c.wall, events)} | **{us(wall, events)}** | {trips:.3f} | {wakeups:.3f} "
            f"| {us(a.client + b.client + c.client, events)} ({client}) "
            f"| {us(a.server + b.server + c.server, events)} ({server}) |"
        )

    def cost(label: str, measure: str, ops: str) -> float:
        return float(sum(getattr(results.totals[label][op], measure) for op in ops))

    def fastest(driver: str, ops: str) -> str:
        labels = [v.label for v in results.variants if v.driver == driver]
        return min(labels, key=lambda label: cost(label, "wall", ops))

    # Each driver's fastest variant over all three operations, operation by operation.
    apg, pg = fastest("asyncpg", "abc"), fastest("psycopg", "abc")
    print(f"\n{apg} against {pg}, asyncpg/psycopg:\n")
    print("| operation | time | client CPU | backend CPU |")
    print("|---|---|---|---|")
    for ops, name in (("a", "a insert"), ("b", "b claim"), ("c", "c complete"), ("abc", "all")):
        ratios = [cost(apg, m, ops) / cost(pg, m, ops) for m in ("wall", "client", "server")]
        print(f"| {name} | **{ratios[0]:.2f}** | {ratios[1]:.2f} | {ratios[2]:.2f} |")
    paired = [
        min(w for label, w in r.items() if label.startswith("asyncpg"))
        / min(w for label, w in r.items() if label.startswith("psycopg"))
        for r in results.rounds
    ]
    print(
        "\nper round, fastest asyncpg / fastest psycopg, all three operations: "
        + ", ".join(f"{x:.2f}" for x in paired)
        + f" (median {statistics.median(paired):.2f})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dsn", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if args.events < INSERT_BATCH or args.rounds < 1:
        parser.error(f"--events must be at least {INSERT_BATCH} and --rounds at least 1")
    loop = new_event_loop()
    try:
        results = loop.run_until_complete(bench(args.dsn, args.events, args.rounds))
    except (OSError, asyncpg.PostgresError, psycopg.Error) as exc:
        sys.exit(f"bench_pg_driver: PostgreSQL at {args.dsn}: {exc}")
    finally:
        loop.close()
    report(results, args.events, args.rounds)


if __name__ == "__main__":
    main()
