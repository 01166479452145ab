"""Chained claims in the PostgreSQL store: a claim carries up to ``chain`` events of a
validation under one lease; each completion moves the head on, and the chain keeps the lease
until its last event (or a retry) gives it back."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import asyncpg
import pytest

from tests.storage.test_contract import BAD, LEASE, ONE, done, event, now
from webhook_kit.storage.postgres import events as pg_events
from webhook_kit.storage.postgres.events import CHAIN_BATCH, PostgresEvents
from webhook_kit.storage.rows import AttemptRecord, Claim, NewEvent
from webhook_kit.storage.url import DatabaseUrl, open_storage

STATUSES = ("on-course", "document-uploaded", "document2-uploaded", "document3-uploaded")


def run(
    url: str, scenario: Callable[[PostgresEvents, asyncpg.Connection], Awaitable[None]]
) -> None:
    async def main() -> None:
        storage = await open_storage(url)
        parsed = DatabaseUrl.parse(url)
        conn = await asyncpg.connect(
            parsed.connect_target, server_settings={"search_path": parsed.schema}
        )
        try:
            assert isinstance(storage.events, PostgresEvents)
            await scenario(storage.events, conn)
        finally:
            await conn.close()
            await storage.close()

    asyncio.run(main())


async def head(conn: asyncpg.Connection, validation_id: str) -> tuple[int, bool]:
    """(pending, leased) of a validation's head, as the database has it."""
    row = await conn.fetchrow(
        "SELECT pending, lease_token IS NOT NULL AS leased FROM heads WHERE validation_id = $1",
        validation_id,
    )
    assert row is not None
    return row["pending"], row["leased"]


async def first_of_chain_written(events: PostgresEvents) -> tuple[list[NewEvent], AttemptRecord]:
    """Validation A's events, claimed as one chain, and the written completion of the first."""
    a = [event("A", status) for status in STATUSES]
    await events.insert(a)
    (claim,) = await events.claim(now(), 10, LEASE, chain=4, **ONE)
    record = done(claim)
    events.complete(record)
    await events.written()
    return a, record


def test_a_chain_keeps_its_lease_until_its_last_event(postgres_url: str) -> None:
    async def scenario(events: PostgresEvents, conn: asyncpg.Connection) -> None:
        a = [event("A", status) for status in STATUSES]
        await events.insert(a)
        (claim,) = await events.claim(now(), 10, LEASE, chain=3, **ONE)
        assert claim.event_id == a[0].event_id
        assert [n.event_id for n in claim.rest] == [a[1].event_id, a[2].event_id]
        assert [n.body for n in claim.rest] == [a[1].body.encode(), a[2].body.encode()]
        sent: list[str] = []
        link: Claim | None = claim
        while link is not None:
            events.complete(done(link))
            await events.written()
            sent.append(link.event_id)
            link = link.next()
            if link is not None:  # the chain holds the head: nobody else may claim it
                assert await head(conn, "A") == (len(a) - len(sent), True)
                assert await events.claim(now(), 10, LEASE, chain=3, **ONE) == []
        assert sent == [e.event_id for e in a[:3]]
        assert await head(conn, "A") == (1, False)
        (last,) = await events.claim(now(), 10, LEASE, chain=3, **ONE)
        assert (last.event_id, last.rest) == (a[3].event_id, ())

    run(postgres_url, scenario)


def test_a_retry_ends_the_chain_and_the_head_waits_for_its_backoff(postgres_url: str) -> None:
    async def scenario(events: PostgresEvents, conn: asyncpg.Connection) -> None:
        a = [event("A", status) for status in STATUSES]
        await events.insert(a)
        (claim,) = await events.claim(now(), 10, LEASE, chain=4, **ONE)
        events.complete(done(claim))
        await events.written()
        second = claim.next()
        assert second is not None
        retry_at = now() + 100
        events.complete(done(second, "retrying", BAD, retry_at))
        await events.written()
        assert await head(conn, "A") == (3, False)  # given back, the retried event first
        assert await events.claim(now(), 10, LEASE, chain=4, **ONE) == []
        (again,) = await events.claim(retry_at + 1, 10, LEASE, chain=4, **ONE)
        assert again.event_id == a[1].event_id and again.attempts == 1
        assert [n.event_id for n in again.rest] == [a[2].event_id, a[3].event_id]

    run(postgres_url, scenario)


