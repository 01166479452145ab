"""Issue 10 on the provider API: each test fails on the code before the fix."""

from __future__ import annotations

import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.delivery.hostile import NON_UTF8_LOCATION, closed_port, raw_server, redirect
from tests.provider.helpers import ProviderClient, sqlite_of, stored_settings
from webhook_kit.endpoint.service import Endpoint
from webhook_kit.provider.validations_api import MAX_FORM

# A provider and an endpoint started and stopped for each test (about 0.7 s each).
pytestmark = pytest.mark.slow


@pytest.fixture
def setup(start_endpoint: Any, start_provider: Any) -> Iterator[tuple[Endpoint, ProviderClient]]:
    client = ProviderClient(start_provider())
    yield start_endpoint(), client
    client.http.close()


def _wait(condition: Any, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


# -- finding 5: one process per database file -------------------------------------------------


def _provider_on(db: Path, certs_dir: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "webhook_kit",
        "provider",
        "--port",
        "0",
        "--json",
        "--db",
        str(db),
        "--certs-dir",
        str(certs_dir),
    ]


def _refusal(db: Path, pid: int) -> str:
    return (
        f"Error: database {db} is in use by another webhook-kit "
        f"process (pid {pid}); one process at a time may use an SQLite file "
        "(use PostgreSQL, --db postgresql://..., for several)"
    )


def test_a_second_provider_on_the_same_database_is_refused(tmp_path: Path, certs_dir: Path) -> None:
    db = tmp_path / "shared.db"
    command = _provider_on(db, certs_dir)
    first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = first.stdout.readline()  # type: ignore[union-attr]
        assert line, first.stderr.read()  # type: ignore[union-attr]
        second = subprocess.run(command, capture_output=True, text=True, timeout=60)
        assert second.returncode == 1, second.stdout + second.stderr
        assert second.stdout == ""
        assert second.stderr.strip() == _refusal(db, first.pid)
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=30)
    assert first.returncode == 0
    # The lock goes with the process: the next one starts.
    third = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert third.stdout.readline(), third.stderr.read()  # type: ignore[union-attr]
    finally:
        third.send_signal(signal.SIGTERM)
        third.communicate(timeout=30)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the file is locked on Linux")
