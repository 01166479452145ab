"""How the PostgreSQL store writes completions: carried by claims, or by its own timed write.

Two orderings that once went wrong, each forced with a real row lock held by another connection
(the database makes the statement wait, as a busy server would):

- a reader's flush must wait for a completion that a claim is carrying, not only count writes;
- a completion whose head a claim takes over while it waits for the head's lock moves nothing,
  its event included;
- one batch of completions is in transit at a time, so that a chain's completions are written in
  the order they were made; a write that fails keeps its batch, and only its success may say
  that the database takes writes again.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import pytest

from tests.storage.test_contract import ONE, done, event, now
from webhook_kit.errors import StoreUnavailable
from webhook_kit.storage.postgres.events import CLAIM_CALL, PostgresEvents
from webhook_kit.storage.rows import DEFAULT_MAX_IN_FLIGHT, Claim
from webhook_kit.storage.url import DatabaseUrl, open_storage

#: Long enough for a statement that is not blocked to finish on a loaded machine.
SETTLE = 1.0


@asynccontextmanager
async def head_locked(url: str, validation_id: str) -> AsyncIterator[None]:
    """Another connection holds the validation's head row locked until the block ends."""
    parsed = DatabaseUrl.parse(url)
    conn = await asyncpg.connect(
        parsed.connect_target, server_settings={"search_path": parsed.schema}
    )
    try:
        async with conn.transaction():
            await conn.execute(
                "SELECT 1 FROM heads WHERE validation_id = $1 FOR UPDATE", validation_id
            )
            yield
    finally:
        await conn.close()


async def blocked(task: asyncio.Future[Any]) -> bool:
    """True if ``task`` is still waiting after :data:`SETTLE` seconds."""
    done_, _ = await asyncio.wait({task}, timeout=SETTLE)
    return not done_


def fail_first_write(
    events: PostgresEvents, monkeypatch: pytest.MonkeyPatch, error: BaseException
) -> list[int]:
    """The store's first write raises ``error``, later ones write; returns the count of writes
    tried, as a one-item list that the caller reads."""
    real_write = events._write
    calls = [0]

    async def failing_once(records: Any) -> None:
        calls[0] += 1
        if calls[0] == 1:
            raise error
        await real_write(records)

    monkeypatch.setattr(events, "_write", failing_once)
    return calls


def test_a_flush_waits_for_a_completion_that_a_claim_carries(postgres_url: str) -> None:
    async def main() -> None:
        s = await open_storage(postgres_url)
        events = s.events
        assert isinstance(events, PostgresEvents)
        try:
            a, b, c = event("A"), event("B"), event("C")
            await events.insert([a, b, c, event("D")])
            claims = {x.validation_id: x for x in await events.claim(now(), 3, 60.0, **ONE)}
            async with head_locked(postgres_url, "A"):
                events.complete(done(claims["A"]))
                # The claim carries A's completion and waits on A's locked head.
                carrying = asyncio.ensure_future(events.claim(now(), 1, 60.0, **ONE))
                assert await blocked(carrying)
                events.complete(done(claims["B"]))
                reader = asyncio.ensure_future(events.flush())
                for _ in range(20):  # the reader's write of B is under way
                    await asyncio.sleep(0)
                events.complete(done(claims["C"]))  # after the read began: C is written too,
                # which must not count for A: A is not written until the lock goes.
                assert await blocked(reader), "flush returned before the carried completion"
            await asyncio.wait_for(reader, 10)
            await asyncio.wait_for(carrying, 10)
            for e in (a, b, c):
                row = await events.event(e.event_id)
                assert row is not None and row.state == "sent", (e.validation_id, row)
        finally:
            await s.close()

    asyncio.run(main())


