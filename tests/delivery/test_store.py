"""The SQLite store on its own: the upgrade of an earlier database, the state check, id order."""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path

import pytest

from webhook_kit.contract import notifications
from webhook_kit.delivery.outcome import AttemptResult
from webhook_kit.delivery.store import AttemptRecord, Store
from webhook_kit.ids import new_id

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


def test_an_earlier_database_is_upgraded_without_losing_attempts(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    Store(path).close()
    db = sqlite3.connect(path)
    db.executescript(ATTEMPTS_V0)
    body = notifications.build("on-course", validation_id=new_id(), previous_status=None)
    db.execute(
        "INSERT INTO events (seq, event_id, validation_id, status, body, state, created_at,"
        " next_attempt_at, attempts) VALUES (1, ?, ?, 'on-course', '{}', 'retrying', 1, 20, 2)",
        (body["event_id"], body["validation_id"]),
    )
    db.executemany(
        "INSERT INTO attempts (event_id, attempt, at, duration_ms, outcome, http_status, reason)"
        " VALUES (?, ?, ?, 5, 'http_error', 500, 'HTTP 500')",
        [(body["event_id"], 1, 1.0), (body["event_id"], 2, 10.0)],
    )
    db.commit()
    db.close()

    store = Store(path)
    assert [tuple(r) for r in store.attempts(body["event_id"])] == [
        (1, 1.0, 5.0, "http_error", 500, "HTTP 500"),
        (2, 10.0, 5.0, "http_error", 500, "HTTP 500"),
    ]
    # New attempts go into the upgraded table, after the old ones.
    store.record_attempts(
        [
            AttemptRecord(
                1,
                body["event_id"],
                3,
                30.0,
                AttemptResult("success", "200", 4.0, 200),
                "sent",
                None,
            )
        ]
    )
    assert [r["attempt"] for r in store.attempts(body["event_id"])] == [1, 2, 3]
    assert store.counts() == {"sent": 1}
    store.close()
    # Opening it again finds nothing left to upgrade.
    reopened = Store(path)
    assert len(reopened.attempts(body["event_id"])) == 3
    reopened.close()


def test_an_unknown_state_is_refused() -> None:
    store = Store()
    body = notifications.build("on-course", validation_id=new_id(), previous_status=None)
    seq = store.insert_event(body, 1.0)
    bad = AttemptRecord(
        seq, body["event_id"], 1, 2.0, AttemptResult("success", "200", 1.0, 200), "done", None
    )
    with pytest.raises(sqlite3.IntegrityError):
        store.record_attempts([bad])
    assert store.counts() == {"pending": 1}
    assert store.attempts(body["event_id"]) == []


def test_ids_are_uuid7_and_increase() -> None:
    ids = [new_id() for _ in range(1000)]
    assert all(uuid.UUID(i).version == 7 for i in ids)
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    lifecycle = list(notifications.lifecycle())
    assert uuid.UUID(lifecycle[0]["validation_id"]).version == 7
    assert all(uuid.UUID(n["event_id"]).version == 7 for n in lifecycle)
