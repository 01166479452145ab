"""Delivery throughput and latency of the reference engine, against the kit's own endpoint.

1. Deliveries per second through the dispatcher with the durable store on (an SQLite file),
   over TLS and OAuth, to ``webhook-kit serve`` running as its own process; in the same run, a
   bare POST loop with the same HTTP client (aiohttp), the same concurrency and the same endpoint.
   Rounds alternate so drift on a shared machine hits both.
2. Token fetches per 10,000 deliveries.
3. Latency from the provider API call (POST /validation) to receipt at the endpoint, p50 and p99,
   at a paced 100 events/s, with ``webhook-kit provider`` and ``webhook-kit serve`` as processes.

    python benchmarks/bench_delivery.py [--events 10000] [--rounds 2] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import requests  # noqa: E402
from _common import ServerProcess, kit_process, machine, token_for  # noqa: E402

from webhook_kit.contract import notifications  # noqa: E402
from webhook_kit.contract.statuses import STATUSES  # noqa: E402
from webhook_kit.delivery import transport  # noqa: E402
from webhook_kit.delivery.dispatcher import Dispatcher, DispatcherSettings, Target  # noqa: E402
from webhook_kit.oauth.client import OAuthSettings  # noqa: E402
from webhook_kit.serving.loop import run  # noqa: E402
from webhook_kit.storage.url import open_storage  # noqa: E402
from webhook_kit.tls import client_context  # noqa: E402


def bodies(count: int) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    while len(out) < count:
        out.extend(notifications.lifecycle())
    return out[:count]


async def dispatcher_run(
    info: dict[str, str], db: Path, events: int, concurrency: int
) -> tuple[float, int]:
    storage = await open_storage(str(db))
    target = Target(
        info["url"], OAuthSettings(info["token_url"], info["client_id"], info["client_secret"])
    )
    settings = DispatcherSettings(concurrency=concurrency, ca_file=Path(info["ca_file"]))
    payloads = bodies(events)
    async with Dispatcher(storage.events, settings, target=target) as d:
        started = time.perf_counter()
        # Stored in batches of 100 (one commit each), as a busy provider's requests share commits.
        for start in range(0, len(payloads), 100):
            await d.enqueue_many(payloads[start : start + 100])
        assert await d.wait_idle(600), "deliveries did not finish"
        elapsed = time.perf_counter() - started
        fetches = d.oauth.fetches if d.oauth else 0
    counts = await storage.events.counts()
    await storage.close()
    assert counts == {"sent": events}, counts
    return events / elapsed, fetches


async def bare_loop(info: dict[str, str], token: str, events: int, concurrency: int) -> float:
    """The same requests with no engine: each notification is encoded and POSTed with the
    contract's headers (as the dispatcher sends them), and that is all: no store, no queue, no
    retry bookkeeping."""
    notifications_ = bodies(events)
    session = transport.make_session(client_context(Path(info["ca_file"])), limit=concurrency * 2)
    queue = iter(notifications_)

    async def worker() -> None:
        for notification in queue:
            headers = {
                "Content-Type": "application/json",
                "Authorization": f"Bearer {token}",
                "User-Agent": transport.USER_AGENT,
                "Webhook-Id": str(notification["event_id"]),
                "Webhook-Timestamp": str(int(time.time())),
            }
            async with session.post(
                info["url"],
                data=transport.encode(notification),
                headers=headers,
                allow_redirects=False,
            ) as r:
                await r.read()
                assert r.status == 200, r.status

    async with session:
        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return events / (time.perf_counter() - started)


def latency(work: Path, sink: ServerProcess, rate: float, seconds: float) -> list[float]:
    info = sink.info
    provider = kit_process(
        "provider",
        "--db",
        str(work / "lat.db"),
        "--ca",
        info["ca_file"],
        "--certs-dir",
        str(work / "certs"),
    )
    try:
        base, apikey = provider.info["base_url"], provider.info["apikey"]
        http = requests.Session()
        http.trust_env = False
        http.verify = info["ca_file"]
        http.headers["apikey"] = apikey
        http.post(
            base + "/webhook/settings",
            json={
                "url": info["url"],
                "auth": {
                    "token_url": info["token_url"],
                    "client_id": info["client_id"],
                    "client_secret": info["client_secret"],
                },
            },
            timeout=30,
        ).raise_for_status()
        http.delete(
            info["inspect_url"] + "deliveries", headers={"X-Webhook-Kit": "1"}, timeout=30
        ).raise_for_status()
        sent_at: dict[str, float] = {}
        interval = 1 / rate
        next_at = time.perf_counter()
        for _ in range(int(rate * seconds)):
            next_at += interval
            called = time.time()
            data = http.post(base + "/validation", timeout=30).json()["data"]
            sent_at[data["event_id"]] = called
            pause = next_at - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            got = http.get(
                info["inspect_url"] + "deliveries", params={"accepted": "true"}, timeout=30
            ).json()
            if got["count"] >= len(sent_at):
                break
            time.sleep(0.2)
        received = {d["event_id"]: d["received_at"] for d in got["deliveries"]}
        http.close()
    finally:
        provider.stop()
    out = []
    for event_id, called in sent_at.items():
        at = dt.datetime.fromisoformat(received[event_id].replace("Z", "+00:00")).timestamp()
        out.append((at - called) * 1000)
    return out


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--latency-seconds", type=float, default=10.0)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-delivery-"))
    sink = kit_process(
        "serve",
        "--certs-dir",
        str(work / "certs"),
        "--keep",
        "1000",
    )
    info = sink.info
    token = token_for(info)
    engine: list[float] = []
    bare: list[float] = []
    fetches: list[int] = []
    # Client CPU per request (this process): the client side is what the engine adds to.
    cpu_bare: list[float] = []
    cpu_engine: list[float] = []
    try:
        for round_ in range(args.rounds):
            started = time.process_time()
            bare.append(run(bare_loop(info, token, args.events, args.concurrency)))
            cpu_bare.append((time.process_time() - started) / args.events * 1e6)
            started = time.process_time()
            rate, fetched = run(
                dispatcher_run(info, work / f"round{round_}.db", args.events, args.concurrency)
            )
            cpu_engine.append((time.process_time() - started) / args.events * 1e6)
            engine.append(rate)
            fetches.append(fetched)
            print(
                f"round {round_ + 1}: bare loop {bare[-1]:7.0f}/s, dispatcher {engine[-1]:7.0f}/s, "
                f"ratio {engine[-1] / bare[-1]:.2f}, token fetches {fetched}; client CPU per "
                f"request {cpu_bare[-1]:.0f} us bare, {cpu_engine[-1]:.0f} us dispatcher"
            )
        latencies = latency(work, sink, args.rate, args.latency_seconds)
    finally:
        sink.stop()

    e, b = statistics.median(engine), statistics.median(bare)
    print()
    print(
        f"machine: {machine()}; {args.events} events x {args.rounds} rounds; "
        f"concurrency {args.concurrency}; {len(STATUSES)} statuses per validation"
    )
    print(f"dispatcher (SQLite WAL file, TLS, OAuth): {e:7.0f} deliveries/s   (goal >= 1500)")
    print(f"bare aiohttp POST loop (same requests, same endpoint): {b:7.0f} posts/s")
    # Each round pairs a bare run with the dispatcher run right after it: drift hits both.
    paired = statistics.median(x / y for x, y in zip(engine, bare, strict=True))
    print(f"ratio dispatcher/bare: {paired:.2f} (median of per-round ratios)   (goal >= 0.75)")
    print(
        f"client CPU per request: bare {statistics.median(cpu_bare):.0f} us, dispatcher "
        f"{statistics.median(cpu_engine):.0f} us (median; includes storing the event)"
    )
    per_10k = max(fetches) * 10_000 / args.events
    print(f"token fetches per 10,000 deliveries: {per_10k:.0f}")
    print(
        f"API call -> receipt at {args.rate:g} events/s over {args.latency_seconds:g}s "
        f"({len(latencies)} events): p50 {percentile(latencies, 0.5):.1f} ms, "
        f"p99 {percentile(latencies, 0.99):.1f} ms, max {max(latencies):.1f} ms"
    )


if __name__ == "__main__":
    main()
