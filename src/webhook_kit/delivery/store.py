"""The durable store: events, their attempts, the webhook settings and the validations (SQLite).

WAL mode with ``synchronous=NORMAL``: a committed row survives a crash of the process (what
at-least-once needs here); only a power loss can drop the last commits. One connection, used
from the event loop's thread; every write is a short ``BEGIN IMMEDIATE`` transaction.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from webhook_kit.delivery.outcome import AttemptResult
from webhook_kit.errors import ConfigError

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL UNIQUE,
    validation_id TEXT NOT NULL,
    status TEXT NOT NULL,
    body TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'retrying', 'sent', 'failed')),
    created_at REAL NOT NULL,
    next_attempt_at REAL,
    sent_at REAL,
    attempts INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS events_by_validation ON events (validation_id, seq);
CREATE INDEX IF NOT EXISTS events_by_state ON events (state, seq);
CREATE TABLE IF NOT EXISTS attempts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL REFERENCES events (event_id),
    attempt INTEGER NOT NULL,
    at REAL NOT NULL,
    duration_ms REAL NOT NULL,
    outcome TEXT NOT NULL,
    http_status INTEGER,
    reason TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS attempts_by_event ON attempts (event_id, attempt);
CREATE TABLE IF NOT EXISTS settings (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    document TEXT NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS validations (
    id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    documents INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
"""

EVENT_COLUMNS = (
    "seq, event_id, validation_id, status, body, state, created_at, next_attempt_at, sent_at, "
    "attempts"
)


@dataclass(frozen=True)
class EventFilter:
    sent: bool | None = None
    status: str | None = None
    validation_id: str | None = None
    since: float | None = None
    until: float | None = None
    state: str | None = None


