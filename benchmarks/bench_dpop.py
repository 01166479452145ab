"""What a DPoP proof costs a sender: per proof, and per delivery against bearer-only.

1. Microseconds per proof as the sender makes it for a webhook POST (``htm``, ``htu``, ``iat``,
   ``jti``, ``ath`` of the token, ES256), through ``OAuthClient.resource_headers``.
2. Deliveries through ``transport.deliver`` (token from the cache, POST, classification) to a
   bare Starlette receiver (``bare_app.py``, its own process, TLS), bearer-only and DPoP-bound in
   alternating rounds of the same run: deliveries per second, this process's CPU per delivery
   (``time.process_time``), and the ratios. The receiver does not check the proof: this measures
   the sender.

The tokens come from a token endpoint in this process (fetched once per client; a DPoP proof on
the token request gets ``token_type: DPoP``), so nothing but the delivery path is measured.

    python benchmarks/bench_dpop.py [--events 5000] [--rounds 3] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import aiohttp  # noqa: E402
from _common import ServerProcess, machine, python  # noqa: E402
from aiohttp import web  # noqa: E402

from webhook_kit.delivery import transport  # noqa: E402
from webhook_kit.oauth.client import OAuthClient, OAuthSettings  # noqa: E402
from webhook_kit.serving.loop import run  # noqa: E402
from webhook_kit.tls import client_context, ensure_dev_certs, server_context  # noqa: E402

BODY = transport.encode({"event_id": "bench", "status": "on-course", "validation_id": "v"})


async def token_endpoint(request: web.Request) -> web.Response:
    await request.read()
    kind = "DPoP" if "DPoP" in request.headers else "Bearer"
    token = secrets.token_urlsafe(600)  # the size of a typical JWT access token
    return web.json_response({"access_token": token, "token_type": kind, "expires_in": 3600})


async def start_token_server(certs: Path) -> tuple[web.AppRunner, str]:
    files, _ = ensure_dev_certs(certs)
    app = web.Application()
    app.router.add_post("/token", token_endpoint)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    sock = socket.create_server(("127.0.0.1", 0))
    await web.SockSite(runner, sock, ssl_context=server_context(files)).start()
    return runner, f"https://127.0.0.1:{sock.getsockname()[1]}/token"


def proof_cost(client: OAuthClient, token: str, url: str, count: int) -> float:
    """Microseconds per proof (minimum of 5 batches: the least disturbed)."""
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(count):
            client.resource_headers(token, "POST", url)
        best = min(best, (time.perf_counter() - started) / count)
    return best * 1e6


async def deliveries(
    client: OAuthClient, session: aiohttp.ClientSession, url: str, events: int, concurrency: int
) -> tuple[float, float]:
    """Deliveries per second and this process's CPU microseconds per delivery."""
    remaining = iter(range(events))
    failed: list[str] = []

    async def worker() -> None:
        for i in remaining:
            result = await transport.deliver(
                session, client, url, BODY, event_id=f"e-{i}", timeout=10
            )
            if not result.ok:
                failed.append(result.reason)

    cpu, started = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed, cpu_used = time.perf_counter() - started, time.process_time() - cpu
    assert not failed, failed[:3]
    return events / elapsed, cpu_used / events * 1e6


async def measure(args: argparse.Namespace, receiver: dict[str, str], certs: Path) -> None:
    runner, token_url = await start_token_server(certs)
    ca_file = Path(receiver["ca_file"])
    url = receiver["url"]
    session = transport.make_session(client_context(ca_file), limit=args.concurrency * 2)
    try:
        bearer = OAuthClient(OAuthSettings(token_url, "bench", "bench-secret"), session)
        dpop = OAuthClient(
            OAuthSettings(token_url, "bench", "bench-secret", dpop=args.algorithm), session
        )
        await bearer.token()
        token = await dpop.token()
        assert dpop.token_scheme == "DPoP"
        per_proof = proof_cost(dpop, token, url, args.proofs)
        # Warm up every connection before the first measured round.
        await deliveries(bearer, session, url, args.concurrency * 4, args.concurrency)
        rows = []
        for _ in range(args.rounds):
            rows.append(
                (
                    await deliveries(bearer, session, url, args.events, args.concurrency),
                    await deliveries(dpop, session, url, args.events, args.concurrency),
                )
            )
    finally:
        await session.close()
        await runner.cleanup()
    report(args, per_proof, rows, bearer.fetches + dpop.fetches)


def report(
    args: argparse.Namespace,
    per_proof: float,
    rows: list[tuple[tuple[float, float], tuple[float, float]]],
    fetches: int,
) -> None:
    print(f"machine: {machine()}")
    print(
        f"{args.algorithm} proof with ath: {per_proof:.1f} µs "
        f"(min of 5 x {args.proofs}, OAuthClient.resource_headers)"
    )
    print(f"deliveries: {args.events} per client per round, concurrency {args.concurrency}")
    print("round  bearer/s  dpop/s  ratio   bearer µs/d  dpop µs/d  added µs/d")
    ratios, added = [], []
    for n, ((b_rate, b_cpu), (d_rate, d_cpu)) in enumerate(rows, 1):
        ratios.append(d_rate / b_rate)
        added.append(d_cpu - b_cpu)
        print(
            f"{n:>5}  {b_rate:>8.0f}  {d_rate:>6.0f}  {d_rate / b_rate:>5.2f}"
            f"   {b_cpu:>11.0f}  {d_cpu:>9.0f}  {d_cpu - b_cpu:>10.0f}"
        )
    print(
        f"median: throughput ratio dpop/bearer {statistics.median(ratios):.2f}, "
        f"added client CPU {statistics.median(added):.0f} µs per delivery; "
        f"token fetches {fetches} (one per client)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--proofs", type=int, default=2000)
    parser.add_argument("--algorithm", default="ES256", choices=["ES256", "PS256", "RS256"])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        certs = Path(tmp) / "certs"
        bench_dir = Path(__file__).resolve().parent
        receiver = ServerProcess(
            [python(), str(bench_dir / "bare_app.py"), "--certs-dir", str(certs)]
        )
        try:
            run(measure(args, receiver.info, certs))
        finally:
            receiver.stop()


if __name__ == "__main__":
    main()
