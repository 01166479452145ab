"""The command line: CliRunner for arguments, real subprocesses for serve."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner

from webhook_kit.cli import main

SERVE_KEYS = {
    "url",
    "token_url",
    "jwks_url",
    "inspect_url",
    "client_id",
    "client_secret",
    "ca_file",
}


def kit_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "webhook_kit", *args]


class Served:
    def __init__(self, process: subprocess.Popen[str], info: dict[str, str]) -> None:
        self.process = process
        self.info = info
        self.http = requests.Session()
        self.http.trust_env = False
        self.http.verify = info["ca_file"]

    def token(self) -> str:
        response = self.http.post(
            self.info["token_url"],
            data={"grant_type": "client_credentials"},
            auth=(self.info["client_id"], self.info["client_secret"]),
            timeout=10,
        )
        value: str = response.json()["access_token"]
        return value


@pytest.fixture
def serve(tmp_path: Path, certs_dir: Path) -> Iterator[object]:
    started: list[subprocess.Popen[str]] = []

    def start(*args: str) -> Served:
        process = subprocess.Popen(
            kit_command("serve", "--port", "0", "--json", "--certs-dir", str(certs_dir), *args),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=tmp_path,
        )
        started.append(process)
        line = process.stdout.readline()  # type: ignore[union-attr]
        assert line, process.stderr.read()  # type: ignore[union-attr]
        return Served(process, json.loads(line))

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=10)


@pytest.mark.parametrize("server", ["uvicorn", "hypercorn"])
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_serve_json_line_then_clean_exit(serve: object, server: str, sig: signal.Signals) -> None:
    served: Served = serve("--server", server)  # type: ignore[operator]
    assert set(served.info) == SERVE_KEYS
    assert os.path.isabs(served.info["ca_file"])
    response = served.http.post(
        served.info["url"],
        json={
            "event_id": "e-1",
            "validation_id": "v-1",
            "status": "on-course",
            "previous_status": None,
            "occurred_at": "2026-11-25T21:58:03.412Z",
        },
        headers={"Authorization": f"Bearer {served.token()}"},
        timeout=10,
    )
    assert response.status_code == 200
    served.process.send_signal(sig)
    assert served.process.wait(15) == 0
    rest = served.process.stdout.read()  # type: ignore[union-attr]
    assert rest == "", "with --json nothing but the one line goes to stdout"
    assert "Traceback" not in served.process.stderr.read()  # type: ignore[union-attr]


def test_banner_and_one_line_per_request(tmp_path: Path, certs_dir: Path) -> None:
    process = subprocess.Popen(
        kit_command("serve", "--port", "0", "--certs-dir", str(certs_dir)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    try:
        banner = []
        while True:
            line = process.stdout.readline()  # type: ignore[union-attr]
            assert line, process.stderr.read()  # type: ignore[union-attr]
            banner.append(line)
            if line.startswith("Press Ctrl+C"):
                break
        text = "".join(banner)
        for key in SERVE_KEYS:
            assert key in text
        url = next(line.split()[1] for line in banner if line.strip().startswith("url"))
        ca_file = next(line.split()[1] for line in banner if line.strip().startswith("ca_file"))
        http = requests.Session()
        http.trust_env = False
        http.post(url, json={}, verify=ca_file, timeout=10)
        request_line = process.stdout.readline()  # type: ignore[union-attr]
        assert " 401 " in request_line and "missing token" in request_line
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=15)
    assert process.returncode == 0


def test_port_in_use_is_one_line_exit_1(certs_dir: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            kit_command("serve", "--port", str(port), "--certs-dir", str(certs_dir)),
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert result.returncode == 1
    assert result.stderr.strip() == f"Error: port {port} on 127.0.0.1 is already in use"


def test_unreadable_certificate_is_one_line_exit_1(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pem"
    bad.write_text("not a certificate")
    result = CliRunner().invoke(
        main, ["serve", "--port", "0", "--certfile", str(bad), "--keyfile", str(bad)]
    )
    assert result.exit_code == 1
    assert result.output.startswith("Error: cannot use certificate")
    assert len(result.output.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "args",
    [
        ["serve", "--port", "notaport"],
        ["serve", "--port", "70000"],
        ["serve", "--respond", "unknown=500"],
        ["serve", "--fail-rate", "2"],
        ["serve", "--server", "gunicorn"],
        ["serve", "--certfile", "x.pem"],
        ["serve", "--path", "_kit"],
        ["serve", "--bogus"],
        ["nosuchcommand"],
    ],
)
def test_bad_flags_are_usage_errors(args: list[str]) -> None:
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output
    assert "Usage:" in result.output or "Error:" in result.output


def test_schemas_list_and_write(tmp_path: Path) -> None:
    listed = CliRunner().invoke(main, ["schemas"])
    assert listed.exit_code == 0
    assert "notification" in listed.output and "settings" in listed.output
    written = CliRunner().invoke(main, ["schemas", "--out", str(tmp_path / "s")])
    assert written.exit_code == 0
    assert (tmp_path / "s" / "notification.json").is_file()


def test_certs_command_makes_then_reuses(tmp_path: Path) -> None:
    first = CliRunner().invoke(main, ["certs", "--dir", str(tmp_path), "--json"])
    assert first.exit_code == 0
    facts = json.loads(first.output)
    assert facts["renewed"] is True and facts["days_left"] >= 360
    again = json.loads(CliRunner().invoke(main, ["certs", "--dir", str(tmp_path), "--json"]).output)
    assert again["renewed"] is False
    renewed = json.loads(
        CliRunner().invoke(main, ["certs", "--dir", str(tmp_path), "--json", "--renew"]).output
    )
    assert renewed["renewed"] is True


def test_version_and_help() -> None:
    assert CliRunner().invoke(main, ["--version"]).exit_code == 0
    helped = CliRunner().invoke(main, ["serve", "--help"])
    assert helped.exit_code == 0 and "--respond" in helped.output


def test_demo_runs_the_whole_loop(tmp_path: Path) -> None:
    result = subprocess.run(
        kit_command("demo"), capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "9/9 delivered" in result.stdout


def test_provider_with_an_unusable_database_is_one_line_exit_1(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, ["provider", "--port", "0", "--db", str(tmp_path / "no" / "x.db")]
    )
    assert result.exit_code == 1
    assert result.output.startswith("Error: cannot open database")
