"""Shared benchmark plumbing: subprocess servers, their CPU time, an aiohttp load loop."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from webhook_kit.tls import client_context

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
#: The PostgreSQL server on this machine (trust authentication), where no other is named.
DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/test"


def add_dsn_argument(parser: argparse.ArgumentParser) -> None:
    """``--dsn``: the tests' server (``WEBHOOK_KIT_TEST_POSTGRES``) if set, else the local one."""
    parser.add_argument("--dsn", default=os.environ.get("WEBHOOK_KIT_TEST_POSTGRES", DEFAULT_DSN))


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (all its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


#: The idle column of ``/proc/stat``'s cpu line (user, nice, system, idle, iowait, ...).
IDLE = 3


def machine_ticks() -> list[int]:
    """The machine's CPU time by state since boot, in clock ticks (``/proc/stat``)."""
    return [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]


def waited_ns(pid: int) -> int:
    """Nanoseconds that ``pid``'s threads spent runnable but waiting for a CPU (schedstat's
    second field); 0 once it is gone."""
    total = 0
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return 0
    for task in tasks:
        try:
            total += int((task / "schedstat").read_text().split()[1])
        except (OSError, IndexError, ValueError):
            continue  # a thread that ended meanwhile
    return total


def machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


class ServerProcess:
    """A server started as a subprocess that prints one JSON line when ready."""

    def __init__(self, args: list[str], cwd: Path | None = None) -> None:
        self.process = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=cwd
        )
        line = self.process.stdout.readline()  # type: ignore[union-attr]
        if not line:
            raise RuntimeError(self.process.stderr.read())  # type: ignore[union-attr]
        self.info: dict[str, Any] = json.loads(line)

    @property
    def cpu(self) -> float:
        return cpu_seconds(self.process.pid)

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        self.process.communicate(timeout=30)


@dataclass
class LoadResult:
    requests: int
    errors: int
    seconds: float
    server_cpu: float

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    @property
    def per_cpu_second(self) -> float:
        return self.requests / self.server_cpu if self.server_cpu else float("nan")


async def post_loop(
    server: ServerProcess,
    url: str,
    bodies: list[bytes],
    *,
    headers: dict[str, str],
    ca_file: str,
    connections: int,
    seconds: float,
) -> LoadResult:
    """POST ``bodies`` round-robin over ``connections`` keep-alive connections for ``seconds``."""
    connector = aiohttp.TCPConnector(ssl=client_context(Path(ca_file)), limit=connections)
    counts = {"ok": 0, "errors": 0}
    async with aiohttp.ClientSession(connector=connector, trust_env=False) as session:
        # Warm up: open every connection before measuring.
        await asyncio.gather(
            *(_one(session, url, bodies[0], headers, counts) for _ in range(connections))
        )
        counts.update(ok=0, errors=0)
        cpu_before = server.cpu
        started = time.perf_counter()
        deadline = started + seconds

        async def worker(offset: int) -> None:
            i = offset
            while time.perf_counter() < deadline:
                await _one(session, url, bodies[i % len(bodies)], headers, counts)
                i += connections

        await asyncio.gather(*(worker(n) for n in range(connections)))
        elapsed = time.perf_counter() - started
        cpu_used = server.cpu - cpu_before
    return LoadResult(counts["ok"], counts["errors"], elapsed, cpu_used)


async def _one(
    session: aiohttp.ClientSession,
    url: str,
    body: bytes,
    headers: dict[str, str],
    counts: dict[str, int],
) -> None:
    async with session.post(url, data=body, headers=headers, allow_redirects=False) as response:
        await response.read()
        counts["ok" if response.status == 200 else "errors"] += 1


def python() -> str:
    return sys.executable


def kit_process(command: str, *args: str) -> ServerProcess:
    """``webhook-kit COMMAND --port 0 --json ARGS`` as a process, once it is ready."""
    return ServerProcess([python(), "-m", "webhook_kit", command, "--port", "0", "--json", *args])


def token_for(info: dict[str, Any]) -> str:
    """A token from the kit's endpoint (client credentials), for the bare loops."""
    import requests

    http = requests.Session()
    http.trust_env = False
    response = http.post(
        info["token_url"],
        data={"grant_type": "client_credentials"},
        auth=(info["client_id"], info["client_secret"]),
        verify=info["ca_file"],
        timeout=10,
    )
    http.close()
    value: str = response.json()["access_token"]
    return value