def test_a_batch_written_twice_moves_nothing_the_second_time(postgres_url: str) -> None:
    """A write whose answer was lost is sent again; a chain still holds its lease then, so the
    fencing token alone would let the head count the same event twice."""

    async def scenario(events: PostgresEvents, conn: asyncpg.Connection) -> None:
        a, record = await first_of_chain_written(events)
        assert await head(conn, "A") == (3, True)
        await events._write([record])  # the same batch, again
        assert await head(conn, "A") == (3, True)
        rows = await conn.fetch(
            "SELECT e.state, count(t.*) AS attempts FROM events AS e"
            " JOIN attempts AS t ON t.seq = e.seq WHERE e.event_id = $1 GROUP BY e.state",
            a[0].event_id,
        )
        # The attempt is recorded twice (the write cannot tell), the event moved once.
        assert [(r["state"], r["attempts"]) for r in rows] == [("sent", 2)]

    run(postgres_url, scenario)


def test_a_release_writes_the_chains_completions_first(postgres_url: str) -> None:
    """Stopping between two events of a chain gives the next one back; the completion before
    it, still buffered, must be written first, or the release would fence it off and its
    event would go again."""

    async def scenario(events: PostgresEvents, conn: asyncpg.Connection) -> None:
        a = [event("A", status) for status in STATUSES]
        await events.insert(a)
        (claim,) = await events.claim(now(), 10, LEASE, chain=4, **ONE)
        events.complete(done(claim))  # buffered, not written
        following = claim.next()
        assert following is not None
        await events.release([following])
        row = await events.event(a[0].event_id)
        assert row is not None and row.state == "sent"
        assert await head(conn, "A") == (3, False)
        (again,) = await events.claim(now(), 10, LEASE, chain=4, **ONE)
        assert again.event_id == a[1].event_id

    run(postgres_url, scenario)


def test_a_chain_waits_for_a_batch_not_forever(postgres_url: str) -> None:
    """Without ``hurry`` a completion goes with the next batch: a full one at once, else the
    chain's timer; either way it is written, and nothing waits for a flush that never comes."""

    async def scenario(events: PostgresEvents, conn: asyncpg.Connection) -> None:
        one = [event(f"V{n}") for n in range(CHAIN_BATCH + 1)]
        await events.insert(one)
        claims = await events.claim(now(), len(one), LEASE, chain=2, **ONE)
        events.complete(done(claims[0]))
        await asyncio.wait_for(events.written(hurry=False), 10)  # by the timer
        assert events.unwritten == 0
        for claim in claims[1:]:
            events.complete(done(claim))
        await asyncio.wait_for(events.written(hurry=False), 10)  # a full batch
        assert events.unwritten == 0
        assert await events.counts() == {"sent": len(one)}

    run(postgres_url, scenario)


def test_a_chain_asks_for_a_smaller_batch(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A dispatcher with few slots names a batch smaller than the store's: that many buffered
    completions go at once (the timer is pushed out of reach here, so only the batch can write
    them: with the store's batch of 64, this would wait for an hour)."""
    monkeypatch.setattr(pg_events, "FLUSH_SECONDS", 3600.0)

    async def scenario(events: PostgresEvents, conn: asyncpg.Connection) -> None:
        four = [event(f"V{n}") for n in range(4)]
        await events.insert(four)
        claims = await events.claim(now(), len(four), LEASE, chain=2, **ONE)
        for claim in claims:
            events.complete(done(claim))
        await asyncio.wait_for(events.written(hurry=False, batch=4), 10)
        assert events.unwritten == 0
        assert await events.counts() == {"sent": len(four)}

    run(postgres_url, scenario)


def test_a_batch_written_again_after_a_redelivery_leaves_it_queued(postgres_url: str) -> None:
    """A chain's completion is written, its answer lost; an operator asks for the event again;
    then the same batch goes again (the chain still holds the lease). The redelivery must stay
    queued: the rewrite carries an attempt the event has already recorded."""

    async def scenario(events: PostgresEvents, conn: asyncpg.Connection) -> None:
        a, record = await first_of_chain_written(events)
        assert await events.requeue(a[0].event_id, now()) == "requeued"
        assert await head(conn, "A") == (4, True)
        await events._write([record])  # the lost answer's batch, again
        row = await events.event(a[0].event_id)
        assert row is not None and row.state == "pending"
        assert await head(conn, "A") == (4, True)

    run(postgres_url, scenario)
