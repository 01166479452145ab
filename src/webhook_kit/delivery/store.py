"""The durable store: events, their attempts, the webhook settings and the validations (SQLite).

WAL mode with ``synchronous=NORMAL``: a committed row survives a crash of the process (what
at-least-once needs here); only a power loss can drop the last commits. One connection, used
from the event loop's thread; every write is a short ``BEGIN IMMEDIATE`` transaction. One process
uses a database file at a time (an exclusive lock on ``<file>.lock`` refuses a second one), so
sequence numbers are assigned here. A write the database cannot take raises
:class:`~webhook_kit.errors.StoreError`.
Events carry only the indexes their queries need: each index costs every insert and update.

Over 400 lines: the schema, the file checks and every query of one SQLite database, kept
together until issue 12 (the storage seam) puts a backend interface here and splits it by backend.
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import stat
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import orjson

from webhook_kit.delivery.outcome import AttemptResult
from webhook_kit.errors import ConfigError, StoreError

EVENTS_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY,
    event_id TEXT NOT NULL UNIQUE,
    validation_id TEXT NOT NULL,
    status TEXT NOT NULL,
    body TEXT NOT NULL,
    -- ORs, not IN (...): SQLite builds a temporary table for an IN list on every row it
    -- writes, which cost about 2 us of each insert and update (a fifth of each).
    state TEXT NOT NULL CHECK (
        state = 'pending' OR state = 'retrying' OR state = 'sent' OR state = 'failed'
    ),
    created_at REAL NOT NULL,
    next_attempt_at REAL,
    sent_at REAL,
    attempts INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS events_by_validation ON events (validation_id, seq);
"""

ATTEMPTS_SCHEMA = """
CREATE TABLE IF NOT EXISTS attempts (
    id INTEGER PRIMARY KEY,
    seq INTEGER NOT NULL REFERENCES events (seq),
    attempt INTEGER NOT NULL,
    at REAL NOT NULL,
    duration_ms REAL NOT NULL,
    outcome TEXT NOT NULL,
    http_status INTEGER,
    reason TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS attempts_by_event ON attempts (seq, attempt);
"""

# The provider's own tables: the webhook settings and the validations.
PROVIDER_SCHEMA = """
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

SCHEMA = EVENTS_SCHEMA + ATTEMPTS_SCHEMA + PROVIDER_SCHEMA

EVENT_COLUMNS = (
    "seq, event_id, validation_id, status, body, state, created_at, next_attempt_at, sent_at, "
    "attempts"
)


def encode_body(notification: Mapping[str, Any]) -> str:
    """The notification as sent: compact UTF-8 JSON (the same text is stored and delivered)."""
    try:
        return orjson.dumps(notification).decode()
    except TypeError:  # orjson refuses integers beyond 64 bits, non-string keys, surrogates
        text = json.dumps(notification, separators=(",", ":"), ensure_ascii=False)
        return text if storable(text) == text else json.dumps(notification, separators=(",", ":"))


def storable(text: str) -> str:
    """``text`` as UTF-8 can carry it: a lone surrogate (from bytes that were not UTF-8)
    becomes a visible ``\\udcff`` instead of failing the whole write it is part of."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


SQLITE_HEADER = b"SQLite format 3\x00"


def _lock(path: str) -> int:
    """Hold an exclusive lock on ``<path>.lock`` for as long as the store is open.

    Two processes on one file would both assign sequence numbers and both deliver the pending
    events: the second one is refused at start instead. The kernel releases the lock when the
    process ends, however it ends, so a crash never leaves a stale lock behind.
    """
    lock_path = path + ".lock"
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 32).decode("ascii", "replace").strip()
        os.close(fd)
        who = f" (pid {holder})" if holder.isdigit() else ""
        raise ConfigError(
            f"database {path} is in use by another webhook-kit process{who}; "
            "one process at a time may use a database file"
        ) from None
    except OSError:
        os.close(fd)
        raise
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def _check_file(path: str) -> None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISREG(st.st_mode):
        raise ConfigError(f"cannot open database {path}: not a regular file")


def _prepare_file(path: str) -> None:
    """Check that ``path`` is absent, or a regular file that is empty or an SQLite database,
    before anything changes it; then make it the owner's alone.

    The webhook settings include the client secret, so the file is mode 0600 (SQLite gives its
    -wal and -shm files the same mode). The checks come first: ``--db /dev/null`` run as root
    must not change the mode of a device, nor ``--db notes.txt`` that of someone's notes.
    """
    flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0)
    fd = os.open(path, flags, 0o600)
    try:
        st = os.fstat(fd)  # the file actually opened, not the name checked a moment ago
        if not stat.S_ISREG(st.st_mode):
            raise ConfigError(f"cannot open database {path}: not a regular file")
        if st.st_size and os.pread(fd, len(SQLITE_HEADER), 0) != SQLITE_HEADER:
            raise ConfigError(f"cannot open database {path}: not an SQLite database")
        if stat.S_IMODE(st.st_mode) != 0o600:
            os.fchmod(fd, 0o600)
    finally:
        os.close(fd)


