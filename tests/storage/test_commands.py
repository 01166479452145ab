"""``--db`` on the commands: emit and the provider on PostgreSQL, ``--workers`` delivering from
separate processes, and the combinations that cannot work refused as usage errors."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.helpers import run_kit, sender_args
from webhook_kit.contract.statuses import STATUSES
from webhook_kit.endpoint.service import Endpoint
from webhook_kit.storage.url import open_storage

pytestmark = pytest.mark.slow


def stored_states(url: str) -> dict[str, int]:
    async def read() -> dict[str, int]:
        storage = await open_storage(url)
        try:
            return await storage.events.counts()
        finally:
            await storage.close()

    return asyncio.run(read())


def test_emit_keeps_its_events_in_postgresql(start_endpoint: Any, postgres_url: str) -> None:
    sink: Endpoint = start_endpoint()
    done = run_kit(["emit", sink.info.url, *sender_args(sink), "--db", postgres_url], timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert [r["status"] for r in sink.recorder.query()] == list(STATUSES)
    assert stored_states(postgres_url) == {"sent": len(STATUSES)}


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["provider", "--workers", "2", "--db", "x.db"], "--workers needs a PostgreSQL database"),
        (["worker", "--db", "x.db"], "a worker needs a PostgreSQL database"),
        (["worker"], "Missing option '--db'"),
        (["provider", "--db", "mysql://h/d"], "unknown database scheme 'mysql'"),
        (["worker", "--db", "postgresql://h:5432/"], "needs a database name"),
        (["worker", "--db", "postgresql://u:pw@h:notaport/d"], "not a valid PostgreSQL URL"),
        (["provider", "--db", "postgresql://u:pw@[::1/d"], "not a valid PostgreSQL URL"),
        (
            [
                *("emit", "https://127.0.0.1:1/w", "--token-url", "https://127.0.0.1:1/t"),
                *("--client-id", "c", "--client-secret", "s", "--db", "postgres://u@h:x/d"),
            ],
            "not a valid PostgreSQL URL",
        ),
        (["worker", "--db", "postgresql://u@h/d?schema="], "schema name ''"),
        (["provider", "--db", "postgresql://u@h/d?schema=a&schema=b"], "?schema= once"),
        (["worker", "--db", "postgresql://u@h/d?schema=bad-name"], "schema name 'bad-name'"),
        (
            ["worker", "--db", "postgresql://u@h/d", "--timeout", "30", "--lease", "60"],
            "at least three timeouts",
        ),
    ],
)
def test_impossible_database_settings_are_usage_errors(
    args: list[str], says: str, tmp_path: Path
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "webhook_kit", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert done.returncode == 2, done.stderr
    assert says in done.stderr
    assert "pw" not in done.stderr.replace("postgresql", "")
    assert not (tmp_path / "x.db").exists()


def test_provider_workers_deliver_every_validation_in_order(
    start_endpoint: Any, postgres_url: str, certs_dir: Path
) -> None:
    sink: Endpoint = start_endpoint()
    command = [
        *("provider", "--port", "0", "--json", "--db", postgres_url, "--workers", "2"),
        *("--certs-dir", str(certs_dir), "--ca", str(certs_dir / "ca.pem"), "--apikey", "k"),
    ]
    with subprocess.Popen(
        [sys.executable, "-m", "webhook_kit", *command],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as provider:
        try:
            assert provider.stdout is not None
            info = json.loads(provider.stdout.readline())
            assert info["db"] == postgres_url  # no password in it to hide
            api = requests.Session()
            api.trust_env = False  # REQUESTS_CA_BUNDLE would replace the CA given here
            api.verify, api.headers["apikey"] = info["ca_file"], "k"
            base = info["base_url"]
            auth = {"token_url": sink.info.token_url, "client_id": sink.info.client_id}
            auth["client_secret"] = sink.info.client_secret or ""
            settings: dict[str, Any] = {"url": sink.info.url, "auth": auth}
            assert api.post(f"{base}/webhook/settings", json=settings).status_code == 201
            ids = [api.post(f"{base}/validation").json()["data"]["id"] for _ in range(20)]
            for validation_id in ids:
                for change in ("selfie", "cancellation"):
                    body = {"image": "x"} if change == "selfie" else None
                    url = f"{base}/validation/{validation_id}/{change}"
                    answer = api.put(url, json=body)
                    assert answer.status_code == 200, answer.text
            deadline = time.monotonic() + 60
            while len(sink.recorder.query()) < 60:
                assert time.monotonic() < deadline, "not all delivered in time"
                time.sleep(0.05)
            for validation_id in ids:
                statuses = [r["status"] for r in sink.recorder.query(validation_id=validation_id)]
                assert statuses == ["on-course", "selfie-uploaded", "cancelled"]
            workers = subprocess.run(
                ["pgrep", "-f", "webhook_kit worker"], capture_output=True, text=True
            ).stdout.split()
            assert len(workers) >= 2
        finally:
            provider.terminate()
            assert provider.wait(30) == 0
    # The workers stop with the provider.
    assert all(
        subprocess.run(["kill", "-0", pid], capture_output=True).returncode != 0 for pid in workers
    )
