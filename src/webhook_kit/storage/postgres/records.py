"""The provider's records (accounts, keys, webhook settings, validations) on PostgreSQL."""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from typing import Any

import asyncpg

from webhook_kit.errors import AlreadyExists, DuplicateEvent, StaleUpdate
from webhook_kit.storage.postgres.errors import bounded_call
from webhook_kit.storage.postgres.events import PostgresEvents
from webhook_kit.storage.rows import (
    DEFAULT_ACCOUNT,
    AccountRow,
    KeyRow,
    NewEvent,
    SigningKeyRow,
    ValidationRow,
    settings_columns,
)

#: Characters of a key's hash that name it (``accounts keys``, ``revoke-key``).
KEY_ID_LENGTH = 12
BUMP = (
    "INSERT INTO counters (name, value) VALUES ('settings', 1)"
    " ON CONFLICT (name) DO UPDATE SET value = counters.value + 1"
)


class PostgresRecords:
    """See :class:`~webhook_kit.storage.base.RecordStore`."""

    def __init__(self, pool: asyncpg.Pool, events: PostgresEvents) -> None:
        self._pool = pool
        self._events = events

    # -- settings ------------------------------------------------------------------------------

    async def settings(self, *, account: str = DEFAULT_ACCOUNT) -> dict[str, Any] | None:
        async with bounded_call(self._pool, "cannot read the webhook settings") as conn:
            document = await conn.fetchval(
                "SELECT document FROM account_settings WHERE account = $1", account
            )
        return None if document is None else dict(json.loads(document))

    async def settings_version(self) -> int:
        async with bounded_call(self._pool, "cannot read the webhook settings") as conn:
            version = await conn.fetchval("SELECT value FROM counters WHERE name = 'settings'")
        return int(version or 0)

    async def put_settings(
        self, document: Mapping[str, Any], now: float, *, account: str = DEFAULT_ACCOUNT
    ) -> None:
        enabled, cap = settings_columns(document)
        async with bounded_call(self._pool, "cannot save the webhook settings") as conn:
            async with conn.transaction():
                await conn.execute(
                    "INSERT INTO account_settings (account, document, updated_at, enabled,"
                    " max_in_flight) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (account) DO UPDATE"
                    " SET document = excluded.document, updated_at = excluded.updated_at,"
                    " enabled = excluded.enabled, max_in_flight = excluded.max_in_flight",
                    account,
                    json.dumps(document, ensure_ascii=False),
                    now,
                    enabled,
                    cap,
                )
                await conn.execute(BUMP)
        await self._events.inserted()  # an enabled webhook may have work waiting

    async def delete_settings(self, *, account: str = DEFAULT_ACCOUNT) -> bool:
        async with bounded_call(self._pool, "cannot delete the webhook settings") as conn:
            async with conn.transaction():
                done = await conn.execute(
                    "DELETE FROM account_settings WHERE account = $1", account
                )
                await conn.execute(BUMP)
        return bool(done == "DELETE 1")

    # -- validations ---------------------------------------------------------------------------

    async def validation(
        self, validation_id: str, *, account: str = DEFAULT_ACCOUNT
    ) -> ValidationRow | None:
        async with bounded_call(self._pool, "cannot read the validation") as conn:
            row = await conn.fetchrow(
                "SELECT id, status, documents, created_at, updated_at, account FROM validations"
                " WHERE id = $1 AND account = $2",
                validation_id,
                account,
            )
        return None if row is None else ValidationRow(*row)

    async def save_validation(
        self, row: ValidationRow, notification: NewEvent, *, expected: ValidationRow | None
    ) -> None:
        async with bounded_call(self._pool, f"cannot save validation {row.id}") as conn:
            async with conn.transaction():
                if expected is None:
                    await conn.execute(
                        "INSERT INTO validations (id, status, documents, created_at, updated_at,"
                        " account) VALUES ($1, $2, $3, $4, $5, $6)",
                        row.id,
                        row.status,
                        row.documents,
                        row.created_at,
                        row.updated_at,
                        row.account,
                    )
                else:
                    done = await conn.execute(
                        "UPDATE validations SET status = $1, documents = $2, updated_at = $3"
                        " WHERE id = $4 AND account = $5 AND status = $6 AND documents = $7",
                        row.status,
                        row.documents,
                        row.updated_at,
                        row.id,
                        row.account,
                        expected.status,
                        expected.documents,
                    )
                    if done != "UPDATE 1":
                        raise StaleUpdate(f"validation {row.id} changed meanwhile")
                await self._events.insert_in(conn, notification, row.updated_at)
        await self._events.inserted()

    # -- accounts and keys ---------------------------------------------------------------------

    async def add_account(self, name: str, key_hash: str, now: float) -> AccountRow:
        account = AccountRow(f"acc_{secrets.token_hex(6)}", name, now)
        try:
            async with bounded_call(self._pool, "cannot add the account") as conn:
                async with conn.transaction():
                    await conn.execute(
                        "INSERT INTO accounts (id, name, created_at) VALUES ($1, $2, $3)",
                        account.id,
                        name,
                        now,
                    )
                    await conn.execute(
                        "INSERT INTO api_keys (hash, account, created_at) VALUES ($1, $2, $3)",
                        key_hash,
                        account.id,
                        now,
                    )
        except DuplicateEvent as exc:  # the unique name (translated as a duplicate)
            raise AlreadyExists(f"an account named {name!r} exists already") from exc
        return account

    async def accounts(self, *, after: str = "", limit: int = 100) -> list[AccountRow]:
        async with bounded_call(self._pool, "cannot list the accounts") as conn:
            rows = await conn.fetch(
                "SELECT id, name, created_at FROM accounts WHERE name > $1 ORDER BY name LIMIT $2",
                after,
                limit,
            )
        return [AccountRow(*row) for row in rows]

    async def account_named(self, name: str) -> AccountRow | None:
        async with bounded_call(self._pool, "cannot read the account") as conn:
            row = await conn.fetchrow(
                "SELECT id, name, created_at FROM accounts WHERE name = $1", name
            )
        return None if row is None else AccountRow(*row)

    async def account(self, account_id: str) -> AccountRow | None:
        async with bounded_call(self._pool, "cannot read the account") as conn:
            row = await conn.fetchrow(
                "SELECT id, name, created_at FROM accounts WHERE id = $1", account_id
            )
        return None if row is None else AccountRow(*row)

    async def account_for_key(self, key_hash: str, now: float) -> str | None:
        async with bounded_call(self._pool, "cannot check the API key") as conn:
            account = await conn.fetchval(
                "SELECT account FROM api_keys WHERE hash = $1 AND revoked_at IS NULL"
                " AND (expires_at IS NULL OR expires_at > $2)",
                key_hash,
                now,
            )
        return None if account is None else str(account)

    async def keys(self, account: str) -> list[KeyRow]:
        async with bounded_call(self._pool, "cannot list the keys") as conn:
            rows = await conn.fetch(
                "SELECT substr(hash, 1, $1), created_at, expires_at, revoked_at FROM api_keys"
                " WHERE account = $2 ORDER BY created_at",
                KEY_ID_LENGTH,
                account,
            )
        return [KeyRow(*row) for row in rows]

    async def add_key(self, account: str, key_hash: str, now: float, *, grace: float) -> None:
        async with bounded_call(self._pool, "cannot add the key") as conn:
            async with conn.transaction():
                await conn.execute(
                    "UPDATE api_keys SET expires_at = $1 WHERE account = $2"
                    " AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $1)",
                    now + grace,
                    account,
                )
                await conn.execute(
                    "INSERT INTO api_keys (hash, account, created_at) VALUES ($1, $2, $3)",
                    key_hash,
                    account,
                    now,
                )

    async def revoke_keys(self, account: str, now: float, *, key_id: str | None = None) -> int:
        async with bounded_call(self._pool, "cannot revoke the keys") as conn:
            done = await conn.execute(
                "UPDATE api_keys SET revoked_at = $1 WHERE account = $2 AND revoked_at IS NULL"
                " AND (expires_at IS NULL OR expires_at > $1)"
                " AND ($3::text IS NULL OR substr(hash, 1, $4) = $3)",
                now,
                account,
                key_id,
                KEY_ID_LENGTH,
            )
        return int(done.split()[-1])

    async def remove_account(self, account: str) -> bool:
        async with bounded_call(self._pool, "cannot remove the account") as conn:
            async with conn.transaction():
                gone = await conn.execute("DELETE FROM accounts WHERE id = $1", account)
                for table in (
                    "api_keys",
                    "account_settings",
                    "breakers",
                    "signing_keys",
                    "validations",
                    "heads",
                ):
                    await conn.execute(f"DELETE FROM {table} WHERE account = $1", account)
                await conn.execute(
                    "DELETE FROM attempts WHERE seq IN (SELECT seq FROM events WHERE account = $1)",
                    account,
                )
                await conn.execute("DELETE FROM events WHERE account = $1", account)
                await conn.execute(BUMP)
        return bool(gone == "DELETE 1")

    async def signing_keys(self, account: str) -> list[SigningKeyRow]:
        async with bounded_call(self._pool, "cannot read the signing keys") as conn:
            rows = await conn.fetch(
                "SELECT kid, algorithm, private_pem, created_at, active_from, retire_at"
                " FROM signing_keys WHERE account = $1 ORDER BY active_from, created_at",
                account,
            )
        return [SigningKeyRow(*row) for row in rows]

    async def add_signing_key(
        self, account: str, key: SigningKeyRow, *, retire_others_at: float | None
    ) -> None:
        async with bounded_call(self._pool, "cannot add the signing key") as conn:
            async with conn.transaction():
                if retire_others_at is not None:
                    await conn.execute(
                        "UPDATE signing_keys SET retire_at = $1 WHERE account = $2"
                        " AND (retire_at IS NULL OR retire_at > $1)",
                        retire_others_at,
                        account,
                    )
                await conn.execute(
                    "INSERT INTO signing_keys (kid, account, algorithm, private_pem, created_at,"
                    " active_from, retire_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    key.kid,
                    account,
                    key.algorithm,
                    key.private_pem,
                    key.created_at,
                    key.active_from,
                    key.retire_at,
                )
