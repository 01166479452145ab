"""The storage seam's contract, run over every backend (an SQLite file, a PostgreSQL schema).

Each test states one rule of :mod:`webhook_kit.storage.base` and checks it on a real database.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from webhook_kit.delivery.outcome import AttemptResult
from webhook_kit.errors import AlreadyExists, ConfigError, DuplicateEvent, StaleUpdate
from webhook_kit.ids import new_id
from webhook_kit.storage.base import Storage
from webhook_kit.storage.rows import (
    DEFAULT_ACCOUNT,
    AttemptRecord,
    Claim,
    EventFilter,
    EventState,
    NewEvent,
    ValidationRow,
)
from webhook_kit.storage.url import open_storage

LEASE = 60.0
#: A fixed scope, as emit's: the default account's events, no cap, no breaker (the account
#: scope, with settings, caps and breakers, has tests of its own below).
ONE: dict[str, Any] = {"accounts": [DEFAULT_ACCOUNT], "cap": None}
OK = AttemptResult("success", "HTTP 200", 3.0, 200)
BAD = AttemptResult("http_error", "HTTP 500", 4.0, 500)


def event(validation_id: str, status: str = "on-course") -> NewEvent:
    event_id = new_id()
    body = f'{{"event_id":"{event_id}","validation_id":"{validation_id}","status":"{status}"}}'
    return NewEvent(event_id, validation_id, status, body)


def done(
    claim: Claim,
    state: EventState = "sent",
    result: AttemptResult = OK,
    next_at: float | None = None,
) -> AttemptRecord:
    return AttemptRecord(claim, claim.attempts + 1, time.time(), result, state, next_at)


def with_storage(db_url: str, scenario: Callable[[Storage], Awaitable[None]]) -> None:
    async def main() -> None:
        storage = await open_storage(db_url)
        try:
            await scenario(storage)
        finally:
            await storage.close()

    asyncio.run(main())


def now() -> float:
    return time.time() + 1  # a moment after the events were stored: all are due


def test_an_event_is_stored_as_sent_byte_for_byte(db_url: str) -> None:
    async def scenario(s: Storage) -> None:
        e = event("v1")
        await s.events.insert([e])
        row = await s.events.event(e.event_id)
        assert row is not None
        assert (row.body, row.state, row.attempts, row.validation_id) == (
            e.body,
            "pending",
            0,
            "v1",
        )
        assert await s.events.counts() == {"pending": 1}
        assert await s.events.outstanding() == 1
        assert await s.events.event("no-such-event") is None

    with_storage(db_url, scenario)


def test_a_repeated_event_id_fails_only_its_own_call(db_url: str) -> None:
    async def scenario(s: Storage) -> None:
        first = event("v1")
        await s.events.insert([first])
        again, other = first._replace(body="{}"), event("v2")
        outcomes = await asyncio.gather(
            s.events.insert([again]), s.events.insert([other]), return_exceptions=True
        )
        assert isinstance(outcomes[0], DuplicateEvent)
        assert outcomes[1] is None
        assert await s.events.counts() == {"pending": 2}

    with_storage(db_url, scenario)


def test_one_validation_is_claimed_in_order_one_event_at_a_time(db_url: str) -> None:
    async def scenario(s: Storage) -> None:
        a = [event("A", status) for status in ("on-course", "document-uploaded", "deleted")]
        b = event("B")
        await s.events.insert(a)
        await s.events.insert([b])
        claims = await s.events.claim(now(), 10, LEASE, **ONE)
        assert sorted(c.event_id for c in claims) == sorted([a[0].event_id, b.event_id])
        assert await s.events.claim(now(), 10, LEASE, **ONE) == []  # A's head is in flight
        head = next(c for c in claims if c.validation_id == "A")
        assert head.body == a[0].body.encode() and head.attempts == 0
        s.events.complete(done(head))
        (second,) = await s.events.claim(now(), 10, LEASE, **ONE)
        assert second.event_id == a[1].event_id
        s.events.complete(done(second))
        (third,) = await s.events.claim(now(), 10, LEASE, **ONE)
        assert third.event_id == a[2].event_id

    with_storage(db_url, scenario)


def test_a_limit_caps_one_claim(db_url: str) -> None:
    async def scenario(s: Storage) -> None:
        await s.events.insert([event(f"v{i}") for i in range(5)])
        assert len(await s.events.claim(now(), 3, LEASE, **ONE)) == 3
        assert len(await s.events.claim(now(), 3, LEASE, **ONE)) == 2

    with_storage(db_url, scenario)


def test_a_retrying_head_waits_for_its_backoff_and_blocks_only_its_validation(db_url: str) -> None:
    async def scenario(s: Storage) -> None:
        a1, a2, b = event("A"), event("A", "deleted"), event("B")
        await s.events.insert([a1, a2, b])
        t = now()
        claims = {c.validation_id: c for c in await s.events.claim(t, 10, LEASE, **ONE)}
        s.events.complete(done(claims["A"], "retrying", BAD, next_at=t + 100))
        s.events.complete(done(claims["B"]))
        assert await s.events.claim(t + 1, 10, LEASE, **ONE) == []  # a2 stays behind a1
        due = await s.events.next_due(t + 1, **ONE)
        assert due == pytest.approx(t + 100)
        (again,) = await s.events.claim(t + 101, 10, LEASE, **ONE)
        assert (again.event_id, again.attempts) == (a1.event_id, 1)
        row = await s.events.event(a1.event_id)
        assert row is not None and row.state == "retrying" and row.attempts == 1
        s.events.complete(done(again))
        (after,) = await s.events.claim(t + 102, 10, LEASE, **ONE)
        assert after.event_id == a2.event_id

    with_storage(db_url, scenario)


def test_a_failed_head_lets_the_next_event_go(db_url: str) -> None:
    async def scenario(s: Storage) -> None:
        a1, a2 = event("A"), event("A", "deleted")
        await s.events.insert([a1, a2])
        (head,) = await s.events.claim(now(), 10, LEASE, **ONE)
        s.events.complete(done(head, "failed", BAD))
        (after,) = await s.events.claim(now(), 10, LEASE, **ONE)
        assert after.event_id == a2.event_id
        assert [a.outcome for a in await s.events.attempts(a1.event_id)] == ["http_error"]
        assert (await s.events.counts()) == {"failed": 1, "pending": 1}

    with_storage(db_url, scenario)


def test_attempts_and_their_states_are_readable_by_this_process_at_once(db_url: str) -> None:
    async def scenario(s: Storage) -> None:
        e = event("A")
        await s.events.insert([e])
        (claim,) = await s.events.claim(now(), 1, LEASE, **ONE)
        s.events.complete(done(claim))
        # No flush by the reader: the store writes its own buffer before reading.
        row = await s.events.event(e.event_id)
        assert row is not None and row.state == "sent" and row.sent_at is not None
        (attempt,) = await s.events.attempts(e.event_id)
        assert (attempt.attempt, attempt.outcome, attempt.http_status) == (1, "success", 200)
        assert (await s.events.attempts_of([e.event_id, "none"]))["none"] == []
        assert await s.events.outstanding() == 0

    with_storage(db_url, scenario)


def test_completions_not_yet_written_are_counted_until_written(db_url: str) -> None:
    async def scenario(s: Storage) -> None:
        await s.events.insert([event("A"), event("B")])
        claims = await s.events.claim(now(), 10, LEASE, **ONE)
        assert s.events.unwritten == 0
        for claim in claims:
            s.events.complete(done(claim))
        assert s.events.unwritten == 2
        await s.events.written()
        assert s.events.unwritten == 0
        assert await s.events.counts() == {"sent": 2}

    with_storage(db_url, scenario)


def test_a_released_claim_is_due_again(db_url: str) -> None:
    async def scenario(s: Storage) -> None:
        e = event("A")
        await s.events.insert([e])
        claims = await s.events.claim(now(), 1, LEASE, **ONE)
        await s.events.release(claims)
        (again,) = await s.events.claim(now(), 1, LEASE, **ONE)
        assert again.event_id == e.event_id

    with_storage(db_url, scenario)


def test_requeue_sends_a_sent_event_again_and_refuses_a_queued_one(db_url: str) -> None:
    async def scenario(s: Storage) -> None:
        e, other = event("A"), event("B")
        await s.events.insert([e, other])
        claims = {c.validation_id: c for c in await s.events.claim(now(), 2, LEASE, **ONE)}
        s.events.complete(done(claims["A"]))
        assert await s.events.requeue(e.event_id, now()) == "requeued"
        assert await s.events.requeue(e.event_id, now()) == "queued"
        assert await s.events.requeue(other.event_id, now()) == "queued"
        assert await s.events.requeue("no-such-event", now()) == "unknown"
        (again,) = await s.events.claim(now(), 5, LEASE, **ONE)
        assert (again.event_id, again.attempts) == (e.event_id, 1)

    with_storage(db_url, scenario)


def test_queries_filter_and_page(db_url: str) -> None:
    async def scenario(s: Storage) -> None:
        a = [event("A", "on-course"), event("A", "deleted")]
        b = event("B", "on-course")
        await s.events.insert([*a, b])
        claims = {c.validation_id: c for c in await s.events.claim(now(), 5, LEASE, **ONE)}
        s.events.complete(done(claims["B"]))
        assert [r.event_id for r in await s.events.events(EventFilter(validation_id="A"))] == [
            e.event_id for e in a
        ]
        assert [r.event_id for r in await s.events.events(EventFilter(sent=True))] == [b.event_id]
        assert len(await s.events.events(EventFilter(status="on-course"))) == 2
        first = await s.events.events(EventFilter(), limit=2)
        rest = await s.events.events(EventFilter(), after_seq=first[-1].seq)
        assert [r.event_id for r in first + rest] == [e.event_id for e in (*a, b)]
        assert [v.validation_id for v in await s.events.validations_by_sent(True)] == ["B"]
        (not_sent,) = await s.events.validations_by_sent(False)
        assert tuple(not_sent) == ("A", 2, 0, 2)

    with_storage(db_url, scenario)


def test_settings_are_kept_and_versioned(db_url: str) -> None:
    async def scenario(s: Storage) -> None:
        assert await s.records.settings() is None
        first = await s.records.settings_version()
        await s.records.put_settings({"url": "https://a.example/", "enabled": True}, 10.0)
        await s.records.put_settings({"url": "https://b.example/", "enabled": False}, 20.0)
        assert await s.records.settings() == {"url": "https://b.example/", "enabled": False}
        second = await s.records.settings_version()
        assert second != first
        assert await s.records.delete_settings() is True
        assert await s.records.settings_version() != second  # a deletion is a change too
        assert await s.records.delete_settings() is False

    with_storage(db_url, scenario)


def test_a_validation_and_its_event_are_saved_together(db_url: str) -> None:
    async def scenario(s: Storage) -> None:
        created = ValidationRow("v1", "on-course", 0, 1.0, 1.0)
        await s.records.save_validation(created, event("v1"), expected=None)
        changed = ValidationRow("v1", "document-uploaded", 1, 1.0, 2.0)
        await s.records.save_validation(changed, event("v1", "document-uploaded"), expected=created)
        assert await s.records.validation("v1") == changed
        assert await s.records.validation("v2") is None
        # A change computed from a stale read stores nothing, its event included.
        with pytest.raises(StaleUpdate):
            await s.records.save_validation(
                ValidationRow("v1", "cancelled", 0, 1.0, 3.0),
                event("v1", "cancelled"),
                expected=created,
            )
        statuses = [r.status for r in await s.events.events(EventFilter(validation_id="v1"))]
        assert statuses == ["on-course", "document-uploaded"]
        (head,) = await s.events.claim(now(), 5, LEASE, **ONE)
        assert head.validation_id == "v1"
        with pytest.raises(DuplicateEvent):
            await s.records.save_validation(created, event("v1"), expected=None)

    with_storage(db_url, scenario)


def test_undelivered_events_survive_a_reopen(db_url: str) -> None:
    async def first(s: Storage) -> None:
        await s.events.insert([event("A"), event("A", "deleted")])
        (claim,) = await s.events.claim(now(), 5, 1.0, **ONE)  # a short lease: the "process" dies
        s.events.complete(done(claim))

    async def second(s: Storage) -> None:
        (claim,) = await s.events.claim(now() + 5, 5, LEASE, **ONE)
        row = await s.events.event(claim.event_id)
        assert row is not None and row.status == "deleted"
        assert await s.events.counts() == {"sent": 1, "pending": 1}

    with_storage(db_url, first)
    with_storage(db_url, second)


def test_a_schema_from_a_newer_build_is_refused_untouched(db_url: str) -> None:
    async def bump(s: Storage) -> None:
        await s.events.insert([event("A")])

    with_storage(db_url, bump)
    if db_url.startswith("postgresql"):
        from tests.postgres import bump_version

        bump_version(db_url)
    else:
        import sqlite3

        db = sqlite3.connect(db_url)
        db.execute("PRAGMA user_version = 99")
        db.commit()
        db.close()
    with pytest.raises(ConfigError, match="newer webhook-kit"):
        asyncio.run(open_storage(db_url))


def test_two_processes_starting_at_once_migrate_once(postgres_url: str) -> None:
    async def main() -> None:
        both = await asyncio.gather(*(open_storage(postgres_url) for _ in range(4)))
        try:
            await both[0].events.insert([event("A")])
            assert await both[3].events.counts() == {"pending": 1}
        finally:
            for storage in both:
                await storage.close()

    asyncio.run(main())


def test_a_lease_that_expires_moves_the_work_and_fences_the_late_completion(
    postgres_url: str,
) -> None:
    async def main() -> None:
        a, b = await open_storage(postgres_url), await open_storage(postgres_url)
        try:
            e = event("A")
            await a.events.insert([e, event("A", "deleted")])
            t = now()
            (mine,) = await a.events.claim(t, 5, 10.0, **ONE)
            assert await b.events.claim(t + 5, 5, 10.0, **ONE) == []  # leased to a
            (theirs,) = await b.events.claim(t + 11, 5, 10.0, **ONE)  # a "died": b takes over
            assert theirs.event_id == e.event_id and theirs.token != mine.token
            a.events.complete(done(mine))  # too late: recorded, but it moves nothing
            row = await a.events.event(e.event_id)
            assert row is not None and row.state == "pending"
            assert len(await b.events.attempts(e.event_id)) == 1
            b.events.complete(done(theirs))
            (next_one,) = await b.events.claim(t + 12, 5, 10.0, **ONE)
            assert next_one.validation_id == "A" and next_one.event_id != e.event_id
        finally:
            await a.close()
            await b.close()

    asyncio.run(main())


def test_a_second_process_on_one_sqlite_file_is_refused(tmp_path: Any) -> None:
    path = str(tmp_path / "one.db")

    async def main() -> None:
        first = await open_storage(path)
        try:
            with pytest.raises(ConfigError, match="in use by another webhook-kit process"):
                await open_storage(path)
        finally:
            await first.close()
        again = await open_storage(path)  # free again once closed
        await again.close()

    asyncio.run(main())


# --- accounts: keys, scoping, fair claims, breakers ------------------------------------------


def settings(cap: int | None = None, enabled: bool = True) -> dict[str, Any]:
    document: dict[str, Any] = {"url": "https://hooks.example/", "enabled": enabled}
    if cap is not None:
        document["max_in_flight"] = cap
    return document


def test_accounts_and_their_keys(db_url: str) -> None:
    async def scenario(s: Storage) -> None:
        acme = await s.records.add_account("acme", "hash-1", 1.0)
        assert acme.id.startswith("acc_") and acme.name == "acme"
        with pytest.raises(AlreadyExists):
            await s.records.add_account("acme", "hash-2", 1.0)
        assert await s.records.account_for_key("hash-1", 2.0) == acme.id
        assert await s.records.account_for_key("hash-x", 2.0) is None
        # Rotation: the old key lives on for the grace period, then stops.
        await s.records.add_key(acme.id, "hash-3", 10.0, grace=60.0)
        assert await s.records.account_for_key("hash-1", 69.0) == acme.id
        assert await s.records.account_for_key("hash-1", 70.0) is None
        assert await s.records.account_for_key("hash-3", 70.0) == acme.id
        assert [k.state(70.0) for k in await s.records.keys(acme.id)] == ["expired", "active"]
        assert await s.records.revoke_keys(acme.id, 80.0) == 1  # the live one
        assert await s.records.account_for_key("hash-3", 81.0) is None
        names = [a.name for a in await s.records.accounts()]
        assert names == ["acme", "default"]
        assert (await s.records.account_named("acme")) == acme
        assert await s.records.remove_account(acme.id) is True
        assert await s.records.account_named("acme") is None
        assert await s.records.remove_account(acme.id) is False

    with_storage(db_url, scenario)


def test_one_account_never_reads_another_accounts_objects(db_url: str) -> None:
    async def scenario(s: Storage) -> None:
        mine = ValidationRow("v-mine", "on-course", 0, 1.0, 1.0, "acc_a")
        await s.records.save_validation(
            mine, event("v-mine")._replace(account="acc_a"), expected=None
        )
        theirs = event("v-theirs")._replace(account="acc_b")
        await s.events.insert([theirs])
        assert await s.records.validation("v-mine", account="acc_b") is None
        assert await s.records.validation("v-mine", account="acc_a") == mine
        assert await s.events.event(theirs.event_id, account="acc_a") is None
        assert await s.events.requeue(theirs.event_id, now(), account="acc_a") == "unknown"
        assert await s.events.events(EventFilter(account="acc_a", validation_id="v-theirs")) == []
        assert await s.events.validations_by_sent(False, account="acc_b") != []
        assert [
            v.validation_id for v in await s.events.validations_by_sent(False, account="acc_a")
        ] == ["v-mine"]
        assert await s.events.counts(account="acc_a") == {"pending": 1}
        await s.records.put_settings(settings(), 1.0, account="acc_a")
        assert await s.records.settings(account="acc_b") is None

    with_storage(db_url, scenario)


def test_accounts_take_turns_under_their_caps(db_url: str) -> None:
    async def scenario(s: Storage) -> None:
        await s.records.put_settings(settings(cap=2), 1.0, account="acc_slow")
        await s.records.put_settings(settings(), 1.0, account="acc_fast")
        await s.records.put_settings(settings(enabled=False), 1.0, account="acc_off")
        await s.events.insert([event(f"slow-{i}")._replace(account="acc_slow") for i in range(10)])
        await s.events.insert([event(f"fast-{i}")._replace(account="acc_fast") for i in range(3)])
        await s.events.insert([event("off")._replace(account="acc_off")])
        await s.events.insert([event("nosettings")._replace(account="acc_none")])
        claims = await s.events.claim(now(), 100, LEASE)
        by = [c.account for c in claims]
        assert by.count("acc_slow") == 2  # its cap, however much it has waiting
        assert by.count("acc_fast") == 3
        assert "acc_off" not in by and "acc_none" not in by  # disabled, or no settings
        assert sorted(by[:2]) == ["acc_fast", "acc_slow"]  # one each before seconds
        assert await s.events.claim(now(), 100, LEASE) == []
        s.events.complete(done(next(c for c in claims if c.account == "acc_slow")))
        (more,) = await s.events.claim(now(), 100, LEASE)
        assert more.account == "acc_slow"
        depth = {q.account: q.depth for q in await s.events.queue_stats(now())}
        assert depth == {"acc_slow": 9, "acc_fast": 3, "acc_off": 1, "acc_none": 1}

    with_storage(db_url, scenario)


def test_an_open_breaker_holds_its_account_but_for_one_probe(db_url: str) -> None:
    async def scenario(s: Storage) -> None:
        from webhook_kit.delivery.breaker import Breaker

        t = now()
        await s.records.put_settings(settings(), 1.0, account="acc_down")
        await s.records.put_settings(settings(), 1.0, account="acc_up")
        await s.events.insert([event(f"down-{i}")._replace(account="acc_down") for i in range(3)])
        await s.events.insert([event("up")._replace(account="acc_up")])
        await s.events.set_breaker("acc_down", Breaker("open", t, "down", 5, 30.0, t + 30))
        assert (await s.events.breaker("acc_down")).state == "open"
        assert [c.account for c in await s.events.claim(t, 100, LEASE)] == ["acc_up"]
        due = await s.events.next_due(t)
        assert due == pytest.approx(t + 30)  # the probe
        probe = await s.events.claim(t + 31, 100, LEASE)
        assert [c.account for c in probe] == ["acc_down"]  # exactly one
        assert (await s.events.breaker("acc_down")).state == "half_open"
        assert await s.events.claim(t + 32, 100, LEASE) == []

    with_storage(db_url, scenario)
