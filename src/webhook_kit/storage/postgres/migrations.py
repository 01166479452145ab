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

from collections.abc import Sequence
from typing import Any

from webhook_kit.errors import ConfigError
from webhook_kit.storage.url import check_schema

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
    # 2: accounts and their keys (hashed); settings, validations, events and breakers per
    # account. The one settings row of version 1 becomes the default account's.
    """
    ALTER TABLE events ADD COLUMN account text NOT NULL DEFAULT 'default';
    ALTER TABLE validations ADD COLUMN account text NOT NULL DEFAULT 'default';
    ALTER TABLE heads ADD COLUMN account text NOT NULL DEFAULT 'default';
    CREATE INDEX events_by_account ON events (account, seq);
    CREATE INDEX heads_leased ON heads (account) WHERE lease_token IS NOT NULL;
    CREATE TABLE accounts (
        id text PRIMARY KEY,
        name text NOT NULL UNIQUE,
        created_at double precision NOT NULL
    );
    INSERT INTO accounts (id, name, created_at) VALUES ('default', 'default', 0);
    CREATE TABLE api_keys (
        hash text PRIMARY KEY,
        account text NOT NULL,
        created_at double precision NOT NULL,
        expires_at double precision,
        revoked_at double precision
    );
    CREATE INDEX api_keys_by_account ON api_keys (account);
    CREATE TABLE account_settings (
        account text PRIMARY KEY,
        document text NOT NULL,
        updated_at double precision NOT NULL,
        enabled boolean NOT NULL,
        max_in_flight integer
    );
    INSERT INTO account_settings (account, document, updated_at, enabled, max_in_flight)
    SELECT 'default', document, updated_at,
           coalesce((document::jsonb ->> 'enabled')::boolean, true), NULL
    FROM settings;
    DROP TABLE settings;
    CREATE TABLE breakers (
        account text PRIMARY KEY,
        state text NOT NULL,
        since double precision NOT NULL,
        reason text NOT NULL,
        failures integer NOT NULL,
        pause double precision NOT NULL,
        probe_at double precision
    );
    CREATE TABLE counters (name text PRIMARY KEY, value bigint NOT NULL);
    """,
    # 3: each account's keys for signing client assertions (private_key_jwt).
    """
    CREATE TABLE signing_keys (
        kid text PRIMARY KEY,
        account text NOT NULL,
        algorithm text NOT NULL,
        private_pem text NOT NULL,
        created_at double precision NOT NULL,
        active_from double precision NOT NULL,
        retire_at double precision
    );
    CREATE INDEX signing_keys_by_account ON signing_keys (account);
    """,
    # 4: a version per head, changed by every write to it: a claim leases a head only if no
    # one changed it since the claim's snapshot (whose view of the head's events it uses).
    """
    ALTER TABLE heads ADD COLUMN version bigint NOT NULL DEFAULT 0;
    """,
    # 5: due heads by account, in due order: a claim reads each account's first few heads
    # from this index and stops, where the index on due alone had it read (and sort) every
    # due head of the backlog on every claim. Room left in the events' pages, so that a
    # completion (which changes no indexed column) updates its event in place, without new
    # entries in the event's four indexes.
    """
    CREATE INDEX heads_ready ON heads (account, due) WHERE pending > 0;
    DROP INDEX heads_due;
    ALTER TABLE events SET (fillfactor = 80);
    """,
    # 6: the heads no one holds, apart: a leased head keeps its due time, the earliest, so a
    # claim walking heads_ready read every head leased to any worker before the first free one
    # (its cost grew with the workers and what each held). The leases by their end: how many an
    # account holds (its cap) and which ran out (a worker that died) are index ranges. The
    # table is locked whole first: the index builds block its writes anyway, and a lock raised
    # midway (for the DROP) could deadlock with a claim.
    """
    LOCK TABLE heads IN ACCESS EXCLUSIVE MODE;
    DROP INDEX heads_leased;
    CREATE INDEX heads_leased ON heads (account, lease_until, due) WHERE lease_token IS NOT NULL;
    CREATE INDEX heads_free ON heads (account, due) WHERE pending > 0 AND lease_token IS NULL;
    """,
)

SCHEMA_VERSION = len(MIGRATIONS)


async def migrate(
    conn: Any, schema: str, where: str, routines: Sequence[tuple[str, str]] = ()
) -> int:
    """Bring ``schema`` to :data:`SCHEMA_VERSION`, and install the ``routines`` (name,
    definition) it lacks; returns the version found before.

    A routine's name is a digest of its text, so one that exists is the same; builds that differ
    keep their own side by side."""
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
        for name, definition in routines:
            exists = await conn.fetchval(
                "SELECT 1 FROM pg_proc AS p JOIN pg_namespace AS n ON n.oid = p.pronamespace"
                " WHERE n.nspname = $1 AND p.proname = $2",
                schema,
                name,
            )
            if not exists:
                await conn.execute(definition)
        return version


def quote(identifier: str) -> str:
    """A schema name as an SQL identifier (names come from settings, never from requests)."""
    return f'"{check_schema(identifier)}"'
