"""The PostgreSQL schema as numbered migrations, applied on start.

Each migration runs once, in order, inside one transaction that first takes a transaction-level
advisory lock: when two processes start at once, the second waits, then finds the work done.
A database whose version is newer than this build knows is refused, untouched.

``heads`` holds one row per validation that has ever had an event: how many of its events are
still to deliver (``pending``), when its first such event is due, and who holds it (a lease with a
fencing token). Workers claim heads with ``FOR UPDATE SKIP LOCKED``, so one validation's events
go out one at a time, in order, whichever worker sends them. Rows with nothing pending are kept
(the partial index ignores them), so an insert racing a completion never loses its head.
"""

from __future__ import annotations

from typing import Any

from webhook_kit.errors import ConfigError

#: Any constant shared by every webhook-kit process: the advisory lock's key.
LOCK_KEY = 0x7765_6268_6F6F_6B  # "webhook"

MIGRATIONS: tuple[str, ...] = (
    # 1: events, attempts, heads; the provider's settings and validations.
    """
    CREATE TABLE events (
        seq bigserial PRIMARY KEY,
        event_id text NOT NULL UNIQUE,
        validation_id text NOT NULL,
        status text NOT NULL,
        body text NOT NULL,
        state text NOT NULL CHECK (state IN ('pending', 'retrying', 'sent', 'failed')),
        created_at double precision NOT NULL,
        next_attempt_at double precision,
        sent_at double precision,
        attempts integer NOT NULL DEFAULT 0
    );
    CREATE INDEX events_by_validation ON events (validation_id, seq);
    CREATE TABLE attempts (
        id bigserial PRIMARY KEY,
        seq bigint NOT NULL,
        attempt integer NOT NULL,
        at double precision NOT NULL,
        duration_ms double precision NOT NULL,
        outcome text NOT NULL,
        http_status integer,
        reason text NOT NULL
    );
    CREATE INDEX attempts_by_event ON attempts (seq, attempt);
    CREATE TABLE heads (
        validation_id text PRIMARY KEY,
        pending integer NOT NULL,
        due double precision NOT NULL,
        lease_until double precision NOT NULL DEFAULT 0,
        lease_token text
    );
    CREATE INDEX heads_due ON heads (due) WHERE pending > 0;
    CREATE TABLE settings (
        id integer PRIMARY KEY CHECK (id = 1),
        document text NOT NULL,
        updated_at double precision NOT NULL
    );
    CREATE TABLE validations (
        id text PRIMARY KEY,
        status text NOT NULL,
        documents integer NOT NULL DEFAULT 0,
        created_at double precision NOT NULL,
        updated_at double precision NOT NULL
    );
    """,
)

SCHEMA_VERSION = len(MIGRATIONS)


async def migrate(conn: Any, schema: str, where: str) -> int:
    """Bring ``schema`` to :data:`SCHEMA_VERSION`; returns the version found before."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", LOCK_KEY)
        await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {quote(schema)}")
        await conn.execute(
            f"CREATE TABLE IF NOT EXISTS {quote(schema)}.webhook_kit_schema (version integer)"
        )
        found = await conn.fetchval(f"SELECT max(version) FROM {quote(schema)}.webhook_kit_schema")
        version = int(found or 0)
        if version > SCHEMA_VERSION:
            raise ConfigError(
                f"database {where} has schema version {version}, written by a newer "
                f"webhook-kit (this one knows up to {SCHEMA_VERSION}); upgrade webhook-kit to "
                "use it: nothing was changed"
            )
        await conn.execute(f"SET LOCAL search_path TO {quote(schema)}")
        for number in range(version + 1, SCHEMA_VERSION + 1):
            await conn.execute(MIGRATIONS[number - 1])
            await conn.execute("INSERT INTO webhook_kit_schema (version) VALUES ($1)", number)
        return version


def quote(identifier: str) -> str:
    """A schema name as an SQL identifier (names come from settings, never from requests)."""
    if not identifier or not all(c.isalnum() or c == "_" for c in identifier):
        raise ConfigError(f"schema name {identifier!r}: use letters, digits and underscores")
    return f'"{identifier}"'
