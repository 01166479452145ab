"""The SQLite schema, its version (``PRAGMA user_version``) and the upgrades of earlier files."""

from __future__ import annotations

import sqlite3

from webhook_kit.errors import ConfigError

#: The schema version this build writes (``PRAGMA user_version``).
SCHEMA_VERSION = 3

SCHEMA = """
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
CREATE TABLE IF NOT EXISTS validations (
    id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    documents INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
"""

#: Version 2: accounts, their keys (hashed), settings and breakers per account; version 3: each
#: account's keys for signing client assertions (private_key_jwt).
ACCOUNTS = """
CREATE TABLE IF NOT EXISTS accounts (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS api_keys (
    hash TEXT PRIMARY KEY,
    account TEXT NOT NULL,
    created_at REAL NOT NULL,
    expires_at REAL,
    revoked_at REAL
);
CREATE INDEX IF NOT EXISTS api_keys_by_account ON api_keys (account);
CREATE TABLE IF NOT EXISTS account_settings (
    account TEXT PRIMARY KEY,
    document TEXT NOT NULL,
    updated_at REAL NOT NULL,
    enabled INTEGER NOT NULL,
    max_in_flight INTEGER
);
CREATE TABLE IF NOT EXISTS breakers (
    account TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    since REAL NOT NULL,
    reason TEXT NOT NULL,
    failures INTEGER NOT NULL,
    pause REAL NOT NULL,
    probe_at REAL
);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS signing_keys (
    kid TEXT PRIMARY KEY,
    account TEXT NOT NULL,
    algorithm TEXT NOT NULL,
    private_pem TEXT NOT NULL,
    created_at REAL NOT NULL,
    active_from REAL NOT NULL,
    retire_at REAL
);
CREATE INDEX IF NOT EXISTS signing_keys_by_account ON signing_keys (account);
INSERT OR IGNORE INTO accounts (id, name, created_at) VALUES ('default', 'default', 0);
"""


def migrate(db: sqlite3.Connection, path: str) -> None:
    """Bring the file to :data:`SCHEMA_VERSION`, refusing one written by a newer build."""
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise ConfigError(
            f"database {path} has schema version {version}, written by a newer webhook-kit "
            f"(this one knows up to {SCHEMA_VERSION}); upgrade webhook-kit to use it"
        )
    _upgrade_attempts_v0(db)
    db.executescript(SCHEMA)
    _add_accounts(db)
    if version < SCHEMA_VERSION:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def _upgrade_attempts_v0(db: sqlite3.Connection) -> None:
    """An earlier build's attempts pointed at the event's text id. They now point at its
    sequence number, because inserting into an index of random UUID text was the largest single
    cost of recording an attempt."""
    columns = {row[1] for row in db.execute("PRAGMA table_info(attempts)")}
    if "event_id" not in columns:
        return
    db.execute("BEGIN IMMEDIATE")
    try:
        db.execute("DROP INDEX IF EXISTS attempts_by_event")
        db.execute("ALTER TABLE attempts RENAME TO attempts_v0")
        for statement in SCHEMA.split(";"):
            if "attempts" in statement and statement.strip():
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


def _add_accounts(db: sqlite3.Connection) -> None:
    """Version 2: every event and validation belongs to an account; the one settings row of
    earlier files becomes the default account's."""
    db.executescript(ACCOUNTS)
    for table in ("events", "validations"):
        columns = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
        if "account" not in columns:
            db.execute(f"ALTER TABLE {table} ADD COLUMN account TEXT NOT NULL DEFAULT 'default'")
    db.execute("CREATE INDEX IF NOT EXISTS events_by_account ON events (account, seq)")
    old = db.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'settings'"
    ).fetchone()
    if old is not None:
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute(
                "INSERT OR IGNORE INTO account_settings"
                " (account, document, updated_at, enabled, max_in_flight)"
                " SELECT 'default', document, updated_at,"
                " coalesce(json_extract(document, '$.enabled'), 1),"
                " json_extract(document, '$.max_in_flight') FROM settings"
            )
            db.execute("DROP TABLE settings")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
