"""The SQLite file on its own: the upgrade of an earlier database and the state check; and the
ids every store keys its events on."""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from webhook_kit.contract import notifications
from webhook_kit.delivery.outcome import AttemptResult
from webhook_kit.ids import new_id
from webhook_kit.storage.rows import AttemptRecord, NewEvent
from webhook_kit.storage.sqlite import SqliteStorage

#: The attempts table as earlier builds created it: keyed by the event's text id.
ATTEMPTS_V0 = """
DROP INDEX attempts_by_event;
DROP TABLE attempts;
CREATE TABLE attempts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL REFERENCES events (event_id),
    attempt INTEGER NOT NULL,
    at REAL NOT NULL,
    duration_ms REAL NOT NULL,
    outcome TEXT NOT NULL,
    http_status INTEGER,
    reason TEXT NOT NULL
);
CREATE INDEX attempts_by_event ON attempts (event_id, attempt);
"""


def with_file(path: Path, scenario: Callable[[SqliteStorage], Awaitable[None]]) -> None:
    async def main() -> None:
        storage = SqliteStorage.open(str(path))
        try:
            await scenario(storage)
        finally:
            await storage.close()

    asyncio.run(main())


async def nothing(storage: SqliteStorage) -> None:
    pass


def test_an_earlier_database_is_upgraded_without_losing_attempts(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with_file(path, nothing)
    db = sqlite3.connect(path)
    db.executescript(ATTEMPTS_V0)
    body = notifications.build("on-course", validation_id=new_id(), previous_status=None)
    event_id = body["event_id"]
    db.execute(
        "INSERT INTO events (seq, event_id, validation_id, status, body, state, created_at,"
        " next_attempt_at, attempts) VALUES (1, ?, ?, 'on-course', '{}', 'retrying', 1, 20, 2)",
        (event_id, body["validation_id"]),
    )
    db.executemany(
        "INSERT INTO attempts (event_id, attempt, at, duration_ms, outcome, http_status, reason)"
        " VALUES (?, ?, ?, 5, 'http_error', 500, 'HTTP 500')",
        [(event_id, 1, 1.0), (event_id, 2, 10.0)],
    )
    db.commit()
    db.close()

    async def upgraded(storage: SqliteStorage) -> None:
        assert [tuple(r) for r in await storage.events.attempts(event_id)] == [
            (1, 1.0, 5.0, "http_error", 500, "HTTP 500"),
            (2, 10.0, 5.0, "http_error", 500, "HTTP 500"),
        ]
        # The retrying event is queued again, with its attempts so far; it is due at 20.
        (claim,) = await storage.events.claim(20.0, 10, 60.0, accounts=["default"])
        assert (claim.seq, claim.event_id, claim.attempts) == (1, event_id, 2)
        # New attempts go into the upgraded table, after the old ones.
        result = AttemptResult("success", "200", 4.0, 200)
        storage.events.complete(AttemptRecord(claim, 3, 30.0, result, "sent", None))
        assert [r.attempt for r in await storage.events.attempts(event_id)] == [1, 2, 3]
        assert await storage.events.counts() == {"sent": 1}

    with_file(path, upgraded)

    async def reopened(storage: SqliteStorage) -> None:
        # Opening it again finds nothing left to upgrade.
        assert len(await storage.events.attempts(event_id)) == 3

    with_file(path, reopened)


def test_an_unknown_state_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "states.db"
    body = notifications.build("on-course", validation_id=new_id(), previous_status=None)

    async def insert(storage: SqliteStorage) -> None:
        await storage.events.insert([NewEvent.of(body)])

    with_file(path, insert)
    db = sqlite3.connect(path)
    with pytest.raises(sqlite3.IntegrityError):
        db.execute("UPDATE events SET state = 'done' WHERE event_id = ?", (body["event_id"],))
    db.close()

    async def unchanged(storage: SqliteStorage) -> None:
        assert await storage.events.counts() == {"pending": 1}
        assert await storage.events.attempts(body["event_id"]) == []

    with_file(path, unchanged)


def test_ids_are_uuid7_and_increase() -> None:
    ids = [new_id() for _ in range(1000)]
    assert all(uuid.UUID(i).version == 7 for i in ids)
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    lifecycle = list(notifications.lifecycle())
    assert uuid.UUID(lifecycle[0]["validation_id"]).version == 7
    assert all(uuid.UUID(n["event_id"]).version == 7 for n in lifecycle)
