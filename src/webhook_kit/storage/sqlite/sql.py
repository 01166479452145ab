"""Transactions and reads that turn ``sqlite3`` errors into the store's own."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import Any

from webhook_kit.errors import StoreError


@contextmanager
def writing(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One ``BEGIN IMMEDIATE`` transaction. A write the database cannot take (a full disk, an
    I/O error, text that cannot be stored) raises :class:`StoreError`; a constraint violation
    stays ``sqlite3.IntegrityError`` for the caller to name."""
    try:
        db.execute("BEGIN IMMEDIATE")
    except sqlite3.Error as exc:
        raise StoreError(f"the database cannot take a write ({exc})") from exc
    try:
        yield db
        db.execute("COMMIT")
    except BaseException as exc:
        with suppress(sqlite3.Error):  # a failed COMMIT may already have ended it
            db.execute("ROLLBACK")
        if isinstance(exc, sqlite3.IntegrityError) or not isinstance(
            exc, (sqlite3.Error, UnicodeError)
        ):
            raise
        raise StoreError(f"the database cannot take a write ({exc})") from exc


def read(db: sqlite3.Connection, sql: str, params: Sequence[object] = ()) -> list[Any]:
    try:
        return db.execute(sql, params).fetchall()
    except sqlite3.Error as exc:
        raise StoreError(f"the database cannot be read ({exc})") from exc
