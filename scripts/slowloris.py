"""Slow-connection flood against `webhook-kit serve`, with a legitimate client measuring service.

Starts `python -m webhook_kit serve --port 0 --json` on loopback (or uses --url/--ca), opens N slow
connections and keeps them open (reopening any the server closes), while a legitimate client
requests `/_kit/health` and a token, one fresh TLS connection each, and records success and
latency. Only ever connects to 127.0.0.0/8 or ::1.

Kinds of slow connection (--mode):
  headers    completes TLS, then sends one header line every --interval seconds, never finishing
  handshake  opens TCP and never starts the TLS handshake
  mixed      half of each (default)

Not a test: the figures depend on the machine. Example:
  .venv/bin/python scripts/slowloris.py --connections 5000 --duration 60
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import json
import os
import resource
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit


@dataclass
class Flood:
    opened: int = 0
    closed_by_server: int = 0
    failed_to_open: int = 0
    open_now: int = 0
    peak_open: int = 0


@dataclass
class Service:
    latencies: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, object]:
        total = len(self.latencies) + len(self.failures)
        ms = sorted(x * 1000 for x in self.latencies)

        def pct(p: float) -> float | None:
            return round(ms[min(len(ms) - 1, int(p * len(ms)))], 1) if ms else None

        return {
            "requests": total,
            "ok": len(self.latencies),
            "failed": len(self.failures),
            "success_rate": round(len(self.latencies) / total, 4) if total else None,
            "latency_ms_p50": round(statistics.median(ms), 1) if ms else None,
            "latency_ms_p95": pct(0.95),
            "latency_ms_max": round(ms[-1], 1) if ms else None,
            "first_failures": sorted(set(self.failures))[:5],
        }


def raise_fd_limit() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else 1 << 20
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def start_server(
    server: str, certs: Path, fd_limit: int
) -> tuple[subprocess.Popen[str], dict[str, str]]:
    def limit() -> None:
        # The server starts with a typical desktop limit, as from a shell; the kit itself may
        # raise it (that is part of what is measured).
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(fd_limit, hard), hard))

    process = subprocess.Popen(
        [sys.executable, "-m", "webhook_kit", "serve", "--port", "0", "--json"]
        + ["--server", server, "--certs-dir", str(certs)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=limit,
    )
    assert process.stdout is not None and process.stderr is not None
    line = process.stdout.readline()
    if not line:
        raise SystemExit(f"serve did not start: {process.stderr.read()}")
    # Keep both pipes drained so the server never waits on us.
    for stream in (process.stdout, process.stderr):
        threading.Thread(target=stream.read, daemon=True).start()
    return process, json.loads(line)


def loopback_only(host: str) -> None:
    if host == "localhost":
        return
    if not ipaddress.ip_address(host.strip("[]")).is_loopback:
        raise SystemExit(f"refusing to flood {host}: only loopback addresses")


async def slow_connection(
    host: str, port: int, ctx: ssl.SSLContext, mode: str, interval: float, flood: Flood,
    stop: asyncio.Event, gate: asyncio.Semaphore,
) -> None:  # fmt: skip
    while not stop.is_set():
        writer: asyncio.StreamWriter | None = None
        try:
            async with gate:
                if mode == "handshake":
                    reader, opened = await asyncio.open_connection(host, port)
                else:
                    reader, opened = await asyncio.wait_for(
                        asyncio.open_connection(host, port, ssl=ctx, server_hostname="localhost"),
                        30,
                    )
                    opened.write(b"POST /webhook HTTP/1.1\r\nHost: localhost\r\n")
                writer = opened
            flood.opened += 1
            flood.open_now += 1
            flood.peak_open = max(flood.peak_open, flood.open_now)
            try:
                while not stop.is_set():
                    with contextlib.suppress(TimeoutError):
                        data = await asyncio.wait_for(reader.read(1024), interval)
                        if not data:
                            break  # the server closed it
                        continue
                    if mode != "handshake":
                        writer.write(b"X-Slow: 1\r\n")
                        await writer.drain()
            finally:
                flood.open_now -= 1
            if not stop.is_set():
                flood.closed_by_server += 1
        except (OSError, TimeoutError, ssl.SSLError):
            flood.failed_to_open += 1
            await asyncio.sleep(0.5)
        finally:
            if writer is not None:
                writer.close()


def legitimate_client(
    base: str, info: dict[str, str], ca: str, service: Service, stop: threading.Event, pause: float
) -> None:
    import requests

    while not stop.is_set():
        started = time.perf_counter()
        try:
            with requests.Session() as http:  # a fresh connection every time
                http.trust_env = False
                http.verify = ca
                health = http.get(base + "/_kit/health", timeout=5)
                health.raise_for_status()
                if info.get("client_id"):
                    token = http.post(
                        info["token_url"],
                        data={"grant_type": "client_credentials"},
                        auth=(info["client_id"], info["client_secret"]),
                        timeout=5,
                    )
                    token.raise_for_status()
            service.latencies.append(time.perf_counter() - started)
        except Exception as exc:  # every failure is a data point, not a crash
            service.failures.append(type(exc).__name__)
        stop.wait(pause)


async def attack(args: argparse.Namespace, host: str, port: int, ca: str, flood: Flood) -> None:
    ctx = ssl.create_default_context(cafile=ca)
    stop = asyncio.Event()
    gate = asyncio.Semaphore(args.ramp)
    modes = {"headers": ["headers"], "handshake": ["handshake"], "mixed": ["headers", "handshake"]}
    kinds = modes[args.mode]
    tasks = [
        asyncio.ensure_future(
            slow_connection(
                host, port, ctx, kinds[i % len(kinds)], args.interval, flood, stop, gate
            )
        )
        for i in range(args.connections)
    ]
    await asyncio.sleep(args.duration)
    stop.set()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=5000)
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of flood")
    parser.add_argument("--warmup", type=float, default=15.0, help="seconds before measuring")
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between header lines")
    parser.add_argument("--mode", choices=["headers", "handshake", "mixed"], default="mixed")
    parser.add_argument("--ramp", type=int, default=200, help="connections opening at once")
    parser.add_argument("--server", choices=["uvicorn", "hypercorn"], default="uvicorn")
    parser.add_argument("--url", help="an already running endpoint's base URL (loopback)")
    parser.add_argument("--ca", help="CA file for --url")
    parser.add_argument(
        "--server-fd-limit",
        type=int,
        default=1024,
        help="soft open-file limit the server starts with",
    )
    parser.add_argument("--pause", type=float, default=0.2, help="seconds between legit requests")
    args = parser.parse_args()

    fd_limit = raise_fd_limit()
    process = None
    with tempfile.TemporaryDirectory() as tmp:
        if args.url:
            if not args.ca:
                raise SystemExit("--url needs --ca")
            info: dict[str, str] = {}
            base, ca = args.url.rstrip("/"), args.ca
        else:
            process, info = start_server(args.server, Path(tmp), args.server_fd_limit)
            base = info["url"].rsplit("/", 1)[0]
            ca = info["ca_file"]
        split = urlsplit(base)
        assert split.hostname and split.port
        loopback_only(split.hostname)

        flood, service = Flood(), Service()
        baseline, stop_baseline = Service(), threading.Event()
        probe = threading.Thread(
            target=legitimate_client, args=(base, info, ca, baseline, stop_baseline, args.pause)
        )
        probe.start()
        time.sleep(3)
        stop_baseline.set()
        probe.join()

        stop = threading.Event()

        def measure() -> None:
            time.sleep(args.warmup)  # let the flood build up first
            legitimate_client(base, info, ca, service, stop, args.pause)

        client = threading.Thread(target=measure)
        client.start()
        started = time.monotonic()
        try:
            import uvloop
        except ImportError:  # pragma: no cover
            asyncio.run(attack(args, split.hostname, split.port, ca, flood))
        else:
            uvloop.run(attack(args, split.hostname, split.port, ca, flood))
        stop.set()
        client.join()
        alive = process is None or process.poll() is None
        if process is not None:
            process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(15)
            if process.poll() is None:
                process.kill()

    result = {
        "server": args.server if not args.url else base,
        "mode": args.mode,
        "connections": args.connections,
        "flood_seconds": round(time.monotonic() - started, 1),
        "client_fd_limit": fd_limit,
        "server_fd_limit_at_start": None if args.url else args.server_fd_limit,
        "flood": flood.__dict__,
        "before_flood": baseline.summary(),
        "during_flood": service.summary(),
        "server_alive": alive,
        "pid": os.getpid(),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
