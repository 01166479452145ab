"""Issue 10 #1, #9 and #11: what `serve` prints and logs, and that printing never stalls it."""

from __future__ import annotations

import base64
import fcntl
import json
import signal
import socket
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest
import requests

from tests.helpers import notification
from webhook_kit.cli.endpoint import print_request
from webhook_kit.endpoint.console import Console

HOSTILE = {
    "event_id": "evt-\x1b]52;c;aGVsbG8=\x07-\x1b]8;;https://evil.example\x1b\\link\x1b]8;;\x1b\\",
    "status": "\x1b[2J\x1b[32mPASS 0 failed\x1b[0m\r\n",
}


def test_print_request_shows_control_characters_visibly() -> None:
    lines: list[str] = []
    record = {"received_at": "t", "http_status": 401, **HOSTILE, "reason": "401 \x1b[1mx"}
    print_request(record, write=lines.append)
    (line,) = lines
    assert not any(ch in line for ch in "\x1b\x07\r\n")
    assert "\\x1b]52;c;aGVsbG8=\\x07" in line and "\\x1b[2J" in line


def kit(*args: str) -> list[str]:
    return [sys.executable, "-m", "webhook_kit", *args]


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[Any]]]:
    started: list[subprocess.Popen[Any]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait(10)
        if process.stdout is not None:
            process.stdout.close()


def read_banner(stdout: IO[str]) -> dict[str, str]:
    """The facts from serve's start-up banner (without --json)."""
    info: dict[str, str] = {}
    for line in stdout:
        if line.startswith("Press Ctrl+C"):
            return info
        if line.startswith("  "):
            name, _, value = line.strip().partition(" ")
            info[name] = value.strip()
    raise AssertionError(f"no banner; got {info}")


def session(ca_file: str) -> requests.Session:
    http = requests.Session()
    http.trust_env = False
    http.verify = ca_file
    return http


@pytest.mark.slow
def test_serve_console_escapes_what_strangers_send(
    processes: list[subprocess.Popen[Any]], certs_dir: Path, tmp_path: Path
) -> None:
    process = subprocess.Popen(
        kit("serve", "--port", "0", "--certs-dir", str(certs_dir)),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=tmp_path,
    )
    processes.append(process)
    assert process.stdout is not None
    info = read_banner(process.stdout)
    body = json.dumps(notification(**HOSTILE))  # JSON carries them as \u001b etc.
    response = session(info["ca_file"]).post(
        info["url"], data=body, headers={"Content-Type": "application/json"}, timeout=10
    )
    assert response.status_code == 401
    line = process.stdout.readline()
    assert "]52;c;aGVsbG8=" in line, line
    assert not any(ch in line.rstrip("\n") for ch in "\x1b\x07\r")
    assert "\\x1b]52;c;aGVsbG8=\\x07" in line and "\\x1b[2J" in line


@pytest.mark.slow
def test_serve_keeps_answering_when_nobody_reads_its_output(
    processes: list[subprocess.Popen[Any]], certs_dir: Path, tmp_path: Path
) -> None:
    errors = tmp_path / "stderr.txt"
    with errors.open("w") as stderr:
        process = subprocess.Popen(
            kit("serve", "--port", "0", "--certs-dir", str(certs_dir)),
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            cwd=tmp_path,
        )
    processes.append(process)
    assert process.stdout is not None
    info = read_banner(process.stdout)
    # From here on stdout is never read; a 4 KiB pipe fills after about 15 request lines.
    fcntl.fcntl(process.stdout.fileno(), fcntl.F_SETPIPE_SZ, 4096)
    http = session(info["ca_file"])
    event_id = "e" * 200
    for _ in range(1_200):  # beyond the console's queue too
        response = http.post(
            info["url"], json={"event_id": event_id}, timeout=10
        )  # refused (no token), recorded, printed
        assert response.status_code == 401
    token = http.post(
        info["token_url"],
        data={"grant_type": "client_credentials"},
        auth=(info["client_id"], info["client_secret"]),
        timeout=10,
    ).json()["access_token"]
    accepted = http.post(
        info["url"], json=notification(), headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    assert accepted.status_code == 200
    listed = http.get(info["deliveries"], params={"limit": 1}, timeout=10).json()
    assert listed["deliveries"][0]["accepted"] is True
    http.close()
    process.send_signal(signal.SIGTERM)
    assert process.wait(20) == 0
    assert "request lines were dropped" in errors.read_text()


@pytest.mark.slow
def test_serve_keeps_answering_when_nobody_reads_its_logs(
    processes: list[subprocess.Popen[Any]], certs_dir: Path, tmp_path: Path
) -> None:
    # uvicorn logs a warning for every malformed request, so any peer can fill stderr.
    process = subprocess.Popen(
        kit("serve", "--port", "0", "--json", "--certs-dir", str(certs_dir)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    processes.append(process)
    assert process.stdout is not None and process.stderr is not None
    info = json.loads(process.stdout.readline())
    fcntl.fcntl(process.stderr.fileno(), fcntl.F_SETPIPE_SZ, 4096)  # never read from here on
    port = int(info["url"].split(":")[2].split("/")[0])
    ctx = ssl.create_default_context(cafile=info["ca_file"])
    for _ in range(300):
        with ctx.wrap_socket(
            socket.create_connection(("127.0.0.1", port), timeout=10), server_hostname="127.0.0.1"
        ) as conn:
            conn.sendall(b"NOT HTTP AT ALL\r\n\r\n")
            assert conn.recv(100).startswith(b"HTTP/1.1 400")
    health = session(info["ca_file"]).get(
        info["url"].rsplit("/", 1)[0] + "/_kit/health", timeout=10
    )
    assert health.status_code == 200
    process.send_signal(signal.SIGTERM)
    assert process.wait(20) == 0
    process.stderr.close()


def h2_request(
    port: int,
    ca_file: str,
    method: str,
    path: str,
    headers: list[tuple[str, str]],
    body: bytes,
    authority: str | None = None,
) -> tuple[int, bytes]:
    """One HTTP/2 request with the h2 library (the kit's clients speak HTTP/1.1)."""
    import h2.config
    import h2.connection
    import h2.events

    ctx = ssl.create_default_context(cafile=ca_file)
    ctx.set_alpn_protocols(["h2"])
    with ctx.wrap_socket(
        socket.create_connection(("127.0.0.1", port), timeout=10), server_hostname="127.0.0.1"
    ) as sock:
        assert sock.selected_alpn_protocol() == "h2"
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        conn.initiate_connection()
        conn.send_headers(
            1,
            [
                (":method", method),
                (":path", path),
                (":scheme", "https"),
                (":authority", authority or f"127.0.0.1:{port}"),
                *headers,
            ],
        )
        conn.send_data(1, body, end_stream=True)
        sock.sendall(conn.data_to_send())
        status, data = 0, b""
        while True:
            chunk = sock.recv(65536)
            assert chunk, "connection closed before the response ended"
            for event in conn.receive_data(chunk):
                if isinstance(event, h2.events.ResponseReceived):
                    status = int(dict(event.headers)[b":status"])
                elif isinstance(event, h2.events.DataReceived):
                    data += event.data
                    conn.acknowledge_received_data(event.flow_controlled_length, 1)
                elif isinstance(event, h2.events.StreamEnded):
                    sock.sendall(conn.data_to_send())
                    return status, data
            sock.sendall(conn.data_to_send())


@pytest.mark.slow
def test_debug_logs_over_http2_carry_no_credentials(
    processes: list[subprocess.Popen[Any]], certs_dir: Path, tmp_path: Path
) -> None:
    log = tmp_path / "stderr.txt"
    with log.open("w") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "webhook_kit", "--log-level", "debug", "serve"]
            + ["--server", "hypercorn", "--port", "0", "--json", "--certs-dir", str(certs_dir)],
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            cwd=tmp_path,
        )
    processes.append(process)
    assert process.stdout is not None
    info = json.loads(process.stdout.readline())
    port = int(info["url"].split(":")[2].split("/")[0])
    basic = base64.b64encode(f"{info['client_id']}:{info['client_secret']}".encode()).decode()
    status, body = h2_request(
        port,
        info["ca_file"],
        "POST",
        "/oauth/token",
        [
            ("authorization", f"Basic {basic}"),
            ("content-type", "application/x-www-form-urlencoded"),
        ],
        b"grant_type=client_credentials",
    )
    assert status == 200, body
    token = json.loads(body)["access_token"]
    status, _ = h2_request(
        port,
        info["ca_file"],
        "POST",
        "/webhook",
        [("authorization", f"Bearer {token}"), ("content-type", "application/json")],
        json.dumps(notification()).encode(),
    )
    assert status == 200
    process.send_signal(signal.SIGTERM)
    assert process.wait(20) == 0
    logged = log.read_text()
    assert " DEBUG webhook_kit.endpoint: " in logged  # debug logging was on
    for secret in (info["client_secret"], basic, token, token.split(".")[2]):
        assert secret not in logged


def test_console_drops_and_counts_instead_of_blocking() -> None:
    import os

    read_end, write_end = os.pipe()
    fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, 4096)
    with os.fdopen(write_end, "w") as stream:
        console = Console(stream, capacity=10)
        for i in range(1_000):
            console.line(f"line {i} " + "x" * 100)  # returns at once even though nobody reads
        assert console.dropped >= 900
        os.close(read_end)  # the writer thread now gets EPIPE and goes on dropping
        console.close(timeout=5)
