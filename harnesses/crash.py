"""Kill the provider with SIGKILL at random moments under load; check nothing is lost.

Used by ``tests/test_crash.py`` (short) and ``scripts/crash.py`` (10,000 events, 5+ kills).
Processes as users run them: ``webhook-kit serve`` records what it accepts to a JSON-lines file,
``webhook-kit provider`` is killed and restarted on the same SQLite file.
"""

from __future__ import annotations

import json
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

CONCURRENCY = 16


@dataclass
class CrashResult:
    acknowledged: int
    delivered_distinct: int
    delivered_total: int
    lost: list[str]
    not_sent_in_db: int
    kills: int
    duplicates: int
    seconds: float
    kill_times: list[float] = field(default_factory=list)

    @property
    def duplicate_bound(self) -> int:
        # Deliveries in flight at a kill: up to CONCURRENCY requests on the wire, plus those
        # answered in the last attempt-record flush window (10 ms) and not yet on disk.
        return self.kills * (CONCURRENCY + 64)


def _start(args: list[str], cwd: Path) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    process = subprocess.Popen(
        [sys.executable, "-m", "webhook_kit", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=cwd,
    )
    line = process.stdout.readline()  # type: ignore[union-attr]
    if not line:
        raise RuntimeError(f"{args[0]} did not start")
    return process, json.loads(line)


def run_crash(events: int, kills: int, work: Path, seed: int = 1, threads: int = 4) -> CrashResult:
    rng = random.Random(seed)
    work.mkdir(parents=True, exist_ok=True)
    record = work / "received.jsonl"
    db = work / "provider.db"
    sink, endpoint_info = _start(
        [
            "serve",
            "--port",
            "0",
            "--json",
            "--record",
            str(record),
            "--keep",
            "1000",
            "--certs-dir",
            str(work / "certs"),
        ],
        work,
    )
    ca = endpoint_info["ca_file"]
    provider_args = [
        "provider",
        "--port",
        "0",
        "--json",
        "--db",
        str(db),
        "--ca",
        ca,
        "--apikey",
        "k",
        "--certs-dir",
        str(work / "certs"),
        "--concurrency",
        str(CONCURRENCY),
    ]
    provider, provider_info = _start(provider_args, work)
    state = {"base": provider_info["base_url"]}
    lock = threading.Lock()
    up = threading.Event()
    up.set()
    acknowledged: list[str] = []
    remaining = [events]

    def session() -> requests.Session:
        http = requests.Session()
        http.trust_env = False
        http.verify = ca
        http.headers["apikey"] = "k"
        return http

    setup = session()
    setup.post(
        state["base"] + "/webhook/settings",
        json={
            "url": endpoint_info["url"],
            "auth": {
                "token_url": endpoint_info["token_url"],
                "client_id": endpoint_info["client_id"],
                "client_secret": endpoint_info["client_secret"],
            },
        },
        timeout=30,
    ).raise_for_status()
    setup.close()

    def load() -> None:
        http = session()
        while True:
            with lock:
                if remaining[0] <= 0:
                    break
                remaining[0] -= 1
            while True:
                up.wait()
                try:
                    answer = http.post(state["base"] + "/validation", timeout=10)
                    answer.raise_for_status()
                    with lock:
                        acknowledged.append(answer.json()["data"]["event_id"])
                    break
                except (requests.RequestException, ValueError):
                    http.close()
                    http = session()
                    time.sleep(0.01)  # the provider is being restarted: try again
        http.close()

    started = time.monotonic()
    workers = [threading.Thread(target=load) for _ in range(threads)]
    for worker in workers:
        worker.start()
    kill_times = []
    for _ in range(kills):
        # A random moment while events are being created and delivered.
        target = len(acknowledged) + rng.randint(
            events // (kills * 4) + 1, events // (kills + 1) + 1
        )
        while len(acknowledged) < min(target, events - 1) and any(w.is_alive() for w in workers):
            time.sleep(0.002)
        up.clear()
        provider.send_signal(signal.SIGKILL)
        provider.communicate(timeout=30)
        kill_times.append(time.monotonic() - started)
        provider, provider_info = _start(provider_args, work)
        state["base"] = provider_info["base_url"]
        up.set()
    for worker in workers:
        worker.join()

    # Wait until the provider reports every event sent.
    http = session()
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        page = http.get(
            state["base"] + "/webhook/events", params={"sent": "false", "limit": "1"}, timeout=30
        )
        if page.status_code == 200 and not page.json()["data"]:
            break
        time.sleep(0.2)
    http.close()
    provider.send_signal(signal.SIGTERM)
    provider.communicate(timeout=30)
    sink.send_signal(signal.SIGTERM)
    sink.communicate(timeout=30)
    seconds = time.monotonic() - started

    received = [json.loads(line) for line in record.read_text().splitlines() if line.strip()]
    accepted = [r["event_id"] for r in received if r.get("accepted")]
    distinct = set(accepted)
    with sqlite3.connect(db) as conn:
        not_sent = conn.execute("SELECT COUNT(*) FROM events WHERE state != 'sent'").fetchone()[0]
    return CrashResult(
        acknowledged=len(acknowledged),
        delivered_distinct=len(distinct),
        delivered_total=len(accepted),
        lost=[e for e in acknowledged if e not in distinct],
        not_sent_in_db=not_sent,
        kills=kills,
        duplicates=len(accepted) - len(distinct),
        seconds=seconds,
        kill_times=kill_times,
    )
