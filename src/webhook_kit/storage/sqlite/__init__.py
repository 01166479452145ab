"""The SQLite backend: the embedded default, one process per database file.

WAL mode with ``synchronous=NORMAL``: a committed row survives a crash of the process (what
at-least-once needs here); only a power loss can drop the last commits. One connection, used
from the event loop's thread (a call is a few microseconds: cheaper than any hand-off to a
thread); every write is a short ``BEGIN IMMEDIATE`` transaction. One process per file (see
:mod:`.files`), so claims are kept in memory by the :class:`Scheduler`, rebuilt from the
file on open, and sequence numbers are assigned here.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable

from webhook_kit.errors import ConfigError
from webhook_kit.storage.sqlite import files
from webhook_kit.storage.sqlite.events import SqliteEvents
from webhook_kit.storage.sqlite.records import SqliteRecords
from webhook_kit.storage.sqlite.schema import migrate

Clock = Callable[[], float]


class SqliteStorage:
    """One SQLite file: :attr:`events` and :attr:`records` share its connection."""

    def __init__(
        self, db: sqlite3.Connection, path: str, lock: files.Lock | None, clock: Clock = time.time
    ) -> None:
        self._db = db
        self._lock = lock
        self._path = path
        self._events = SqliteEvents(db, clock)
        self._records = SqliteRecords(db, self._events)

    @classmethod
    def open(cls, path: str, clock: Clock = time.time) -> SqliteStorage:
        lock: files.Lock | None = None
        db: sqlite3.Connection | None = None
        try:
            if path != ":memory:":
                files.check_file(path)  # before the lock file is made next to it
                lock = files.lock(path)
            db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA foreign_keys=ON")
            db.execute("PRAGMA busy_timeout=5000")
            # Checkpoints (which fsync) every ~40 MB of WAL rather than every 4 MB: at thousands
            # of events a second the default checkpointed several times a second.
            db.execute("PRAGMA wal_autocheckpoint=10000")
            migrate(db, path)
            storage = cls(db, path, lock, clock)
            storage._events.load()
            return storage
        except (sqlite3.Error, OSError) as exc:
            _close(db, lock)
            raise ConfigError(f"cannot open database {path}: {exc}") from exc
        except BaseException:
            _close(db, lock)
            raise

    @property
    def events(self) -> SqliteEvents:
        return self._events

    @property
    def records(self) -> SqliteRecords:
        return self._records

    @property
    def display(self) -> str:
        return self._path

    async def close(self) -> None:
        try:
            self._events.shutdown()
        finally:
            _close(self._db, self._lock)
            self._lock = None


def _close(db: sqlite3.Connection | None, lock: files.Lock | None) -> None:
    try:
        if db is not None:
            db.close()
    finally:
        if lock is not None:
            lock.release()  # after the connection: see files.lock