class AttemptRecord(NamedTuple):
    """One attempt and the state it leaves its event in (a named tuple: one per attempt)."""

    seq: int
    event_id: str
    attempt: int
    at: float
    result: AttemptResult
    state: str
    next_attempt_at: float | None


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
        self._lock: int | None = None
        try:
            if self.path != ":memory:":
                _check_file(self.path)  # before the lock file is made next to it
                self._lock = _lock(self.path)
                _prepare_file(self.path)
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self._db.row_factory = sqlite3.Row
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._db.execute("PRAGMA busy_timeout=5000")
            # Checkpoints (which fsync) every ~40 MB of WAL rather than every 4 MB: at thousands
            # of events a second the default checkpointed several times a second.
            self._db.execute("PRAGMA wal_autocheckpoint=10000")
            _migrate(self._db)
            self._db.executescript(SCHEMA)
            self._next_seq = 1 + (
                self._db.execute("SELECT MAX(seq) FROM events").fetchone()[0] or 0
            )
        except (sqlite3.Error, OSError) as exc:
            self._unlock()
            raise ConfigError(f"cannot open database {self.path}: {exc}") from exc
        except BaseException:
            self._unlock()
            raise

    def close(self) -> None:
        try:
            self._db.close()
        finally:
            self._unlock()

    def _unlock(self) -> None:
        if self._lock is not None:
            os.close(self._lock)  # closing the descriptor releases the lock
            self._lock = None

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One ``BEGIN IMMEDIATE`` transaction. A write the database cannot take (a full disk,
        an I/O error, text that cannot be stored) raises :class:`StoreError`; a constraint
        violation stays ``sqlite3.IntegrityError`` (the caller's mistake, not the store's)."""
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise StoreError(f"the database cannot take a write ({exc})") from exc
        try:
            yield self._db
            self._db.execute("COMMIT")
        except BaseException as exc:
            with suppress(sqlite3.Error):  # a failed COMMIT may already have ended it
                self._db.execute("ROLLBACK")
            if isinstance(exc, sqlite3.IntegrityError) or not isinstance(
                exc, (sqlite3.Error, UnicodeError)
            ):
                raise
            raise StoreError(f"the database cannot take a write ({exc})") from exc

    # -- events --------------------------------------------------------------------------------

    def insert_event(self, notification: Mapping[str, Any], now: float) -> int:
        """Store a new event as ``pending``, due ``now``; returns its sequence number."""
        return self.insert_encoded([(notification, encode_body(notification))], now)[0]

    def insert_encoded(
        self, batch: Sequence[tuple[Mapping[str, Any], str]], now: float
    ) -> list[int]:
        """Store new events, each with its body already encoded as JSON text, in one transaction
        (one commit for the batch); returns their sequence numbers."""
        first = self._next_seq
        rows = [
            (first + i, n["event_id"], n["validation_id"], n["status"], text, now, now)
            for i, (n, text) in enumerate(batch)
        ]
        with self._write() as db:
            db.executemany(
                "INSERT INTO events (seq, event_id, validation_id, status, body, state,"
                " created_at, next_attempt_at) VALUES (?, ?, ?, ?, ?, 'pending', ?, ?)",
                rows,
            )
        self._next_seq = first + len(rows)
        return [row[0] for row in rows]

    def record_attempts(self, records: Sequence[AttemptRecord]) -> None:
        """Store attempts and their events' new states, all in one transaction."""
        with self._write() as db:
            db.executemany(
                "INSERT INTO attempts (seq, attempt, at, duration_ms, outcome, http_status,"
                " reason) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        r.seq,
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
                [(r.state, r.attempt, r.next_attempt_at, r.state, r.at, r.seq) for r in records],
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
            "SELECT a.attempt, a.at, a.duration_ms, a.outcome, a.http_status, a.reason"
            " FROM attempts AS a JOIN events AS e ON e.seq = a.seq"
            " WHERE e.event_id = ? ORDER BY a.attempt, a.id",
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
                # Refused (StoreError) rather than stored if some text cannot be encoded: a
                # stored lone surrogate would break every later read of the settings.
                (json.dumps(document, ensure_ascii=False), now),
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
            seq = self._next_seq
            db.execute(
                "INSERT INTO events (seq, event_id, validation_id, status, body, state, created_at,"
                " next_attempt_at) VALUES (?, ?, ?, ?, ?, 'pending', ?, ?)",
                (
                    seq,
                    notification["event_id"],
                    validation_id,
                    status,
                    encode_body(notification),
                    now,
                    now,
                ),
            )
        self._next_seq = seq + 1
        return seq


def _migrate(db: sqlite3.Connection) -> None:
    """Bring a database from an earlier build up to date: its attempts pointed at the event's
    text id. They now point at its sequence number, because inserting into an index of random
    UUID text was the largest single cost of recording an attempt."""
    columns = {row[1] for row in db.execute("PRAGMA table_info(attempts)")}
    if "event_id" not in columns:
        return
    db.execute("BEGIN IMMEDIATE")
    try:
        db.execute("DROP INDEX IF EXISTS attempts_by_event")
        db.execute("ALTER TABLE attempts RENAME TO attempts_v0")
        for statement in ATTEMPTS_SCHEMA.split(";"):
            if statement.strip():
                db.execute(statement)
        db.execute(
            "INSERT INTO attempts (id, seq, attempt, at, duration_ms, outcome, http_status, reason)"
            " SELECT a.id, e.seq, a.attempt, a.at, a.duration_ms, a.outcome, a.http_status,"
            " a.reason FROM attempts_v0 AS a JOIN events AS e ON e.event_id = a.event_id"
        )
        db.execute("DROP TABLE attempts_v0")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
