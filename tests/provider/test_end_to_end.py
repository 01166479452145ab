"""The commands as users run them: `serve` and `provider` as processes, real HTTPS and OAuth."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from webhook_kit.contract.statuses import STATUSES

# The kit's processes as users run them (serve and provider, SIGKILL and restart).
pytestmark = pytest.mark.slow

PROVIDER_KEYS = {"base_url", "apikey", "db", "ca_file", "metrics_url", "metrics_token"}


class Process:
    def __init__(self, *args: str, cwd: Path) -> None:
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "webhook_kit", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=cwd,
        )
        line = self.popen.stdout.readline()  # type: ignore[union-attr]
        assert line, self.popen.stderr.read()  # type: ignore[union-attr]
        self.info: dict[str, Any] = json.loads(line)

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.popen.poll() is None:
            self.popen.send_signal(sig)
        self.popen.communicate(timeout=20)
        return self.popen.returncode


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[list[Process]]:
    started: list[Process] = []
    yield started
    for process in started:
        process.stop(signal.SIGKILL)


def session(ca_file: str, apikey: str | None = None) -> requests.Session:
    http = requests.Session()
    http.trust_env = False
    http.verify = ca_file
    if apikey:
        http.headers["apikey"] = apikey
    return http


def start(processes: list[Process], *args: str, cwd: Path) -> Process:
    process = Process(*args, cwd=cwd)
    processes.append(process)
    return process


def configure(api: requests.Session, base: str, sink: dict[str, str], **extra: Any) -> None:
    document = {
        "url": sink["url"],
        "auth": {
            "token_url": sink["token_url"],
            "client_id": sink["client_id"],
            "client_secret": sink["client_secret"],
        },
        **extra,
    }
    response = api.post(base + "/webhook/settings", json=document, timeout=30)
    assert response.status_code == 201, response.text


def wait_deliveries(
    http: requests.Session, url: str, count: int, timeout: float = 30
) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found: list[dict[str, Any]] = http.get(url, params={"accepted": "true"}, timeout=10).json()[
            "deliveries"
        ]
        if len(found) >= count:
            return found
        time.sleep(0.05)
    raise AssertionError(f"fewer than {count} deliveries within {timeout}s")


def test_provider_drives_every_status_to_serve(tmp_path: Path, processes: list[Process]) -> None:
    sink = start(processes, "serve", "--port", "0", "--json", cwd=tmp_path)
    ca_file = sink.info["ca_file"]
    provider = start(
        processes,
        "provider",
        "--port",
        "0",
        "--json",
        "--db",
        "p.db",
        "--ca",
        ca_file,
        cwd=tmp_path,
    )
    assert set(provider.info) == PROVIDER_KEYS
    assert provider.info["base_url"].endswith("/validas/v1")
    assert Path(provider.info["db"]).is_absolute()
    base = provider.info["base_url"]
    api = session(ca_file, provider.info["apikey"])
    configure(api, base, sink.info)
    assert api.post(base + "/webhook/test", timeout=30).json()["data"]["ok"] is True

    validation_id = api.post(base + "/validation", timeout=30).json()["data"]["id"]
    for _ in range(3):
        api.put(
            f"{base}/validation/{validation_id}/document",
            files={"documentImage": ("d.jpg", b"img")},
            data={"analysisType": "complete", "documentType": "IDCARD"},
            timeout=30,
        ).raise_for_status()
    api.put(
        f"{base}/validation/{validation_id}/selfie", files={"image": ("s.jpg", b"img")}, timeout=30
    ).raise_for_status()
    api.put(
        f"{base}/validation/{validation_id}/video", files={"video": ("v.mp4", b"vid")}, timeout=30
    ).raise_for_status()
    api.put(f"{base}/validation/{validation_id}/cancellation", timeout=30).raise_for_status()
    api.put(f"{base}/validation/{validation_id}/confirmation", timeout=30)  # 409: already final
    api.delete(f"{base}/validation/{validation_id}", timeout=30).raise_for_status()

    deliveries_url = sink.info["inspect_url"] + "deliveries"
    kit = session(ca_file)
    received = wait_deliveries(kit, deliveries_url, 9)
    ours = [d for d in received if d.get("validation_id") == validation_id]
    expected = [s for s in STATUSES if s != "confirmed"]
    assert [d["status"] for d in ours] == expected
    assert all(d["headers"]["authorization"] == "Bearer ********" for d in ours)
    api.close()
    kit.close()
    assert provider.stop() == 0
    assert sink.stop() == 0


def test_provider_sigkill_then_restart_delivers_everything(
    tmp_path: Path, processes: list[Process]
) -> None:
    sink = start(processes, "serve", "--port", "0", "--json", cwd=tmp_path)
    ca_file = sink.info["ca_file"]
    args = (
        "provider",
        "--port",
        "0",
        "--json",
        "--db",
        "crash.db",
        "--ca",
        ca_file,
        "--apikey",
        "k",
    )
    first = start(processes, *args, cwd=tmp_path)
    base = first.info["base_url"]
    api = session(ca_file, "k")
    # Disabled: events are stored but held, as if the crash came before their delivery.
    configure(api, base, sink.info, enabled=False)
    ids = [api.post(base + "/validation", timeout=30).json()["data"]["id"] for _ in range(20)]
    api.close()
    first.stop(signal.SIGKILL)

    second = start(processes, *args, cwd=tmp_path)
    base = second.info["base_url"]
    api = session(ca_file, "k")
    settings = api.get(base + "/webhook/settings", timeout=30).json()["data"]
    settings["enabled"] = True
    del settings["auth"]["client_secret"]
    assert api.put(base + "/webhook/settings", json=settings, timeout=30).status_code == 200
    kit = session(ca_file)
    received = wait_deliveries(kit, sink.info["inspect_url"] + "deliveries", 20)
    assert {d["validation_id"] for d in received} == set(ids)
    api.close()
    kit.close()
