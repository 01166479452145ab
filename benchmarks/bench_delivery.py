"""Delivery throughput and latency of the reference engine, against the kit's own endpoint.

1. Deliveries per second through the dispatcher with the durable store on (an SQLite file),
   over TLS and OAuth, to ``webhook-kit serve`` running as its own process; in the same run, a
   bare POST loop with the same HTTP client (aiohttp), the same concurrency and the same endpoint.
   Rounds alternate so drift on a shared machine hits both.
2. The same with DPoP-bound tokens (RFC 9449), in the same rounds: a second ``webhook-kit serve
   --token-binding dpop`` process (it refuses bearer tokens, and checks every proof), the
   dispatcher with ``OAuthSettings(..., dpop="ES256")``, and a bare loop that sends a proof per
   POST too. Reported against the bare bearer loop (the issue's floor: 0.6) and the bearer
   dispatcher, with this process's CPU per delivery, bearer and DPoP: their difference is what
   a proof costs a sender per delivery. Also microseconds per proof, as the dispatcher makes it
   (``OAuthClient.resource_headers``).
3. Token fetches per 10,000 deliveries.
4. Latency from the provider API call (POST /validation) to receipt at the endpoint, p50 and p99,
   at a paced 100 events/s, with ``webhook-kit provider`` and ``webhook-kit serve`` as processes.

    python benchmarks/bench_delivery.py [--events 10000] [--rounds 2] [--concurrency 16]
        [--dpop-algorithm ES256]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import requests  # noqa: E402
from _common import ServerProcess, kit_process, machine  # noqa: E402

from webhook_kit.contract import notifications  # noqa: E402
from webhook_kit.contract.statuses import STATUSES  # noqa: E402
from webhook_kit.delivery import transport  # noqa: E402
from webhook_kit.delivery.dispatcher import Dispatcher, DispatcherSettings, Target  # noqa: E402
from webhook_kit.oauth.client import OAuthClient, OAuthSettings  # noqa: E402
from webhook_kit.oauth.dpop import ALGORITHMS, ProofAlgorithm  # noqa: E402
from webhook_kit.serving.loop import run  # noqa: E402
from webhook_kit.storage.url import open_storage  # noqa: E402
from webhook_kit.tls import client_context  # noqa: E402


def bodies(count: int) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    while len(out) < count:
        out.extend(notifications.lifecycle())
    return out[:count]


def oauth_settings(info: dict[str, str], dpop: ProofAlgorithm | None) -> OAuthSettings:
    return OAuthSettings(info["token_url"], info["client_id"], info["client_secret"], dpop=dpop)


async def dispatcher_run(
    info: dict[str, str], db: Path, events: int, concurrency: int, dpop: ProofAlgorithm | None
) -> tuple[float, int]:
    storage = await open_storage(str(db))
    target = Target(info["url"], oauth_settings(info, dpop))
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
        if dpop is not None:
            assert d.oauth is not None and d.oauth.token_scheme == "DPoP", "no DPoP-bound token"
    counts = await storage.events.counts()
    await storage.close()
    assert counts == {"sent": events}, counts
    return events / elapsed, fetches


async def bare_loop(
    info: dict[str, str], events: int, concurrency: int, dpop: ProofAlgorithm | None
) -> float:
    """The same requests with no engine: each notification is encoded and POSTed with the
    contract's headers (as the dispatcher sends them), and that is all: no store, no queue, no
    retry bookkeeping. The token is fetched before the clock starts; with ``dpop``, each POST
    carries a fresh proof, as it must."""
    notifications_ = bodies(events)
    session = transport.make_session(client_context(Path(info["ca_file"])), limit=concurrency * 2)
    queue = iter(notifications_)
    url = info["url"]

    async def worker(auth: Callable[[], dict[str, str]]) -> None:
        for notification in queue:
            headers = {
                "Content-Type": "application/json",
                **auth(),
                "User-Agent": transport.USER_AGENT,
                "Webhook-Id": str(notification["event_id"]),
                "Webhook-Timestamp": str(int(time.time())),
            }
            async with session.post(
                url,
                data=transport.encode(notification),
                headers=headers,
                allow_redirects=False,
            ) as r:
                await r.read()
                assert r.status == 200, r.status

    async with session:
        oauth = OAuthClient(oauth_settings(info, dpop), session)
        token = await oauth.token()
        assert oauth.token_scheme == ("DPoP" if dpop else "Bearer"), oauth.token_scheme
        if dpop is None:
            bearer = {"Authorization": f"Bearer {token}"}

            def auth() -> dict[str, str]:
                return bearer
        else:

            def auth() -> dict[str, str]:
                return oauth.resource_headers(token, "POST", url)

        started = time.perf_counter()
        await asyncio.gather(*(worker(auth) for _ in range(concurrency)))
        return events / (time.perf_counter() - started)


async def proof_cost(info: dict[str, str], algorithm: ProofAlgorithm, count: int) -> float:
    """Microseconds per proof with ``ath``, as the dispatcher makes it (minimum of 5 batches:
    the least disturbed by the other sessions on the machine)."""
    session = transport.make_session(client_context(Path(info["ca_file"])), limit=2)
    async with session:
        oauth = OAuthClient(oauth_settings(info, algorithm), session)
        token = await oauth.token()
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(count):
            oauth.resource_headers(token, "POST", info["url"])
        best = min(best, (time.perf_counter() - started) / count)
    return best * 1e6


@dataclass
class Series:
    """One configuration's per-round figures: throughput and client CPU µs per request."""

    rate: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)

    def measure(self, events: int, work: Coroutine[Any, Any, Any]) -> Any:
        """Run ``work`` on its own loop (its result is the rate, or a tuple led by it) and record
        its figures."""
        started = time.process_time()
        result = run(work)
        self.cpu.append((time.process_time() - started) / events * 1e6)
        self.rate.append(result[0] if isinstance(result, tuple) else result)
        return result


