"""The PostgreSQL backend: one queue shared by the provider and any number of worker processes.

Driver: asyncpg, chosen by measurement (``benchmarks/bench_pg_driver.py``). A small pool per
process, plus one connection that LISTENs for new work. Opening applies the migrations
(:mod:`migrations`). Connection settings come from the URL (libpq's form); a schema of its own
(``schema=``) lets tests and several installations share one database.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import asyncpg

from webhook_kit.storage.postgres.errors import translated
from webhook_kit.storage.postgres.events import CLAIM_ROUTINE, PostgresEvents
from webhook_kit.storage.postgres.migrations import migrate, quote
from webhook_kit.storage.postgres.records import PostgresRecords

if TYPE_CHECKING:
    from webhook_kit.storage.url import DatabaseUrl

#: Seconds to wait for a connection, and for any one statement: a database that went away must
#: not freeze a worker or an API call.
CONNECT_TIMEOUT = 5.0
COMMAND_TIMEOUT = 30.0
POOL_SIZE = 4


async def _keep(conn: asyncpg.Connection) -> None:
    """The pool's reset on release, made a no-op: asyncpg's default sends a second query
    (``UNLISTEN *; RESET ALL; ...``) after every statement, which doubled the round trips of the
    delivery path. Nothing here leaves session state on a pooled connection: LISTEN has its
    own connection, locks are transaction-level, and transactions end in ``async with``."""


class PostgresStorage:
    def __init__(
        self, pool: asyncpg.Pool, events: PostgresEvents, records: PostgresRecords, display: str
    ) -> None:
        self._pool = pool
        self._events = events
        self._records = records
        self._display = display

    @classmethod
    async def open(
        cls,
        url: DatabaseUrl,
        *,
        schema: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> PostgresStorage:
        name = schema or url.schema
        quote(name)
        where = url.display
        connect: dict[str, Any] = {
            "timeout": CONNECT_TIMEOUT,
            "command_timeout": COMMAND_TIMEOUT,
            # Generic plans: the statements are prepared once per connection, and planning a
            # claim afresh on every call cost more than the generic plan's execution lost.
            "server_settings": {
                "search_path": name,
                "application_name": "webhook-kit",
                "plan_cache_mode": "force_generic_plan",
                # No JIT: every statement here is short, and cost estimates are no guide. The
                # queue statistics at 2,000 pending heads crossed jit_above_cost: 17 ms a call
                # with JIT (57 ms the first), 10 ms without (2026-12-02).
                "jit": "off",
            },
        }
        async with translated(f"cannot open database {where}"):
            conn = await asyncpg.connect(url.connect_target, **connect)
            try:
                await migrate(conn, name, where, (CLAIM_ROUTINE,))
            finally:
                await conn.close()
            pool = await asyncpg.create_pool(
                url.connect_target, min_size=0, max_size=POOL_SIZE, reset=_keep, **connect
            )
        assert pool is not None
        channel = f"webhook_kit_work_{name}"
        events = PostgresEvents(pool, channel, clock)
        await events.listen(lambda: asyncpg.connect(url.connect_target, **connect))
        return cls(pool, events, PostgresRecords(pool, events), where)

    @property
    def events(self) -> PostgresEvents:
        return self._events

    @property
    def records(self) -> PostgresRecords:
        return self._records

    @property
    def display(self) -> str:
        return self._display

    async def close(self) -> None:
        try:
            await self._events.shutdown()
        finally:
            await self._pool.close()
