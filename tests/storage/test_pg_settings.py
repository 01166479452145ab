"""The settings of the store's own connections, as the server applies them."""

from __future__ import annotations

import json

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from tests.storage.test_contract import event
from tests.storage.test_pg_chains import run
from webhook_kit.storage.postgres.events import PostgresEvents

PENDING = 200
STATS = (
    "SELECT h.account, sum(h.pending)::int, min(e.created_at) FROM heads AS h"
    " JOIN LATERAL (SELECT created_at FROM events"
    " WHERE validation_id = h.validation_id AND state IN ('pending', 'retrying')"
    " ORDER BY seq LIMIT 1) AS e ON true"
    " WHERE h.pending > 0 GROUP BY h.account"
)


async def jitted(conn: asyncpg.Connection | PoolConnectionProxy) -> bool:
    """Whether the server compiles the queue statistics, were any plan costly enough."""
    async with conn.transaction():
        await conn.execute("SET LOCAL jit_above_cost = 0")
        text = await conn.fetchval(f"EXPLAIN (ANALYZE, FORMAT JSON) {STATS}")
    return "JIT" in json.loads(text)[0]


def test_the_stores_connections_never_compile_statements(postgres_url: str) -> None:
    """JIT compilation cost the queue statistics more than running them (17 ms a call against
    10 without, 57 ms the first): the store's connections have it off, whatever the server's
    default."""

    async def scenario(events: PostgresEvents, conn: asyncpg.Connection) -> None:
        await events.insert([event(f"v{n:05}") for n in range(PENDING)])
        # The test's own connection, with the server's defaults, where the server can compile:
        # at any cost, as the statistics at 2,000 pending heads were.
        if await conn.fetchval("SELECT pg_jit_available()"):
            assert await jitted(conn)
        async with events._pool.acquire() as own:  # the store's pool, as the store uses it
            assert await own.fetchval("SHOW jit") == "off"
            assert not await jitted(own)

    run(postgres_url, scenario)