def paired(a: list[float], b: list[float]) -> float:
    """Median of per-round ratios: runs of one round are close in time, so drift hits both."""
    return statistics.median(x / y for x, y in zip(a, b, strict=True))


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
    parser.add_argument("--dpop-algorithm", default="ES256", choices=ALGORITHMS)
    parser.add_argument("--proofs", type=int, default=2000, help="proofs per timing batch")
    args = parser.parse_args()
    algorithm: ProofAlgorithm = args.dpop_algorithm
    events, concurrency = args.events, args.concurrency

    work = Path(tempfile.mkdtemp(prefix="bench-delivery-"))
    certs = ["--certs-dir", str(work / "certs")]
    sink = kit_process("serve", *certs, "--keep", "1000")
    # Its own process: a DPoP-binding endpoint refuses bearer tokens.
    dpop_sink = kit_process("serve", *certs, "--keep", "1000", "--token-binding", "dpop")
    info, dpop_info = sink.info, dpop_sink.info
    bare, engine, bare_dpop, engine_dpop = Series(), Series(), Series(), Series()
    fetches: list[int] = []
    dpop_fetches: list[int] = []
    try:
        per_proof = run(proof_cost(dpop_info, algorithm, args.proofs))
        for round_ in range(args.rounds):
            # Which pair goes first alternates, so a slow stretch of the machine is shared.
            pairs = [
                (info, None, bare, engine, fetches),
                (dpop_info, algorithm, bare_dpop, engine_dpop, dpop_fetches),
            ]
            order = pairs if round_ % 2 == 0 else pairs[::-1]
            for sink_info, dpop, bare_series, engine_series, fetched in order:
                db = work / f"round{round_}-{dpop or 'bearer'}.db"
                bare_series.measure(events, bare_loop(sink_info, events, concurrency, dpop))
                _, fetch_count = engine_series.measure(
                    events, dispatcher_run(sink_info, db, events, concurrency, dpop)
                )
                fetched.append(fetch_count)
            print(
                f"round {round_ + 1}: bare loop {bare.rate[-1]:7.0f}/s, dispatcher "
                f"{engine.rate[-1]:7.0f}/s, ratio {engine.rate[-1] / bare.rate[-1]:.2f}, "
                f"token fetches {fetches[-1]}; client CPU per request {bare.cpu[-1]:.0f} us "
                f"bare, {engine.cpu[-1]:.0f} us dispatcher"
            )
            print(
                f"         DPoP: bare loop {bare_dpop.rate[-1]:7.0f}/s, dispatcher "
                f"{engine_dpop.rate[-1]:7.0f}/s; dispatcher+DPoP / bare bearer loop "
                f"{engine_dpop.rate[-1] / bare.rate[-1]:.2f}, / bearer dispatcher "
                f"{engine_dpop.rate[-1] / engine.rate[-1]:.2f}; client CPU per request "
                f"{bare_dpop.cpu[-1]:.0f} us bare, {engine_dpop.cpu[-1]:.0f} us dispatcher"
            )
        latencies = latency(work, sink, args.rate, args.latency_seconds)
    finally:
        dpop_sink.stop()
        sink.stop()

    e, b = statistics.median(engine.rate), statistics.median(bare.rate)
    print()
    print(
        f"machine: {machine()}; {events} events x {args.rounds} rounds; "
        f"concurrency {concurrency}; {len(STATUSES)} statuses per validation"
    )
    print(f"dispatcher (SQLite WAL file, TLS, OAuth): {e:7.0f} deliveries/s   (goal >= 1500)")
    print(f"bare aiohttp POST loop (same requests, same endpoint): {b:7.0f} posts/s")
    print(
        f"ratio dispatcher/bare: {paired(engine.rate, bare.rate):.2f} "
        "(median of per-round ratios)   (goal >= 0.75)"
    )
    print(
        f"client CPU per request: bare {statistics.median(bare.cpu):.0f} us, dispatcher "
        f"{statistics.median(engine.cpu):.0f} us (median; includes storing the event)"
    )
    per_10k = max(fetches) * 10_000 / events
    print(f"token fetches per 10,000 deliveries: {per_10k:.0f}")
    print(
        f"API call -> receipt at {args.rate:g} events/s over {args.latency_seconds:g}s "
        f"({len(latencies)} events): p50 {percentile(latencies, 0.5):.1f} ms, "
        f"p99 {percentile(latencies, 0.99):.1f} ms, max {max(latencies):.1f} ms"
    )
    print()
    print(
        f"DPoP ({algorithm}, serve --token-binding dpop, which checks every proof; "
        f"token fetches {max(dpop_fetches)} per run):"
    )
    print(f"  proof with ath: {per_proof:.1f} us (min of 5 x {args.proofs})")
    print(
        f"  dispatcher + DPoP: {statistics.median(engine_dpop.rate):7.0f} deliveries/s; "
        f"bare loop + DPoP: {statistics.median(bare_dpop.rate):7.0f} posts/s"
    )
    print(
        f"  ratio dispatcher+DPoP / bare bearer loop: {paired(engine_dpop.rate, bare.rate):.2f}"
        "   (goal >= 0.6)"
    )
    print(
        f"  ratio dispatcher+DPoP / bearer dispatcher: {paired(engine_dpop.rate, engine.rate):.2f};"
        f" dispatcher+DPoP / bare DPoP loop: {paired(engine_dpop.rate, bare_dpop.rate):.2f}"
    )
    added = statistics.median(d - c for d, c in zip(engine_dpop.cpu, engine.cpu, strict=True))
    print(
        f"  client CPU per delivery: dispatcher bearer {statistics.median(engine.cpu):.0f} us, "
        f"DPoP {statistics.median(engine_dpop.cpu):.0f} us: the proof adds {added:.0f} us "
        "(median of per-round differences)"
    )


if __name__ == "__main__":
    main()