class Store:
    def __init__(self, path: str | Path = ":memory:") -> None:
        self.path = str(path)
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self._db.row_factory = sqlite3.Row
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._db.execute("PRAGMA busy_timeout=5000")
            self._db.executescript(SCHEMA)
        except sqlite3.Error as exc:
            raise ConfigError(f"cannot open database {self.path}: {exc}") from exc

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    # -- events --------------------------------------------------------------------------------

    def insert_event(self, notification: Mapping[str, Any], now: float) -> int:
        """Store a new event as ``pending``, due ``now``; returns its sequence number."""
        with self._write() as db:
            cursor = db.execute(
                "INSERT INTO events (event_id, validation_id, status, body, state, created_at,"
                " next_attempt_at) VALUES (?, ?, ?, ?, 'pending', ?, ?)",
                (
                    notification["event_id"],
                    notification["validation_id"],
                    notification["status"],
                    json.dumps(notification, separators=(",", ":")),
                    now,
                    now,
                ),
            )
        seq = cursor.lastrowid
        assert seq is not None
        return seq

    def record_attempt(
        self,
        event_id: str,
        attempt: int,
        at: float,
        result: AttemptResult,
        *,
        state: str,
        next_attempt_at: float | None,
    ) -> None:
        with self._write() as db:
            db.execute(
                "INSERT INTO attempts (event_id, attempt, at, duration_ms, outcome, http_status,"
                " reason) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    event_id,
                    attempt,
                    at,
                    result.duration_ms,
                    result.outcome,
                    result.http_status,
                    result.reason[:500],
                ),
            )
            db.execute(
                "UPDATE events SET state = ?, attempts = ?, next_attempt_at = ?,"
                " sent_at = CASE WHEN ? = 'sent' THEN ? ELSE sent_at END WHERE event_id = ?",
                (state, attempt, next_attempt_at, state, at, event_id),
            )

    def requeue(self, event_id: str, now: float) -> bool:
        """Make a sent or failed event pending again (redelivery); False if it is queued."""
        with self._write() as db:
            cursor = db.execute(
                "UPDATE events SET state = 'pending', next_attempt_at = ?"
                " WHERE event_id = ? AND state IN ('sent', 'failed')",
                (now, event_id),
            )
        return cursor.rowcount == 1

    def unfinished(self) -> list[sqlite3.Row]:
        """Events not yet sent or failed, oldest first: what a restart must deliver."""
        return self._db.execute(
            f"SELECT {EVENT_COLUMNS} FROM events WHERE state IN ('pending', 'retrying')"
            " ORDER BY seq"
        ).fetchall()

    def event(self, event_id: str) -> sqlite3.Row | None:
        row: sqlite3.Row | None = self._db.execute(
            f"SELECT {EVENT_COLUMNS} FROM events WHERE event_id = ?", (event_id,)
        ).fetchone()
        return row

    def attempts(self, event_id: str) -> list[sqlite3.Row]:
        return self._db.execute(
            "SELECT attempt, at, duration_ms, outcome, http_status, reason FROM attempts"
            " WHERE event_id = ? ORDER BY attempt, id",
            (event_id,),
        ).fetchall()

    def events(
        self, where: EventFilter, *, after_seq: int = 0, limit: int = 100
    ) -> list[sqlite3.Row]:
        clauses: list[str] = ["seq > ?"]
        params: list[object] = [after_seq]
        if where.sent is True:
            clauses.append("state = 'sent'")
        elif where.sent is False:
            clauses.append("state != 'sent'")
        for column, value in (
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
        return self._db.execute(
            f"SELECT {EVENT_COLUMNS} FROM events WHERE {' AND '.join(clauses)}"
            " ORDER BY seq LIMIT ?",
            params,
        ).fetchall()

    def validations_by_sent(
        self, sent: bool, *, after: str = "", limit: int = 100
    ) -> list[sqlite3.Row]:
        """Validations whose events were all sent (``sent``) or not all sent (not ``sent``)."""
        having = "SUM(state != 'sent') = 0" if sent else "SUM(state != 'sent') > 0"
        return self._db.execute(
            "SELECT validation_id, COUNT(*) AS events, SUM(state = 'sent') AS sent,"
            " SUM(state != 'sent') AS not_sent FROM events WHERE validation_id > ?"
            f" GROUP BY validation_id HAVING {having} ORDER BY validation_id LIMIT ?",
            (after, limit),
        ).fetchall()

    def counts(self) -> dict[str, int]:
        rows = self._db.execute("SELECT state, COUNT(*) FROM events GROUP BY state").fetchall()
        return {state: count for state, count in rows}

    # -- settings ------------------------------------------------------------------------------

    def settings(self) -> dict[str, Any] | None:
        row = self._db.execute("SELECT document FROM settings WHERE id = 1").fetchone()
        return None if row is None else dict(json.loads(row[0]))

    def put_settings(self, document: Mapping[str, Any], now: float) -> None:
        with self._write() as db:
            db.execute(
                "INSERT INTO settings (id, document, updated_at) VALUES (1, ?, ?)"
                " ON CONFLICT (id) DO UPDATE SET document = excluded.document,"
                " updated_at = excluded.updated_at",
                (json.dumps(document), now),
            )

    def delete_settings(self) -> bool:
        with self._write() as db:
            return db.execute("DELETE FROM settings WHERE id = 1").rowcount == 1

    # -- validations ---------------------------------------------------------------------------

    def validation(self, validation_id: str) -> sqlite3.Row | None:
        row: sqlite3.Row | None = self._db.execute(
            "SELECT id, status, documents, created_at, updated_at FROM validations WHERE id = ?",
            (validation_id,),
        ).fetchone()
        return row

    def save_validation(
        self,
        validation_id: str,
        status: str,
        documents: int,
        now: float,
        notification: Mapping[str, Any],
    ) -> int:
        """Update (or create) a validation and store its event in one transaction."""
        with self._write() as db:
            db.execute(
                "INSERT INTO validations (id, status, documents, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET status = excluded.status,"
                " documents = excluded.documents, updated_at = excluded.updated_at",
                (validation_id, status, documents, now, now),
            )
            cursor = db.execute(
                "INSERT INTO events (event_id, validation_id, status, body, state, created_at,"
                " next_attempt_at) VALUES (?, ?, ?, ?, 'pending', ?, ?)",
                (
                    notification["event_id"],
                    validation_id,
                    status,
                    json.dumps(notification, separators=(",", ":")),
                    now,
                    now,
                ),
            )
        seq = cursor.lastrowid
        assert seq is not None
        return seq
