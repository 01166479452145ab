"""What a PostgreSQL URL and a server's refusal show on the terminal: never a password, and
never the server's text acted on as escape sequences."""

from __future__ import annotations

import json
import socket
import struct
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from webhook_kit.errors import ConfigError
from webhook_kit.storage.url import DatabaseUrl

#: What a hostile (or compromised) server says when it refuses the connection: colours, a
#: terminal title (OSC 0, ended by BEL) and a clear-screen.
HOSTILE = "\x1b[31mno entry\x1b]0;owned\x07\x1b[2J"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://u:secretpw@h/d", "postgresql://u:***@h/d"),
        (
            "postgresql://u@h/d?password=secretpw&schema=s",
            "postgresql://u@h/d?password=***&schema=s",
        ),
        (
            "postgres://u:secretpw@h:5433/d?sslpassword=secretpw&sslmode=require",
            "postgres://u:***@h:5433/d?sslpassword=***&sslmode=require",
        ),
        ("postgresql://u@h1:5432,h2:5433/d", "postgresql://u@h1:5432,h2:5433/d"),
        # Shown as given when nothing is secret, and still a URL --db takes when it is.
        ("postgresql:///d?host=/var/run/postgresql", "postgresql:///d?host=/var/run/postgresql"),
        (
            "postgresql:///d?host=/run/pg&password=secretpw",
            "postgresql:///d?host=%2Frun%2Fpg&password=***",
        ),
    ],
)
def test_a_password_is_never_displayed(url: str, shown: str) -> None:
    assert DatabaseUrl.parse(url).display == shown


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://u:s3cr/et@h/db",  # "/" ends the host part inside the password
        "postgresql://u:s3cr?et@h/db",
        "postgresql://u:s3cr#et@h/db",
        "postgresql://u:p[s3cret]@h/db",
    ],
)
def test_a_malformed_url_is_refused_without_quoting_it(url: str) -> None:
    with pytest.raises(ConfigError) as refused:
        DatabaseUrl.parse(url)
    assert "s3cr" not in str(refused.value)
    assert "percent-encode" in str(refused.value)


def test_a_worker_shows_a_password_in_the_query_masked(postgres_url: str, tmp_path: Path) -> None:
    url = f"{postgres_url}&password=secretpw"  # trust authentication: accepted, not needed
    worker = subprocess.Popen(
        [sys.executable, "-m", "webhook_kit", "worker", "--json", "--db", url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    try:
        assert worker.stdout is not None
        ready = json.loads(worker.stdout.readline())
        assert ready["db"].endswith("&password=***"), ready
    finally:
        worker.terminate()
        _, err = worker.communicate(timeout=30)
    assert worker.returncode == 0, err
    assert "secretpw" not in json.dumps(ready) + err


@pytest.fixture
def refusing_server() -> Iterator[int]:
    """A loopback server that speaks just enough of PostgreSQL's protocol to refuse every
    connection with :data:`HOSTILE` as its message."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve(conn: socket.socket) -> None:
        with conn:
            while True:
                head = conn.recv(8, socket.MSG_WAITALL)
                if len(head) < 8:
                    return
                length, code = struct.unpack("!II", head)
                conn.recv(length - 8, socket.MSG_WAITALL)
                if code == 80877103:  # SSLRequest: no TLS here, go on in clear
                    conn.sendall(b"N")
                    continue
                fields = b"SFATAL\0C28000\0M" + HOSTILE.encode() + b"\0\0"
                conn.sendall(b"E" + struct.pack("!I", len(fields) + 4) + fields)
                return

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join(5)
    listener.close()


@pytest.mark.parametrize("command", ["worker", "provider"])
def test_a_servers_refusal_is_shown_with_its_controls_escaped(
    command: str, refusing_server: int, tmp_path: Path
) -> None:
    url = f"postgresql://postgres:secretpw@127.0.0.1:{refusing_server}/test"
    extra = ["--port", "0"] if command == "provider" else []
    done = subprocess.run(
        [sys.executable, "-m", "webhook_kit", command, *extra, "--db", url],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert done.returncode == 1, done.stderr
    assert "no entry" in done.stderr  # the server's reason, shown
    assert "\\x1b[31mno entry\\x1b]0;owned\\x07\\x1b[2J" in done.stderr  # ... as text
    assert "\x1b" not in done.stderr + done.stdout and "\x07" not in done.stderr
    assert "secretpw" not in done.stderr + done.stdout
    assert "Traceback" not in done.stderr


def test_a_setting_the_driver_refuses_stops_a_worker_at_once(tmp_path: Path) -> None:
    """Not "the database cannot be reached": trying again would never help."""
    url = "postgresql://postgres@127.0.0.1:1/test?sslmode=bogus"
    done = subprocess.run(
        [sys.executable, "-m", "webhook_kit", "worker", "--db", url],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert done.returncode == 1, done.stderr
    assert "sslmode" in done.stderr
    assert "trying again" not in done.stderr and "cannot be reached" not in done.stderr
