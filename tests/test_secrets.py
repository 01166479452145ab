"""A full run (serve, provider, emit, certify) at every log level: the client secret never shows.

It is searched in every log line, every API answer (settings reads included), every stored event
and attempt, the endpoint's record file, and every report. The one place it may appear is the
endpoint's own hand-out line (`serve --json` prints the credentials it issues, by design).
"""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

SECRET = "s3cret-Value-that-must-never-leak-0123456789"
WRONG = "wrong-Secret-that-must-never-leak-9876543210"


def kit(level: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "webhook_kit", "--log-level", level, *args]


@pytest.mark.slow
@pytest.mark.parametrize("level", ["debug", "info", "warning", "error"])
def test_secret_never_leaks(level: str, tmp_path: Path, certs_dir: Path) -> None:
    seen: list[str] = []
    record = tmp_path / "record.jsonl"
    serve = subprocess.Popen(
        kit(
            level,
            "serve",
            "--port",
            "0",
            "--json",
            "--certs-dir",
            str(certs_dir),
            "--client-id",
            "leak-test",
            "--client-secret",
            SECRET,
            "--record",
            str(record),
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    handout = json.loads(serve.stdout.readline())  # type: ignore[union-attr]
    assert handout["client_secret"] == SECRET
    ca = handout["ca_file"]
    provider = subprocess.Popen(
        kit(
            level,
            "provider",
            "--port",
            "0",
            "--json",
            "--db",
            str(tmp_path / "p.db"),
            "--ca",
            ca,
            "--certs-dir",
            str(certs_dir),
            "--apikey",
            "key",
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = json.loads(provider.stdout.readline())["base_url"]  # type: ignore[union-attr]
    api = requests.Session()
    api.trust_env = False
    api.verify = ca
    api.headers["apikey"] = "key"
    try:
        auth = {"token_url": handout["token_url"], "client_id": "leak-test", "client_secret": WRONG}
        seen.append(
            api.post(
                f"{base}/webhook/settings", json={"url": handout["url"], "auth": auth}, timeout=30
            ).text
        )
        seen.append(api.post(f"{base}/webhook/test", timeout=30).text)  # fails: wrong secret
        auth["client_secret"] = SECRET
        seen.append(
            api.post(
                f"{base}/webhook/settings", json={"url": handout["url"], "auth": auth}, timeout=30
            ).text
        )
        seen.append(api.get(f"{base}/webhook/settings", timeout=30).text)
        seen.append(api.post(f"{base}/webhook/test", timeout=30).text)
        validation = api.post(f"{base}/validation", timeout=30).json()["data"]["id"]
        seen.append(api.put(f"{base}/validation/{validation}/cancellation", timeout=30).text)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            events = api.get(f"{base}/validation/{validation}/events", timeout=30)
            if all(e["state"] == "sent" for e in events.json()["data"]):
                break
            time.sleep(0.05)
        sent = events.json()["data"]
        assert sent and all(e["state"] == "sent" for e in sent), events.text
        seen.append(events.text)
        seen.append(api.get(f"{base}/webhook/events", timeout=30).text)
        seen.append(
            api.get(f"{base}/webhook/validations", params={"sent": "true"}, timeout=30).text
        )

        common = ["--token-url", handout["token_url"], "--client-id", "leak-test", "--ca", ca]
        for secret in (SECRET, WRONG):
            done = subprocess.run(
                kit(level, "emit", handout["url"], *common, "--client-secret", secret),
                capture_output=True,
                text=True,
                timeout=120,
            )
            seen += [done.stdout, done.stderr]
            for fmt in ("text", "json", "junit"):
                report = tmp_path / f"report.{fmt}"
                done = subprocess.run(
                    kit(
                        level,
                        "certify",
                        handout["url"],
                        *common,
                        "--client-secret",
                        secret,
                        "--probes",
                        "2",
                        "--format",
                        fmt,
                        "--output",
                        str(report),
                    ),
                    capture_output=True,
                    text=True,
                    timeout=120,
                )
                seen += [done.stdout, done.stderr, report.read_text()]
    finally:
        api.close()
        for process in (provider, serve):
            process.send_signal(signal.SIGTERM)
            out, err = process.communicate(timeout=30)
            seen += [out, err]

    rows: dict[str, int] = {}
    with sqlite3.connect(tmp_path / "p.db") as db:
        for table in ("events", "attempts", "validations"):
            found = db.execute(f"SELECT * FROM {table}").fetchall()
            rows[table] = len(found)
            seen.append(json.dumps(found))
    recorded = record.read_text()
    seen.append(recorded)

    # The places searched hold what the run put there, so "not in" below means something.
    assert all(rows.values()), rows
    assert validation in recorded  # the cancellation, delivered with the right secret
    everything = "\n".join(seen)
    for secret in (SECRET, WRONG):
        assert secret not in everything
    assert "********" in everything  # settings reads show the mask
    if level in ("debug", "info"):
        # The logs were really on: the token fetch is logged (its scheme, then its client).
        assert "webhook_kit.oauth: Bearer token for leak-test" in everything
    if level == "debug":
        assert "webhook_kit.dispatcher: event " in everything


# Finding 19 (issue 10): an echo of the secret in another encoding is scrubbed too.
def _echoes(client_id: str, secret: str) -> list[str]:
    import base64
    import json as json_module
    from urllib.parse import quote, quote_plus

    def b64(text: str) -> str:
        return base64.b64encode(text.encode()).decode()

    return [
        secret,
        quote(secret, safe=""),
        quote_plus(secret),
        quote(secret, safe="").replace("%2F", "%2f"),
        b64(secret),
        b64(secret).rstrip("="),
        base64.urlsafe_b64encode(secret.encode()).decode().rstrip("="),
        b64(f"{client_id}:{secret}"),  # Authorization: Basic
        b64(f"x{client_id}:{secret}"),
        b64(f"xy{client_id}:{secret}"),
        b64(f"{quote(client_id, safe='')}:{quote(secret, safe='')}"),  # RFC 6749 2.3.1 form
        json_module.dumps({"client_secret": secret}),
        json_module.dumps({"client_secret": secret}, ensure_ascii=False),
    ]


@pytest.mark.parametrize("secret", [SECRET, "pa/ss+wo=rd?&é", "短い秘密のパスワード"])
def test_scrub_catches_encoded_echoes(secret: str) -> None:
    from webhook_kit.redact import REDACTED, scrub

    for echo in _echoes("client-1", secret):
        text = f"the endpoint said: {echo} (end)"
        scrubbed = scrub(text, [secret])
        assert REDACTED in scrubbed, echo
        assert echo not in scrubbed and secret not in scrubbed, echo
        assert scrubbed.startswith("the endpoint said: ") and scrubbed.endswith(" (end)")


def test_scrub_leaves_other_text_alone() -> None:
    from webhook_kit.redact import scrub

    text = "HTTP 500 from https://example.com/webhook after 12.5 ms; aGVsbG8gd29ybGQ="
    assert scrub(text, [SECRET, "abc", None, ""]) == text
