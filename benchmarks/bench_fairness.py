"""Fair delivery across accounts (issue 13): does a slow and a dead endpoint cost anyone else?

1. Noisy neighbour. 50 healthy accounts, each with its own endpoint URL, plus one account whose
   endpoint answers in 5 s and one whose endpoint is down (a port that refuses connections). One
   in-process dispatcher in stored mode (``stored_dispatcher``, as the provider runs it) over an
   SQLite file or a PostgreSQL schema. Rounds alternate between "quiet" (the two bad accounts'
   webhooks disabled) and "noisy" (both enabled, each with 40 events queued), so that drift on a
   shared machine hits both. Each round: a paced phase (events inserted at ``--rate`` per second,
   spread over the healthy accounts) for the latency from insert to receipt at the endpoint (the
   endpoint's ``received_at``), p50 and p99; then a burst of 20 events per healthy account for
   the throughput (events / seconds from insert to the last receipt).

   Endpoints: the machine has 2 cores, so the 50 healthy endpoints are 50 URLs on two
   ``webhook-kit serve`` processes (``/webhook?account=N``: a URL of its own per account, hence a
   breaker, a cap, a token cache of its own in the dispatcher), not 50 processes competing for
   the same two cores with the dispatcher. The slow endpoint is a third ``serve --delay 5``.
2. Scale. 10,000 accounts added through the storage API; median µs of an ``accounts`` page (100
   names), of ``account_for_key`` (the key check on every API call), and of a provider API call
   (``GET /webhook/settings`` through the ASGI app in-process: key check, settings, breaker).

    python benchmarks/bench_fairness.py [--db sqlite|postgresql://...] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import random
import socket
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import requests  # noqa: E402
from _common import ServerProcess, kit_process, machine  # noqa: E402

from webhook_kit.contract import notifications  # noqa: E402
from webhook_kit.delivery.dispatcher import Dispatcher, DispatcherSettings  # noqa: E402
from webhook_kit.provider import apikeys, webhook_settings  # noqa: E402
from webhook_kit.provider.app import ProviderApi, create_provider_app  # noqa: E402
from webhook_kit.provider.client_files import ClientFiles  # noqa: E402
from webhook_kit.provider.service import stored_dispatcher  # noqa: E402
from webhook_kit.serving.loop import run  # noqa: E402
from webhook_kit.storage.base import Storage  # noqa: E402
from webhook_kit.storage.rows import NewEvent  # noqa: E402
from webhook_kit.storage.url import open_storage  # noqa: E402

HEALTHY = 50
BAD_EVENTS = 40
BURST_PER_ACCOUNT = 20


def event(account: str) -> NewEvent:
    body = notifications.build("on-course", validation_id=str(uuid.uuid4()), previous_status=None)
    return NewEvent.of(body, account)


def settings(url: str, info: dict[str, Any], *, enabled: bool = True) -> dict[str, Any]:
    return webhook_settings.validate(
        {
            "url": url,
            "enabled": enabled,
            "auth": {
                "token_url": info["token_url"],
                "client_id": info["client_id"],
                "client_secret": info["client_secret"],
            },
        }
    )


def received(endpoints: Sequence[ServerProcess]) -> dict[str, float]:
    """Every accepted delivery's event id and its receipt time (then the endpoints forget)."""
    out: dict[str, float] = {}
    for server in endpoints:
        url = server.info["inspect_url"] + "deliveries"
        http = requests.Session()
        http.trust_env = False
        http.verify = server.info["ca_file"]
        answer = http.get(url, params={"accepted": "true"}, timeout=60).json()
        http.delete(url, timeout=60)
        http.close()
        for record in answer["deliveries"]:
            moment = dt.datetime.fromisoformat(record["received_at"].replace("Z", "+00:00"))
            out.setdefault(record["event_id"], moment.timestamp())
    return out


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


