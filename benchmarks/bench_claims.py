"""What a PostgreSQL claim costs while other claims hold heads (issue 12).

A head that a worker holds keeps its due time, the earliest of the queue. In each run: a fresh
schema with ``H`` heads due first (inserted 8 at a time, as a steady stream's, each insert with
its own due time) and held by one big claim, for H in ``--held``, and ``--free`` free heads (one
event each) due after them; then ``--claims`` claims of ``--limit`` heads each, every one
given back at once (so each claim finds the same queue). Printed per H: the median round trip of
a claim and its ratio to H = 0 in the same run. A claim whose cost grows with H reads the held
heads; one that stays flat does not.

    python benchmarks/bench_claims.py [--held 0,256,1024,4096] [--free 2000] [--claims 200]
        [--limit 16] [--dsn postgresql://postgres@127.0.0.1:5432/test]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import asyncpg  # noqa: E402
from _common import add_dsn_argument, machine  # noqa: E402

from webhook_kit.contract import notifications  # noqa: E402
from webhook_kit.storage.rows import DEFAULT_ACCOUNT, NewEvent  # noqa: E402
from webhook_kit.storage.url import open_storage  # noqa: E402

LEASE = 600.0
#: Held heads inserted per transaction (per due time).
BATCH = 8
#: A fixed scope, as emit's: no cap, so that any number of heads can be held.
ACCOUNTS = [DEFAULT_ACCOUNT]


def events(prefix: str, count: int) -> list[NewEvent]:
    """The first event of ``count`` validations, as the contract builds it."""
    return [
        NewEvent.of(
            notifications.build("on-course", validation_id=f"{prefix}{n}", previous_status=None)
        )
        for n in range(count)
    ]


async def one(dsn: str, schema: str, held: int, free: int, claims: int, limit: int) -> float:
    """Median seconds per claim of ``limit`` heads while ``held`` heads are held."""
    storage = await open_storage(f"{dsn}?schema={schema}")
    try:
        # Held heads are due first, each batch at its own time, as a steady stream's are (one
        # insert gives all its heads one due time: ties that hide the order of the queue).
        queued = events("held", held)
        for start in range(0, held, BATCH):
            await storage.events.insert(queued[start : start + BATCH])
        await storage.events.insert(events("free", free))
        now = time.time() + 1
        if held:
            got = await storage.events.claim(now, held, LEASE, accounts=ACCOUNTS)
            assert len(got) == held, len(got)
        # As autovacuum would (the heads table is small and hot): the entries that the held
        # heads' earlier versions left in the indexes go; what is still live stays.
        conn = await asyncpg.connect(dsn, server_settings={"search_path": schema})
        try:
            await conn.execute("VACUUM heads")
        finally:
            await conn.close()
        times = []
        for _ in range(claims):
            started = time.perf_counter()
            got = await storage.events.claim(now, limit, LEASE, accounts=ACCOUNTS)
            times.append(time.perf_counter() - started)
            assert len(got) == limit, len(got)
            await storage.events.release(got)
        return statistics.median(times)
    finally:
        await storage.close()
        conn = await asyncpg.connect(dsn)
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--held", default="0,256,1024,4096")
    parser.add_argument("--free", type=int, default=2000)
    parser.add_argument("--claims", type=int, default=200)
    parser.add_argument("--limit", type=int, default=16)
    add_dsn_argument(parser)
    args = parser.parse_args()
    helds = [int(h) for h in args.held.split(",")]
    if 0 not in helds:
        helds.insert(0, 0)  # the baseline
    seconds = {}
    for held in helds:
        schema = f"bench_claims_{os.getpid()}_{held}"
        seconds[held] = asyncio.run(one(args.dsn, schema, held, args.free, args.claims, args.limit))
        print(f"held {held:5}: {seconds[held] * 1000:.2f} ms per claim", flush=True)
    print()
    print(
        f"machine: {machine()}; {args.free} free heads, {args.claims} claims of {args.limit}, "
        "each given back"
    )
    print("| heads held by other claims | ms per claim (median) | ratio to none held |")
    print("|---|---|---|")
    for held in helds:
        ratio = seconds[held] / seconds[0]
        print(f"| {held:,} | {seconds[held] * 1000:.2f} | **{ratio:.2f}** |")


if __name__ == "__main__":
    main()
