"""Issue 10 #4: slow connections are closed, so they cannot hold the server (slowloris).

These wait for the server to close a connection, with a generous bound; they time nothing.
The flood itself (5,000 connections with a legitimate client measuring) is scripts/slowloris.py.
"""

from __future__ import annotations

import json
import resource
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import KitClient, notification
from webhook_kit.endpoint.settings import FaultSettings
from webhook_kit.serving import loop as runtime

# Slow clients: each test waits for a server-side deadline to pass.
pytestmark = pytest.mark.slow


def closed_by_server(conn: socket.socket, within: float) -> bool:
    """True once the server closes ``conn`` (reads b"" or a reset) within ``within`` seconds."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        conn.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            if conn.recv(4096) == b"":
                return True
        except TimeoutError:
            return False
        except (ConnectionResetError, ssl.SSLError):
            return True
    return False


def tls_connection(sink: Any) -> ssl.SSLSocket:
    ctx = ssl.create_default_context(cafile=sink.info.ca_file)
    raw = socket.create_connection(("127.0.0.1", sink.sock.getsockname()[1]), timeout=10)
    return ctx.wrap_socket(raw, server_hostname="127.0.0.1")


@pytest.mark.parametrize(
    "sent",
    [
        b"",  # TLS done, then nothing
        b"POST /webhook HTTP/1.1\r\nHost: 127.0.0.1\r\n",  # headers never finished
        b"GET /_kit/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\nGET /_kit/health HTTP/1.1\r\n",
    ],
    ids=["silent", "partial-headers", "second-request-partial"],
)
def test_unfinished_headers_are_cut_off(start_endpoint: Any, sent: bytes) -> None:
    sink = start_endpoint(header_timeout=1.0)
    with tls_connection(sink) as conn:
        conn.sendall(sent)
        start = time.monotonic()
        while sent and time.monotonic() - start < 0.5:  # keep trickling, as slowloris does
            conn.sendall(b"X-Slow: 1\r\n")
            time.sleep(0.1)
        assert closed_by_server(conn, within=30)


def test_a_body_that_never_finishes_is_cut_off(start_endpoint: Any) -> None:
    sink = start_endpoint(header_timeout=1.0, body_timeout=1.0)
    with tls_connection(sink) as conn:
        conn.sendall(
            b"POST /webhook HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: 1000\r\n\r\n{"
        )
        assert closed_by_server(conn, within=30)


def test_a_slow_but_steady_body_is_not_cut_off(start_endpoint: Any) -> None:
    sink = start_endpoint(header_timeout=1.0, body_timeout=0.5)
    kit = KitClient(sink)
    body = json.dumps(notification(padding="x" * 80_000)).encode()
    with tls_connection(sink) as conn:
        conn.sendall(
            b"POST /webhook HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            + f"Authorization: Bearer {kit.token()}\r\n".encode()
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
        )
        # 4 KiB every 0.1 s: about 40 times the minimum rate, for longer than both deadlines.
        for start in range(0, len(body), 4096):
            conn.sendall(body[start : start + 4096])
            time.sleep(0.1)
        conn.settimeout(10)
        assert conn.recv(100).startswith(b"HTTP/1.1 200")


def test_slow_handlers_and_streams_are_not_cut_off(start_endpoint: Any) -> None:
    sink = start_endpoint(header_timeout=0.3, body_timeout=0.3, faults=FaultSettings(delay=1.0))
    kit = KitClient(sink)
    # The handler waits 1 s, longer than both deadlines: a request being answered is left alone.
    assert kit.post(notification()).status_code == 200


def test_a_silent_tcp_connection_is_closed_after_the_handshake_timeout(start_endpoint: Any) -> None:
    sink = start_endpoint()
    with socket.create_connection(("127.0.0.1", sink.sock.getsockname()[1]), timeout=10) as raw:
        # No ClientHello ever: asyncio's own default would keep this for 60 s.
        assert closed_by_server(raw, within=runtime.SSL_HANDSHAKE_TIMEOUT + 20)


def test_serve_raises_its_open_file_limit(certs_dir: Path, tmp_path: Path) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard <= 256:
        pytest.skip(f"hard open-file limit is {hard}: nothing to raise to")

    def low_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))

    process = subprocess.Popen(
        [sys.executable, "-m", "webhook_kit", "serve", "--port", "0", "--json"]
        + ["--certs-dir", str(certs_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=tmp_path,
        preexec_fn=low_limit,
    )
    try:
        assert process.stdout is not None and process.stdout.readline()
        limits = Path(f"/proc/{process.pid}/limits").read_text()
        line = next(x for x in limits.splitlines() if x.startswith("Max open files"))
        assert line.split()[3] == str(hard), line
    finally:
        process.terminate()
        process.wait(20)
        if process.stdout is not None:
            process.stdout.close()