class Bench:
    def __init__(
        self, storage: Storage, dispatcher: Dispatcher, healthy: list[str], bad: list[str]
    ) -> None:
        self.storage = storage
        self.dispatcher = dispatcher
        self.healthy = healthy
        self.bad = bad

    async def wait_received(
        self, endpoints: Sequence[ServerProcess], ids: set[str]
    ) -> dict[str, float]:
        """Wait until the store has no healthy event left to send, then ask the endpoints once
        (polling them meanwhile would take their CPU from the deliveries being measured)."""
        deadline = time.monotonic() + 300
        while await self.healthy_outstanding():
            if time.monotonic() > deadline:
                raise RuntimeError("the healthy accounts' events were not all sent")
            await asyncio.sleep(0.05)  # a polling interval: the store is asked again
        got = await asyncio.to_thread(received, endpoints)
        missing = ids - got.keys()
        if missing:
            raise RuntimeError(f"{len(missing)} events sent but not received")
        return got

    async def healthy_outstanding(self) -> int:
        def unsent(counts: dict[str, int]) -> int:
            return counts.get("pending", 0) + counts.get("retrying", 0)

        total = unsent(await self.storage.events.counts())
        for account in self.bad:
            total -= unsent(await self.storage.events.counts(account=account))
        return total

    async def paced(
        self, endpoints: Sequence[ServerProcess], rate: float, seconds: float
    ) -> list[float]:
        """Insert ``rate`` events a second (round-robin over the healthy accounts) for
        ``seconds``; the latency of each, insert to receipt."""
        inserted: dict[str, float] = {}
        tick = 0.02
        per_tick = rate * tick
        owed = 0.0
        n = 0
        started = time.monotonic()
        while time.monotonic() - started < seconds:
            owed += per_tick
            batch = []
            while owed >= 1:
                batch.append(event(self.healthy[n % len(self.healthy)]))
                n += 1
                owed -= 1
            if batch:
                at = time.time()
                await self.storage.events.insert(batch)
                inserted.update((e.event_id, at) for e in batch)
            await asyncio.sleep(tick)
        got = await self.wait_received(endpoints, set(inserted))
        return [got[i] - at for i, at in inserted.items()]

    async def burst(self, endpoints: Sequence[ServerProcess]) -> float:
        batch = [event(a) for _ in range(BURST_PER_ACCOUNT) for a in self.healthy]
        at = time.time()
        await self.storage.events.insert(batch)
        got = await self.wait_received(endpoints, {e.event_id for e in batch})
        return len(batch) / (max(got.values()) - at)


async def noisy_neighbour(db: str, rounds: int, rate: float, seconds: float) -> dict[str, Any]:
    healthy_servers = [kit_process("serve", "--keep", "100000") for _ in range(2)]
    slow_server = kit_process("serve", "--delay", "5")
    refusing = socket.socket()  # bound, never listening: every connection is refused
    refusing.bind(("127.0.0.1", 0))
    dead_url = f"https://127.0.0.1:{refusing.getsockname()[1]}/webhook"
    ca_file = Path(healthy_servers[0].info["ca_file"])
    storage = await open_storage(db)
    try:
        now = time.time()
        healthy: list[str] = []
        for n in range(HEALTHY):
            account = await storage.records.add_account(f"healthy-{n:02d}", uuid.uuid4().hex, now)
            info = healthy_servers[n % 2].info
            await storage.records.put_settings(
                settings(f"{info['url']}?account={n}", info), now, account=account.id
            )
            healthy.append(account.id)
        slow = (await storage.records.add_account("slow", uuid.uuid4().hex, now)).id
        dead = (await storage.records.add_account("dead", uuid.uuid4().hex, now)).id
        bad = {
            slow: (slow_server.info["url"], slow_server.info),
            dead: (dead_url, healthy_servers[0].info),
        }

        client_files = ClientFiles(Path(tempfile.mkdtemp(prefix="bench-fairness-")))
        dispatcher = stored_dispatcher(
            storage, DispatcherSettings(ca_file=ca_file, address_policy="local"), client_files
        )
        bench = Bench(storage, dispatcher, healthy, list(bad))
        results: dict[str, dict[str, list[float]]] = {
            mode: {"latency": [], "throughput": []} for mode in ("quiet", "noisy")
        }
        async with dispatcher:
            # Warm-up: every healthy account's token, connections and code paths.
            await bench.burst(healthy_servers)
            for r in range(rounds):
                for mode in ("quiet", "noisy") if r % 2 == 0 else ("noisy", "quiet"):
                    noisy = mode == "noisy"
                    for bad_id, (url, info) in bad.items():
                        document = settings(url, info, enabled=noisy)
                        await storage.records.put_settings(document, time.time(), account=bad_id)
                        dispatcher.settings_changed(bad_id)
                    if noisy:
                        await storage.events.insert(
                            [event(a) for a in bad for _ in range(BAD_EVENTS)]
                        )
                    else:
                        # The slow endpoint's deliveries under way finish (5 s) before a quiet
                        # round starts: the dispatcher's own count of attempts in progress.
                        while dispatcher._in_flight:  # noqa: SLF001
                            await asyncio.sleep(0.1)
                    latencies = await bench.paced(healthy_servers, rate, seconds)
                    throughput = await bench.burst(healthy_servers)
                    results[mode]["latency"].extend(latencies)
                    results[mode]["throughput"].append(throughput)
                    print(
                        f"  round {r + 1} {mode:5}: p50 {pct(latencies, 50) * 1000:6.1f} ms, "
                        f"p99 {pct(latencies, 99) * 1000:6.1f} ms, {throughput:6.0f} events/s",
                        file=sys.stderr,
                    )
            breaker = await storage.events.breaker(dead)
            counts = await storage.events.counts(account=dead)
    finally:
        await storage.close()
        refusing.close()
        for server in [*healthy_servers, slow_server]:
            server.stop()
    summary: dict[str, Any] = {}
    for mode, values in results.items():
        summary[mode] = {
            "p50_ms": pct(values["latency"], 50) * 1000,
            "p99_ms": pct(values["latency"], 99) * 1000,
            "throughput": statistics.median(values["throughput"]),
            "events": len(values["latency"]),
        }
    summary["p99_ratio"] = summary["noisy"]["p99_ms"] / summary["quiet"]["p99_ms"]
    summary["p50_ratio"] = summary["noisy"]["p50_ms"] / summary["quiet"]["p50_ms"]
    summary["throughput_ratio"] = summary["noisy"]["throughput"] / summary["quiet"]["throughput"]
    summary["dead_breaker"] = breaker.state
    summary["dead_attempts"] = sum(len(a) for a in (await _attempts(db, dead)).values())
    summary["dead_counts"] = counts
    return summary


