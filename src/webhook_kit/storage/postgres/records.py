"""The provider's records (webhook settings, validations) on PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import asyncpg

from webhook_kit.errors import StaleUpdate
from webhook_kit.storage.postgres.errors import translated
from webhook_kit.storage.postgres.events import PostgresEvents
from webhook_kit.storage.rows import NewEvent, ValidationRow


class PostgresRecords:
    """See :class:`~webhook_kit.storage.base.RecordStore`."""

    def __init__(self, pool: asyncpg.Pool, events: PostgresEvents) -> None:
        self._pool = pool
        self._events = events

    async def settings(self) -> dict[str, Any] | None:
        async with translated("cannot read the webhook settings"):
            document = await self._pool.fetchval("SELECT document FROM settings WHERE id = 1")
        return None if document is None else dict(json.loads(document))

    async def settings_version(self) -> float | None:
        async with translated("cannot read the webhook settings"):
            version = await self._pool.fetchval("SELECT updated_at FROM settings WHERE id = 1")
        return None if version is None else float(version)

    async def put_settings(self, document: Mapping[str, Any], now: float) -> None:
        async with translated("cannot save the webhook settings"):
            await self._pool.execute(
                "INSERT INTO settings (id, document, updated_at) VALUES (1, $1, $2)"
                " ON CONFLICT (id) DO UPDATE SET document = excluded.document,"
                " updated_at = excluded.updated_at",
                json.dumps(document, ensure_ascii=False),
                now,
            )

    async def delete_settings(self) -> bool:
        async with translated("cannot delete the webhook settings"):
            done = await self._pool.execute("DELETE FROM settings WHERE id = 1")
        return bool(done == "DELETE 1")

    async def validation(self, validation_id: str) -> ValidationRow | None:
        async with translated("cannot read the validation"):
            row = await self._pool.fetchrow(
                "SELECT id, status, documents, created_at, updated_at FROM validations"
                " WHERE id = $1",
                validation_id,
            )
        return None if row is None else ValidationRow(*row)

    async def save_validation(
        self, row: ValidationRow, notification: NewEvent, *, expected: ValidationRow | None
    ) -> None:
        async with translated(f"cannot save validation {row.id}"), self._pool.acquire() as conn:
            async with conn.transaction():
                if expected is None:
                    await conn.execute(
                        "INSERT INTO validations (id, status, documents, created_at, updated_at)"
                        " VALUES ($1, $2, $3, $4, $5)",
                        row.id,
                        row.status,
                        row.documents,
                        row.created_at,
                        row.updated_at,
                    )
                else:
                    done = await conn.execute(
                        "UPDATE validations SET status = $1, documents = $2, updated_at = $3"
                        " WHERE id = $4 AND status = $5 AND documents = $6",
                        row.status,
                        row.documents,
                        row.updated_at,
                        row.id,
                        expected.status,
                        expected.documents,
                    )
                    if done != "UPDATE 1":
                        raise StaleUpdate(f"validation {row.id} changed meanwhile")
                await self._events.insert_in(conn, notification, row.updated_at)
        await self._events.inserted()
