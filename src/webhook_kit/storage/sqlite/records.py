"""The provider's records (webhook settings, validations) in the same SQLite file."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from typing import Any

from webhook_kit.errors import DuplicateEvent, StaleUpdate
from webhook_kit.storage.rows import NewEvent, ValidationRow
from webhook_kit.storage.sqlite.events import SqliteEvents
from webhook_kit.storage.sqlite.sql import read, writing


class SqliteRecords:
    """The provider's records (see :class:`~webhook_kit.storage.base.RecordStore`)."""

    def __init__(self, db: sqlite3.Connection, events: SqliteEvents) -> None:
        self._db = db
        self._events = events

    async def settings(self) -> dict[str, Any] | None:
        rows = read(self._db, "SELECT document FROM settings WHERE id = 1")
        return None if not rows else dict(json.loads(rows[0][0]))

    async def settings_version(self) -> float | None:
        rows = read(self._db, "SELECT updated_at FROM settings WHERE id = 1")
        return None if not rows else float(rows[0][0])

    async def put_settings(self, document: Mapping[str, Any], now: float) -> None:
        with writing(self._db) as db:
            db.execute(
                "INSERT INTO settings (id, document, updated_at) VALUES (1, ?, ?)"
                " ON CONFLICT (id) DO UPDATE SET document = excluded.document,"
                " updated_at = excluded.updated_at",
                # Refused (StoreError) rather than stored if some text cannot be encoded: a
                # stored lone surrogate would break every later read of the settings.
                (json.dumps(document, ensure_ascii=False), now),
            )

    async def delete_settings(self) -> bool:
        with writing(self._db) as db:
            return bool(db.execute("DELETE FROM settings WHERE id = 1").rowcount == 1)

    async def validation(self, validation_id: str) -> ValidationRow | None:
        rows = read(
            self._db,
            "SELECT id, status, documents, created_at, updated_at FROM validations WHERE id = ?",
            (validation_id,),
        )
        return ValidationRow(*rows[0]) if rows else None

    async def save_validation(
        self, row: ValidationRow, notification: NewEvent, *, expected: ValidationRow | None
    ) -> None:
        try:
            with writing(self._db) as db:
                if expected is None:
                    db.execute(
                        "INSERT INTO validations (id, status, documents, created_at, updated_at)"
                        " VALUES (?, ?, ?, ?, ?)",
                        (row.id, row.status, row.documents, row.created_at, row.updated_at),
                    )
                elif (
                    db.execute(
                        "UPDATE validations SET status = ?, documents = ?, updated_at = ?"
                        " WHERE id = ? AND status = ? AND documents = ?",
                        (
                            row.status,
                            row.documents,
                            row.updated_at,
                            row.id,
                            expected.status,
                            expected.documents,
                        ),
                    ).rowcount
                    != 1
                ):
                    raise StaleUpdate(f"validation {row.id} changed meanwhile")
                seq = self._events.insert_in(db, notification, row.updated_at)
        except sqlite3.IntegrityError as exc:
            raise DuplicateEvent(f"validation {row.id} or its event is already stored") from exc
        self._events.inserted(seq, notification, row.updated_at)
