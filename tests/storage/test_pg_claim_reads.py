"""What a PostgreSQL claim reads: the due heads that no one holds, and leases that ran out; never
the heads that other claims hold, however many (their due times are the earliest, so an index
in due order puts them first)."""

from __future__ import annotations

import json
from typing import Any

import asyncpg

from tests.storage.test_contract import LEASE, ONE, event, now
from tests.storage.test_pg_chains import run
from webhook_kit.storage.postgres.events import CLAIM, PostgresEvents
from webhook_kit.storage.rows import DEFAULT_MAX_IN_FLIGHT

HELD = 2000
#: Most pending heads held, as when many workers hold deep queues.
FREE = 1000
LIMIT = 5

#: The claim as the routine runs it: a generic plan, with its planner settings.
PREPARE = (
    "PREPARE claim (float8, int, float8, text, text[], int, int, text[], json, int) AS " + CLAIM
)


def heads_read(plan: dict[str, Any]) -> int:
    """Rows that the plan's index scans of ``heads`` read, other than by primary key: those it
    returned and those its filter dropped."""
    read = 0
    if (
        plan.get("Relation Name") == "heads"
        and plan.get("Node Type") in ("Index Scan", "Index Only Scan")
        and plan.get("Index Name") != "heads_pkey"
    ):
        loops = plan.get("Actual Loops", 1)
        read += (plan.get("Actual Rows", 0) + plan.get("Rows Removed by Filter", 0)) * loops
    for child in plan.get("Plans", ()):
        read += heads_read(child)
    return read


async def explain_claim(conn: asyncpg.Connection, limit: int) -> tuple[int, list[str]]:
    """(heads read, validations claimed) of one claim of the default account, rolled back."""
    account = ONE["accounts"][0]
    transaction = conn.transaction()
    await transaction.start()
    try:
        await conn.execute("SET LOCAL enable_bitmapscan = off")
        await conn.execute("SET LOCAL enable_seqscan = off")
        await conn.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        await conn.execute(PREPARE)
        text = await conn.fetchval(
            f"EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE claim({now()!r}, {limit}, {LEASE!r},"
            f" 'explained', ARRAY['{account}'], NULL, {DEFAULT_MAX_IN_FLIGHT}, '{{}}', NULL, 1)"
        )
        claimed = await conn.fetch(
            "SELECT validation_id FROM heads WHERE lease_token = 'explained' ORDER BY validation_id"
        )
    finally:
        await transaction.rollback()  # the test goes on with the heads as they were
        await conn.execute("DEALLOCATE claim")
    return heads_read(json.loads(text)[0]["Plan"]), [r["validation_id"] for r in claimed]


def test_a_claim_reads_none_of_the_heads_that_others_hold(postgres_url: str) -> None:
    async def scenario(events: PostgresEvents, conn: asyncpg.Connection) -> None:
        # Held: the earliest due; free: the next ones, due later.
        held_events = [event(f"held{n:04}") for n in range(HELD)]
        for start in range(0, HELD, 8):  # as a stream arrives: due times of their own
            await events.insert(held_events[start : start + 8])
        await events.insert([event(f"free{n:04}") for n in range(FREE)])
        held = await events.claim(now(), HELD, LEASE, **ONE)
        assert sorted(c.validation_id for c in held) == [f"held{n:04}" for n in range(HELD)]
        # As autovacuum would: the held heads' earlier versions leave the indexes.
        await conn.execute("VACUUM heads")

        # Before the table's statistics (a plan may then walk an index in due order for the
        # leases that ran out) and after.
        for analyzed in (False, True):
            if analyzed:
                await conn.execute("ANALYZE heads")
            read, claimed = await explain_claim(conn, LIMIT)

            assert len(claimed) == LIMIT
            assert all(v.startswith("free") for v in claimed), claimed
            # Up to twice the limit from each of the two indexes (free heads, run-out leases),
            # and the probes for accounts with work: not the held heads.
            assert read <= 4 * LIMIT + 2, f"the claim read {read} heads for {LIMIT} ({analyzed=})"

    run(postgres_url, scenario)


def test_leases_that_ran_out_are_claimed_by_their_due_time_among_free_heads(
    postgres_url: str,
) -> None:
    async def scenario(events: PostgresEvents, conn: asyncpg.Connection) -> None:
        for name in ("first", "second", "third", "free"):  # due in this order
            await events.insert([event(name)])
        claimed = await events.claim(now(), 3, LEASE, **ONE)
        assert [c.validation_id for c in claimed] == ["first", "second", "third"]
        # Their worker died: the leases ran out together (moved back, as time would).
        await conn.execute("UPDATE heads SET lease_until = 1 WHERE lease_token IS NOT NULL")
        again = await events.claim(now(), 2, LEASE, **ONE)
        assert [c.validation_id for c in again] == ["first", "second"]
        assert again[0].token == again[1].token != claimed[0].token
        rest = await events.claim(now(), 2, LEASE, **ONE)
        assert [c.validation_id for c in rest] == ["third", "free"]

    run(postgres_url, scenario)


def test_an_accounts_cap_holds_over_free_heads_and_leases_that_ran_out(
    postgres_url: str,
) -> None:
    async def scenario(events: PostgresEvents, conn: asyncpg.Connection) -> None:
        await events.insert([event("early")])
        await events.insert([event("later")])
        capped = {"accounts": ONE["accounts"], "cap": 1}
        (claim,) = await events.claim(now(), 10, LEASE, **capped)
        assert claim.validation_id == "early"
        await conn.execute("UPDATE heads SET lease_until = 1 WHERE validation_id = 'early'")
        # Nothing is held now, so there is room for one: the earliest, not one of each kind.
        again = await events.claim(now(), 10, LEASE, **capped)
        assert [c.validation_id for c in again] == ["early"]

    run(postgres_url, scenario)