async def _attempts(db: str, account: str) -> dict[str, list[Any]]:
    """The dead account's attempts, read afterwards (how much retry budget it spent)."""
    from webhook_kit.storage.rows import EventFilter

    storage = await open_storage(db)
    try:
        rows = await storage.events.events(EventFilter(account=account), limit=10_000)
        return await storage.events.attempts_of([r.event_id for r in rows])
    finally:
        await storage.close()


async def asgi_get(app: Any, path: str, headers: list[tuple[bytes, bytes]]) -> int:
    """One request through the ASGI app in-process; its status."""
    status = 0

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "https",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": headers,
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 443),
    }
    await app(scope, receive, send)
    return status


def median_us(samples: list[float]) -> float:
    return statistics.median(samples) * 1e6


async def scale(db: str, accounts: int) -> dict[str, Any]:
    storage = await open_storage(db)
    try:
        now = time.time()
        keys: list[str] = []
        ids: list[str] = []
        started = time.perf_counter()
        for n in range(accounts):
            key = apikeys.new_key()
            ids.append(
                (await storage.records.add_account(f"acct-{n:05d}", apikeys.key_hash(key), now)).id
            )
            keys.append(key)
        added = time.perf_counter() - started
        rng = random.Random(1)
        names = sorted(f"acct-{n:05d}" for n in range(accounts))

        pages: list[float] = []
        for _ in range(200):
            after = rng.choice(names)
            t = time.perf_counter()
            page = await storage.records.accounts(after=after, limit=100)
            pages.append(time.perf_counter() - t)
            assert page and page[0].name > after
        lookups: list[float] = []
        for _ in range(2000):
            n = rng.randrange(accounts)
            hashed = apikeys.key_hash(keys[n])
            t = time.perf_counter()
            found = await storage.records.account_for_key(hashed, time.time())
            lookups.append(time.perf_counter() - t)
            assert found == ids[n]

        info = {
            "token_url": "https://127.0.0.1:9/oauth/token",
            "client_id": "c",
            "client_secret": "s",
        }
        chosen = rng.sample(range(accounts), 50)
        for n in chosen:
            await storage.records.put_settings(
                settings("https://127.0.0.1:9/webhook", info), now, account=ids[n]
            )
        dispatcher = Dispatcher(storage.events, DispatcherSettings(), deliver=False)
        await dispatcher.start()
        api = ProviderApi(records=storage.records, dispatcher=dispatcher, apikey=apikeys.new_key())
        app = create_provider_app(api)
        calls: list[float] = []
        for i in range(1000):
            n = chosen[i % len(chosen)]
            headers = [(b"apikey", keys[n].encode()), (b"host", b"127.0.0.1")]
            t = time.perf_counter()
            status = await asgi_get(app, "/validas/v1/webhook/settings", headers)
            calls.append(time.perf_counter() - t)
            assert status == 200, status
        await dispatcher.stop()
    finally:
        await storage.close()
    return {
        "accounts": accounts,
        "add_seconds": added,
        "page_us": median_us(pages),
        "lookup_us": median_us(lookups),
        "api_call_us": median_us(calls),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", default="sqlite", help="sqlite, or a postgresql:// URL")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rate", type=float, default=150.0, help="paced events per second")
    parser.add_argument("--seconds", type=float, default=6.0, help="paced phase per round")
    parser.add_argument("--accounts", type=int, default=10_000)
    parser.add_argument("--skip-scale", action="store_true")
    parser.add_argument("--skip-fairness", action="store_true")
    args = parser.parse_args()
    out: dict[str, Any] = {
        "machine": machine(),
        "db": "sqlite" if args.db == "sqlite" else "postgresql",
    }
    with tempfile.TemporaryDirectory() as tmp:
        for part, enabled in (("fairness", not args.skip_fairness), ("scale", not args.skip_scale)):
            if not enabled:
                continue
            db = str(Path(tmp) / f"{part}.db") if args.db == "sqlite" else _fresh_schema(args.db)
            try:
                if part == "fairness":
                    out[part] = run(noisy_neighbour(db, args.rounds, args.rate, args.seconds))
                else:
                    out[part] = run(scale(db, args.accounts))
            finally:
                if args.db != "sqlite":
                    _drop_schema(args.db, db)
    print(json.dumps(out, indent=2))


def _fresh_schema(url: str) -> str:
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    return f"{url}{'&' if '?' in url else '?'}schema={schema}"


def _drop_schema(url: str, db: str) -> None:
    import asyncpg

    schema = db.rsplit("schema=", 1)[1]

    async def drop() -> None:
        conn = await asyncpg.connect(url)
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await conn.close()

    asyncio.run(drop())


if __name__ == "__main__":
    main()