def test_one_batch_is_in_transit_at_a_time_and_a_failed_write_keeps_its_batch(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def main() -> None:
        s = await open_storage(postgres_url)
        events = s.events
        assert isinstance(events, PostgresEvents)
        try:
            a, c = event("A"), event("C")
            await events.insert([a, event("B"), c])
            claims = {x.validation_id: x for x in await events.claim(now(), 3, 60.0, **ONE)}
            calls = fail_first_write(
                events, monkeypatch, StoreUnavailable("the database went away (test)")
            )
            # B's claim could not be given back earlier: the next claim gives it back first,
            # and that release waits on B's locked head.
            events._unreleased.append(claims["B"])
            async with head_locked(postgres_url, "B"):
                claiming = asyncio.ensure_future(events.claim(now(), 5, 60.0, **ONE))
                assert await blocked(claiming)
                # A completes meanwhile: its timed write waits for the claim, which is
                # writing too (a chain's completions must not overtake one another).
                events.complete(done(claims["A"]))
                events._start_flush()
                assert await blocked(asyncio.ensure_future(events.flush()))
                assert calls[0] == 0, "a write went out beside the claim"
            # The claim carries A, once B is given back (it may take B again, nothing else).
            got = await asyncio.wait_for(claiming, 10)
            assert [x.validation_id for x in got] in ([], ["B"])
            row = await events.event(a.event_id)
            assert row is not None and row.state == "sent"
            # C's write fails once: the store takes no more claims until the write, retried
            # with C in it, succeeds.
            events.complete(done(claims["C"]))
            events._start_flush()
            for _ in range(100):
                if not events.writable:
                    break
                await asyncio.sleep(0.01)
            assert not events.writable
            assert await events.claim(now(), 5, 60.0, **ONE) == []
            for _ in range(500):
                if events.writable:
                    break
                await asyncio.sleep(0.01)
            assert events.writable, "the store never said it takes writes again"
            assert calls[0] >= 2
            row = await events.event(c.event_id)
            assert row is not None and row.state == "sent"
        finally:
            await s.close()

    asyncio.run(main())


def test_a_completion_fenced_off_by_a_claim_committing_meanwhile_moves_nothing(
    postgres_url: str,
) -> None:
    """Worker A's lease expired with its completion still buffered; worker B's claim of the
    head commits while A's write waits on the head's lock. A's write must move neither the
    head nor the event (B sends the event again, in its place), and B's completion must then
    give the head back with the right count."""

    async def main() -> None:
        s = await open_storage(postgres_url)
        events = s.events
        assert isinstance(events, PostgresEvents)
        parsed = DatabaseUrl.parse(postgres_url)
        b = await asyncpg.connect(
            parsed.connect_target, server_settings={"search_path": parsed.schema}
        )
        try:
            first, second = event("V"), event("V")
            await events.insert([first, second])
            start = now()
            (a,) = await events.claim(start, 10, 1.0, **ONE)  # a 1 s lease
            events.complete(done(a))  # A stalls with it buffered
            async with b.transaction():
                rows = await b.fetch(
                    CLAIM_CALL,
                    *(start + 10, 10, 60.0, "token-b", ONE["accounts"], None),
                    *(DEFAULT_MAX_IN_FLIGHT, [], None, 1),
                )
                assert [r[2] for r in rows] == [first.event_id]
                writing = asyncio.ensure_future(events.written())
                assert await blocked(writing), "A's write did not wait for the head"
            await asyncio.wait_for(writing, 10)
            state = await b.fetchval("SELECT state FROM events WHERE event_id = $1", a.event_id)
            assert state == "pending"
            head = await b.fetchrow("SELECT pending, lease_token FROM heads")
            assert head is not None and tuple(head) == (2, "token-b")
            r = rows[0]
            events.complete(done(Claim(r[1], r[2], r[0], r[3].encode(), r[4], "token-b", r[5])))
            await events.written()
            head = await b.fetchrow("SELECT pending, lease_token FROM heads")
            assert head is not None and tuple(head) == (1, None)
        finally:
            await b.close()
            await s.close()

    asyncio.run(main())


def test_a_write_that_fails_with_a_bug_keeps_its_batch_and_flushes_go_on(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not a database error (a bug, say): the write loop's task ends with it, but its batch goes
    back to the buffer, and the next flush writes it instead of waiting forever."""

    async def main() -> None:
        s = await open_storage(postgres_url)
        events = s.events
        assert isinstance(events, PostgresEvents)
        try:
            a = event("A")
            await events.insert([a])
            (claim,) = await events.claim(now(), 1, 60.0, **ONE)
            calls = fail_first_write(events, monkeypatch, RuntimeError("a bug (test)"))
            events.complete(done(claim))
            events._start_flush()
            flushing = events._flushing
            assert flushing is not None
            with pytest.raises(RuntimeError):
                await asyncio.wait_for(flushing, 10)
            assert events.unwritten == 1
            await asyncio.wait_for(events.flush(), 10)
            assert calls[0] == 2 and events.unwritten == 0
            row = await events.event(a.event_id)
            assert row is not None and row.state == "sent"
        finally:
            await s.close()

    asyncio.run(main())