def test_a_second_provider_on_a_hard_link_of_the_database_is_refused(
    tmp_path: Path, certs_dir: Path
) -> None:
    """The lock was taken on the file's name: through a hard link both providers started, each
    with its own -wal file (SQLite names it after the path), and the events the second one
    accepted were gone once both had stopped."""
    db, link = tmp_path / "s1.db", tmp_path / "hard.db"
    first = subprocess.Popen(
        _provider_on(db, certs_dir), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        line = first.stdout.readline()  # type: ignore[union-attr]
        assert line, first.stderr.read()  # type: ignore[union-attr]
        info = json.loads(line)
        os.link(db, link)
        second = subprocess.run(
            _provider_on(link, certs_dir), capture_output=True, text=True, timeout=60
        )
        assert second.returncode == 1, second.stdout + second.stderr
        assert second.stdout == ""
        assert second.stderr.strip() == _refusal(link, first.pid)
        assert not Path(f"{link}-wal").exists()  # refused before SQLite opened the link
        # The first one goes on: it takes a validation and reads it back.
        with requests.Session() as api:
            api.trust_env = False
            api.headers["apikey"] = info["apikey"]
            api.verify = str(certs_dir / "ca.pem")
            created = api.post(info["base_url"] + "/validation", timeout=30)
            assert created.status_code == 201, created.text
            validation_id = created.json()["data"]["id"]
            read = api.get(f"{info['base_url']}/validation/{validation_id}", timeout=30)
            assert read.status_code == 200, read.text
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=30)
    assert first.returncode == 0
    # The lock goes with the process, whichever name the next one uses.
    third = subprocess.Popen(
        _provider_on(link, certs_dir), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert third.stdout.readline(), third.stderr.read()  # type: ignore[union-attr]
    finally:
        third.send_signal(signal.SIGTERM)
        third.communicate(timeout=30)
    assert third.returncode == 0


# -- finding 6: the stored secret never follows a new host ------------------------------------


def test_changing_the_url_or_token_url_requires_the_secret(
    setup: tuple[Endpoint, ProviderClient],
) -> None:
    sink, api = setup
    assert api.configure(sink).status_code == 201
    current = api.call("GET", "/webhook/settings").json()["data"]
    auth = {k: v for k, v in current["auth"].items() if k != "client_secret"}
    for field, change in (
        ("url", {"url": "https://127.0.0.1:1/collect"}),
        ("auth.token_url", {"auth": {**auth, "token_url": "https://127.0.0.1:1/steal"}}),
    ):
        document = {"url": current["url"], "auth": auth, **change}
        refused = api.call("PUT", "/webhook/settings", json=document)
        assert refused.status_code == 422, refused.text
        body = refused.json()
        assert body["error_type"] == "invalid_settings"
        assert body["errors"] == [
            {
                "field": "auth.client_secret",
                "message": f"is required when {field} changes "
                "(the stored secret never follows a new host)",
            }
        ]
    stored = stored_settings(api.provider)
    assert stored is not None
    assert stored["url"] == sink.info.url and stored["auth"]["token_url"] == sink.info.token_url
    # Same hosts: the secret may still be left out; a new host with the secret is fine.
    same = api.call("PUT", "/webhook/settings", json={"url": current["url"], "auth": auth})
    assert same.status_code == 200
    moved = {"url": "https://127.0.0.1:1/new", "auth": {**auth, "client_secret": "new-secret"}}
    assert api.call("PUT", "/webhook/settings", json=moved).status_code == 200
    assert (stored_settings(api.provider) or {})["auth"]["client_secret"] == "new-secret"


# -- finding 7: the upload limit bounds file parts, while streaming ----------------------------


def _multipart_head(api: ProviderClient, path: str, extra: str) -> tuple[str, int, bytes]:
    from urllib.parse import urlsplit

    parts = urlsplit(api.base + path)
    boundary = "kitboundary"
    head = (
        f"PUT {parts.path} HTTP/1.1\r\nHost: {parts.hostname}:{parts.port}\r\n"
        f"apikey: {api.http.headers['apikey']}\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\n{extra}\r\n"
    )
    return parts.hostname or "", parts.port or 443, head.encode()


def _tls(api: ProviderClient, host: str, port: int) -> ssl.SSLSocket:
    context = ssl.create_default_context(cafile=str(api.http.verify))
    conn = context.wrap_socket(socket.create_connection((host, port)), server_hostname=host)
    conn.settimeout(30)
    return conn


def _early(conn: ssl.SSLSocket) -> bytes | None:
    """Whatever the server answered so far, without waiting (None: nothing yet). A socket
    select() calls readable may only hold TLS 1.3 session tickets."""
    conn.settimeout(0)
    try:
        return conn.recv(65536) or None
    except (ssl.SSLWantReadError, BlockingIOError):
        return None
    finally:
        conn.settimeout(30)


def _response(conn: ssl.SSLSocket, data: bytes = b"") -> tuple[int, dict[str, Any]]:
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        assert chunk, data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(
        next(
            line.split(b":", 1)[1]
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
    )
    while len(body) < length:
        chunk = conn.recv(65536)
        assert chunk
        body += chunk
    return int(head.split()[1]), json.loads(body)


@pytest.mark.parametrize("route,field", [("document", "documentImage"), ("video", "video")])
def test_an_endless_file_upload_is_cut_off_with_413(
    setup: tuple[Endpoint, ProviderClient],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    route: str,
    field: str,
) -> None:
    """A 2 GiB file, streamed (chunked, no Content-Length): the provider stops reading at the
    limit and answers 413 JSON; its spool directory never holds more than the limit."""
    sink, api = setup
    api.configure(sink)
    validation_id = api.new_validation()
    spool = tmp_path / "spool"
    spool.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(spool))
    largest = [0]
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            total = 0
            for entry in os.scandir(spool):
                try:
                    total += entry.stat().st_size
                except FileNotFoundError:
                    pass
            largest[0] = max(largest[0], total)
            time.sleep(0.005)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    host, port, head = _multipart_head(
        api, f"/validation/{validation_id}/{route}", "Transfer-Encoding: chunked\r\n"
    )
    preamble = (
        f'--kitboundary\r\nContent-Disposition: form-data; name="{field}"; filename="f.bin"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()

    def body() -> Iterator[bytes]:  # 2 GiB, made one chunk at a time, never held
        yield preamble
        block = b"\0" * (256 * 1024)
        for _ in range(2 * 1024 * 4):
            yield block

    sent = 0
    early: bytes | None = None
    with _tls(api, host, port) as conn:
        conn.sendall(head)
        for chunk in body():
            early = _early(conn)
            if early is not None:
                break
            try:
                conn.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(chunk)
        status, answer = _response(conn, early or b"")
    done.set()
    watcher.join(5)
    assert status == 413
    assert answer["error_type"] == "payload_too_large"
    assert sent < 200 * 1024 * 1024  # cut off near the limit, nowhere near 2 GiB
    assert largest[0] <= MAX_FORM
    assert list(spool.iterdir()) == []  # nothing left behind
    # The validation did not change, and the provider still works.
    assert api.call("GET", f"/validation/{validation_id}").json()["data"]["status"] == "on-course"


def test_a_declared_oversized_upload_is_refused_before_reading(
    setup: tuple[Endpoint, ProviderClient],
) -> None:
    sink, api = setup
    validation_id = api.new_validation()
    host, port, head = _multipart_head(
        api, f"/validation/{validation_id}/selfie", f"Content-Length: {2 * 1024**3}\r\n"
    )
    with _tls(api, host, port) as conn:
        conn.sendall(head)  # and not one byte of the body
        status, answer = _response(conn)
    assert status == 413 and answer["error_type"] == "payload_too_large"


# -- finding 8: the address policy and what /webhook/test tells ---------------------------------


@pytest.mark.parametrize(
    "url,wanted",
    [
        ("https://10.1.2.3/webhook", "10.1.2.3 is private; allow private addresses"),
        ("https://192.168.0.7:8443/webhook", "192.168.0.7 is private"),
        ("https://169.254.169.254/latest/meta-data", "169.254.169.254 is a cloud metadata"),
        ("https://[fd00:ec2::254]/", "fd00:ec2::254 is a cloud metadata"),
        ("https://100.100.100.200/", "100.100.100.200 is a cloud metadata"),
        ("https://169.254.1.1/", "169.254.1.1 is link-local"),
    ],
)
def test_by_default_private_and_metadata_targets_are_refused(
    setup: tuple[Endpoint, ProviderClient], url: str, wanted: str
) -> None:
    sink, api = setup
    assert api.configure(sink, url=url).status_code == 201
    trace = api.call("POST", "/webhook/test").json()["data"]
    assert trace["ok"] is False
    assert [s["ok"] for s in trace["steps"]] == [True, False]  # the token, from loopback
    assert wanted in trace["steps"][1]["detail"]


def test_allow_private_lets_private_but_never_metadata_through(
    start_endpoint: Any, start_provider: Any
) -> None:
    from webhook_kit.delivery.dispatcher import DispatcherSettings

    sink = start_endpoint()
    api = ProviderClient(start_provider(allow_private=True))
    assert api.provider.dispatcher is not None
    settings: DispatcherSettings = api.provider.dispatcher.settings
    assert settings.address_policy == "private"
    assert api.configure(sink, url="https://169.254.169.254/").status_code == 201
    detail = api.call("POST", "/webhook/test").json()["data"]["steps"][1]["detail"]
    assert "cloud metadata address (never allowed)" in detail
    api.http.close()


def test_closed_plain_and_banner_ports_read_the_same(
    setup: tuple[Endpoint, ProviderClient], certs_dir: Path
) -> None:
    """Before, the detail told a closed port ("Connect call failed"), an SSH-like banner and a
    plain-HTTP server ("wrong version number") apart: a port scanner."""
    sink, api = setup
    details = []
    with (
        raw_server(b"SSH-2.0-OpenSSH_9.6\r\n", certs_dir=None) as banner,
        raw_server(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", certs_dir=None) as plain,
    ):
        for port in (closed_port(), banner, plain):
            api.configure(sink, url=f"https://127.0.0.1:{port}/webhook")
            trace = api.call("POST", "/webhook/test").json()["data"]
            assert [s["step"] for s in trace["steps"]] == ["token", "tls"]
            details.append(trace["steps"][1]["detail"].replace(str(port), "PORT"))
        events_port = closed_port()
        api.configure(sink, url=f"https://127.0.0.1:{events_port}/webhook")
        validation_id = api.new_validation()
        reason = _wait(
            lambda: [
                a["reason"]
                for e in api.call("GET", f"/validation/{validation_id}/events").json()["data"]
                for a in e["attempts"]
            ]
        )[0]
    assert details == [details[0]] * 3, details
    assert (
        details[0] == "no TLS connection (refused, unreachable, reset or not TLS) to 127.0.0.1:PORT"
    )
    assert reason.replace(str(events_port), "PORT") == details[0]


# -- finding 10: a Location that is not UTF-8 ---------------------------------------------------


def test_a_non_utf8_location_keeps_the_bookkeeping(
    setup: tuple[Endpoint, ProviderClient], certs_dir: Path
) -> None:
    sink, api = setup
    with raw_server(redirect(NON_UTF8_LOCATION), certs_dir=certs_dir) as port:
        assert api.configure(sink, url=f"https://127.0.0.1:{port}/webhook").status_code == 201
        ids = [api.new_validation() for _ in range(4)]

        def attempted() -> bool:
            events = [api.call("GET", f"/validation/{v}/events").json()["data"][0] for v in ids]
            return all(e["attempts"] for e in events)

        _wait(attempted)
        test = api.call("POST", "/webhook/test")
        listed = api.call("GET", "/webhook/events")
    assert test.status_code == 200, test.text
    delivery = test.json()["data"]["steps"][-1]
    assert (
        delivery["detail"] == "redirect: 302 redirect to /moved/\\udcff\\udcfe\\udcc3( not followed"
    )
    assert listed.status_code == 200, listed.text
    for event in listed.json()["data"]:
        assert event["attempts"][0]["reason"].startswith("302 redirect to /moved/\\udcff")


# -- finding 13: a lone surrogate in the settings -----------------------------------------------


def test_a_lone_surrogate_in_the_client_id_is_422_and_reads_keep_working(
    setup: tuple[Endpoint, ProviderClient],
) -> None:
    sink, api = setup
    assert api.configure(sink).status_code == 201
    info = sink.info
    document = json.dumps(
        {
            "url": info.url,
            "auth": {
                "token_url": info.token_url,
                "client_id": "a-placeholder-b",
                "client_secret": info.client_secret,
            },
        }
    )
    raw = document.replace("-placeholder-", "\\ud800")  # JSON's escape for a lone surrogate
    for method in ("POST", "PUT"):
        response = api.call(
            method,
            "/webhook/settings",
            data=raw.encode(),
            headers={"Content-Type": "application/json"},
        )
        assert response.status_code == 422, response.text
        assert response.json()["errors"] == [
            {"field": "auth.client_id", "message": "contains a lone UTF-16 surrogate"}
        ]
    read = api.call("GET", "/webhook/settings")
    assert read.status_code == 200 and read.json()["data"]["auth"]["client_id"] == info.client_id


# -- finding 15: a full database -----------------------------------------------------------------


def test_a_surrogate_stored_by_an_earlier_version_does_not_break_reads(
    setup: tuple[Endpoint, ProviderClient],
) -> None:
    sink, api = setup
    assert api.configure(sink).status_code == 201
    db = sqlite_of(api.provider)._db
    document = db.execute("SELECT document FROM account_settings").fetchone()[0]
    client_id = json.dumps(sink.info.client_id)
    broken = document.replace(client_id, client_id[:-1] + '\\ud800"')
    assert broken != document
    db.execute("UPDATE account_settings SET document = ?", (broken,))
    read = api.call("GET", "/webhook/settings")
    assert read.status_code == 200, read.text
    assert read.json()["data"]["auth"]["client_id"] == sink.info.client_id + "\ufffd"


def test_a_full_database_is_503_json_without_a_traceback(
    start_endpoint: Any, start_provider: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    sink = start_endpoint()
    api = ProviderClient(start_provider(db=str(tmp_path / "full.db")))
    assert api.configure(sink).status_code == 201
    db = sqlite_of(api.provider)._db
    pages = db.execute("PRAGMA page_count").fetchone()[0]
    db.execute(f"PRAGMA max_page_count = {pages}")
    for _ in range(500):
        response = api.call("POST", "/validation")
        if response.status_code != 201:
            break
    assert response.status_code == 503, response.text
    assert response.json() == {
        "error_type": "storage_unavailable",
        "error_message": "the provider's database cannot take the change now (is its disk "
        "full?); nothing was changed, try again later",
    }
    assert api.call("GET", "/webhook/settings").status_code == 200  # reads still work
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"
    api.http.close()


# -- finding 16: values that used to reach /webhook/test as a 500 -----------------------------


@pytest.mark.parametrize(
    "change,field",
    [
        ({"url": "https://user:pw@127.0.0.1/webhook"}, "url"),
        ({"url": "https://user@127.0.0.1/webhook"}, "url"),
        ({"url": "https://a..b/webhook"}, "url"),
        ({"url": "https://" + "a" * 64 + ".example/webhook"}, "url"),
        ({"token_url": "https://u@127.0.0.1/token"}, "auth.token_url"),
        ({"token_url": "https://x..y/token"}, "auth.token_url"),
        ({"client_secret": "line\r\nbreak"}, "auth.client_secret"),
    ],
)
def test_settings_that_cannot_be_used_are_422(
    setup: tuple[Endpoint, ProviderClient], change: dict[str, str], field: str
) -> None:
    sink, api = setup
    info = sink.info
    auth = {"token_url": info.token_url, "client_id": info.client_id}
    auth["client_secret"] = info.client_secret
    url = change.pop("url", info.url)
    auth.update(change)
    response = api.call("POST", "/webhook/settings", json={"url": url, "auth": auth})
    assert response.status_code == 422, response.text
    assert field in [e["field"] for e in response.json()["errors"]]
    assert api.call("POST", "/webhook/test").status_code == 409  # nothing was saved


@pytest.mark.parametrize("method", ["client_secret_post", "client_secret_basic"])
def test_a_non_latin1_secret_is_sent_with_either_method(
    setup: tuple[Endpoint, ProviderClient], method: str
) -> None:
    sink, api = setup
    info = sink.info
    auth = {
        "token_url": info.token_url,
        "client_id": info.client_id,
        "client_secret": "s\u20acret",
        "client_auth_method": method,
    }
    assert api.call("POST", "/webhook/settings", json={"url": info.url, "auth": auth}).ok
    test = api.call("POST", "/webhook/test")
    assert test.status_code == 200
    assert (
        test.json()["data"]["steps"][0]["detail"] == "token endpoint answered 401 (invalid_client)"
    )


def test_token_url_ports_read_the_same_too(setup: tuple[Endpoint, ProviderClient]) -> None:
    """The token URL is as freely chosen as the webhook URL: the same words for every port."""
    sink, api = setup
    details = []
    with raw_server(b"SSH-2.0-OpenSSH_9.6\r\n", certs_dir=None) as banner:
        for port in (closed_port(), banner):
            auth = {
                "token_url": f"https://127.0.0.1:{port}/token",
                "client_id": "c",
                "client_secret": "s",
            }
            api.call("POST", "/webhook/settings", json={"url": sink.info.url, "auth": auth})
            step = api.call("POST", "/webhook/test").json()["data"]["steps"][0]
            assert step["step"] == "token" and step["ok"] is False
            details.append(step["detail"].replace(str(port), "PORT"))
    assert (
        details
        == [
            "token URL unreachable: no TLS connection (refused, unreachable, reset or not TLS) "
            "to 127.0.0.1:PORT"
        ]
        * 2
    )
