"""The provider's records (accounts, keys, webhook settings, validations) in the SQLite file."""

from __future__ import annotations

import json
import secrets
import sqlite3
from collections.abc import Mapping
from typing import Any

from webhook_kit.errors import AlreadyExists, DuplicateEvent, StaleUpdate
from webhook_kit.storage.rows import (
    DEFAULT_ACCOUNT,
    AccountRow,
    KeyRow,
    NewEvent,
    SigningKeyRow,
    ValidationRow,
    settings_columns,
)
from webhook_kit.storage.sqlite.events import SqliteEvents
from webhook_kit.storage.sqlite.sql import read, writing

#: Characters of a key's hash that name it (``accounts keys``, ``revoke-key``).
KEY_ID_LENGTH = 12


class SqliteRecords:
    """The provider's records (see :class:`~webhook_kit.storage.base.RecordStore`)."""

    def __init__(self, db: sqlite3.Connection, events: SqliteEvents) -> None:
        self._db = db
        self._events = events

    # -- settings ------------------------------------------------------------------------------

    async def settings(self, *, account: str = DEFAULT_ACCOUNT) -> dict[str, Any] | None:
        rows = read(self._db, "SELECT document FROM account_settings WHERE account = ?", (account,))
        return None if not rows else dict(json.loads(rows[0][0]))

    async def settings_version(self) -> int:
        rows = read(self._db, "SELECT value FROM counters WHERE name = 'settings'")
        return int(rows[0][0]) if rows else 0

    async def put_settings(
        self, document: Mapping[str, Any], now: float, *, account: str = DEFAULT_ACCOUNT
    ) -> None:
        enabled, cap = settings_columns(document)
        with writing(self._db) as db:
            db.execute(
                "INSERT INTO account_settings (account, document, updated_at, enabled,"
                " max_in_flight) VALUES (?, ?, ?, ?, ?) ON CONFLICT (account) DO UPDATE SET"
                " document = excluded.document, updated_at = excluded.updated_at,"
                " enabled = excluded.enabled, max_in_flight = excluded.max_in_flight",
                # Refused (StoreError) rather than stored if some text cannot be encoded: a
                # stored lone surrogate would break every later read of the settings.
                (account, json.dumps(document, ensure_ascii=False), now, enabled, cap),
            )
            _bump(db)
        self._events.stored_settings(account, enabled, cap)

    async def delete_settings(self, *, account: str = DEFAULT_ACCOUNT) -> bool:
        with writing(self._db) as db:
            gone = db.execute("DELETE FROM account_settings WHERE account = ?", (account,)).rowcount
            _bump(db)
        self._events.stored_settings(account, None, None)
        return bool(gone == 1)

    # -- validations ---------------------------------------------------------------------------

    async def validation(
        self, validation_id: str, *, account: str = DEFAULT_ACCOUNT
    ) -> ValidationRow | None:
        rows = read(
            self._db,
            "SELECT id, status, documents, created_at, updated_at, account FROM validations"
            " WHERE id = ? AND account = ?",
            (validation_id, account),
        )
        return ValidationRow(*rows[0]) if rows else None

    async def save_validation(
        self, row: ValidationRow, notification: NewEvent, *, expected: ValidationRow | None
    ) -> None:
        try:
            with writing(self._db) as db:
                if expected is None:
                    db.execute(
                        "INSERT INTO validations (id, status, documents, created_at, updated_at,"
                        " account) VALUES (?, ?, ?, ?, ?, ?)",
                        (
                            row.id,
                            row.status,
                            row.documents,
                            row.created_at,
                            row.updated_at,
                            row.account,
                        ),
                    )
                elif (
                    db.execute(
                        "UPDATE validations SET status = ?, documents = ?, updated_at = ?"
                        " WHERE id = ? AND account = ? AND status = ? AND documents = ?",
                        (
                            row.status,
                            row.documents,
                            row.updated_at,
                            row.id,
                            row.account,
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

    # -- accounts and keys ---------------------------------------------------------------------

    async def add_account(self, name: str, key_hash: str, now: float) -> AccountRow:
        account = AccountRow(f"acc_{secrets.token_hex(6)}", name, now)
        try:
            with writing(self._db) as db:
                db.execute(
                    "INSERT INTO accounts (id, name, created_at) VALUES (?, ?, ?)",
                    (account.id, name, now),
                )
                db.execute(
                    "INSERT INTO api_keys (hash, account, created_at) VALUES (?, ?, ?)",
                    (key_hash, account.id, now),
                )
        except sqlite3.IntegrityError as exc:
            raise AlreadyExists(f"an account named {name!r} exists already") from exc
        return account

    async def accounts(self, *, after: str = "", limit: int = 100) -> list[AccountRow]:
        rows = read(
            self._db,
            "SELECT id, name, created_at FROM accounts WHERE name > ? ORDER BY name LIMIT ?",
            (after, limit),
        )
        return [AccountRow(*row) for row in rows]

    async def account_named(self, name: str) -> AccountRow | None:
        rows = read(self._db, "SELECT id, name, created_at FROM accounts WHERE name = ?", (name,))
        return AccountRow(*rows[0]) if rows else None

    async def account(self, account_id: str) -> AccountRow | None:
        rows = read(
            self._db, "SELECT id, name, created_at FROM accounts WHERE id = ?", (account_id,)
        )
        return AccountRow(*rows[0]) if rows else None

    async def account_for_key(self, key_hash: str, now: float) -> str | None:
        rows = read(
            self._db,
            "SELECT account FROM api_keys WHERE hash = ? AND revoked_at IS NULL"
            " AND (expires_at IS NULL OR expires_at > ?)",
            (key_hash, now),
        )
        return str(rows[0][0]) if rows else None

    async def keys(self, account: str) -> list[KeyRow]:
        rows = read(
            self._db,
            "SELECT substr(hash, 1, ?), created_at, expires_at, revoked_at FROM api_keys"
            " WHERE account = ? ORDER BY created_at",
            (KEY_ID_LENGTH, account),
        )
        return [KeyRow(*row) for row in rows]

    async def add_key(self, account: str, key_hash: str, now: float, *, grace: float) -> None:
        with writing(self._db) as db:
            db.execute(
                "UPDATE api_keys SET expires_at = ? WHERE account = ? AND revoked_at IS NULL"
                " AND (expires_at IS NULL OR expires_at > ?)",
                (now + grace, account, now + grace),
            )
            db.execute(
                "INSERT INTO api_keys (hash, account, created_at) VALUES (?, ?, ?)",
                (key_hash, account, now),
            )

    async def revoke_keys(self, account: str, now: float, *, key_id: str | None = None) -> int:
        with writing(self._db) as db:
            return int(
                db.execute(
                    "UPDATE api_keys SET revoked_at = ? WHERE account = ? AND revoked_at IS NULL"
                    " AND (expires_at IS NULL OR expires_at > ?)"
                    " AND (? IS NULL OR substr(hash, 1, ?) = ?)",
                    (now, account, now, key_id, KEY_ID_LENGTH, key_id),
                ).rowcount
            )

    async def remove_account(self, account: str) -> bool:
        with writing(self._db) as db:
            gone = db.execute("DELETE FROM accounts WHERE id = ?", (account,)).rowcount
            for table, column in (
                ("api_keys", "account"),
                ("account_settings", "account"),
                ("breakers", "account"),
                ("signing_keys", "account"),
                ("validations", "account"),
            ):
                db.execute(f"DELETE FROM {table} WHERE {column} = ?", (account,))
            db.execute(
                "DELETE FROM attempts WHERE seq IN (SELECT seq FROM events WHERE account = ?)",
                (account,),
            )
            db.execute("DELETE FROM events WHERE account = ?", (account,))
            _bump(db)
        self._events.forget(account)
        return bool(gone == 1)

    async def signing_keys(self, account: str) -> list[SigningKeyRow]:
        rows = read(
            self._db,
            "SELECT kid, algorithm, private_pem, created_at, active_from, retire_at"
            " FROM signing_keys WHERE account = ? ORDER BY active_from, created_at",
            (account,),
        )
        return [SigningKeyRow(*row) for row in rows]

    async def add_signing_key(
        self, account: str, key: SigningKeyRow, *, retire_others_at: float | None
    ) -> None:
        with writing(self._db) as db:
            if retire_others_at is not None:
                db.execute(
                    "UPDATE signing_keys SET retire_at = ? WHERE account = ?"
                    " AND (retire_at IS NULL OR retire_at > ?)",
                    (retire_others_at, account, retire_others_at),
                )
            db.execute(
                "INSERT INTO signing_keys (kid, account, algorithm, private_pem, created_at,"
                " active_from, retire_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    key.kid,
                    account,
                    key.algorithm,
                    key.private_pem,
                    key.created_at,
                    key.active_from,
                    key.retire_at,
                ),
            )


def _bump(db: sqlite3.Connection) -> None:
    db.execute(
        "INSERT INTO counters (name, value) VALUES ('settings', 1)"
        " ON CONFLICT (name) DO UPDATE SET value = value + 1"
    )
