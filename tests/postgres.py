"""A real PostgreSQL server for the tests: its URL, and a schema of its own per test.

Tests read the server's URL from ``WEBHOOK_KIT_TEST_POSTGRES`` and skip, with the reason, without
it; CI sets ``WEBHOOK_KIT_REQUIRE_POSTGRES=1`` so that a missing or stopped server fails instead.
"""

from __future__ import annotations

import asyncio
import os
import uuid

import pytest

ENV = "WEBHOOK_KIT_TEST_POSTGRES"


def server_url() -> str:
    """The test server's URL, or a skip (a failure in CI) naming what is missing."""
    url = os.environ.get(ENV, "").strip()
    problem = None if url else f"{ENV} is not set (e.g. postgresql://postgres@127.0.0.1:5432/test)"
    if problem is None and not reachable(url):
        problem = f"the PostgreSQL server at {ENV} does not answer"
    if problem is None:
        return url
    if os.environ.get("WEBHOOK_KIT_REQUIRE_POSTGRES"):
        pytest.fail(f"{problem}, and CI requires it")
    pytest.skip(problem)


def reachable(url: str) -> bool:
    import asyncpg

    async def probe() -> bool:
        try:
            conn = await asyncpg.connect(url, timeout=3)
        except Exception:
            return False
        await conn.close()
        return True

    return asyncio.run(probe())


def new_schema() -> str:
    return f"t_{uuid.uuid4().hex[:12]}"


def drop_schema(url: str, schema: str) -> None:
    import asyncpg

    async def drop() -> None:
        conn = await asyncpg.connect(url, timeout=5)
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await conn.close()

    asyncio.run(drop())


def with_schema(url: str, schema: str) -> str:
    """The URL naming the schema, as a user gives it to ``--db`` (workers take only a URL)."""
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}schema={schema}"


def bump_version(url: str, version: int = 99) -> None:
    """Make the database look migrated by a newer build."""
    import asyncpg

    from webhook_kit.storage.url import DatabaseUrl

    db = DatabaseUrl.parse(url)

    async def bump() -> None:
        conn = await asyncpg.connect(db.connect_target, timeout=5)
        try:
            await conn.execute(
                f'INSERT INTO "{db.schema}".webhook_kit_schema (version) VALUES ($1)', version
            )
        finally:
            await conn.close()

    asyncio.run(bump())
