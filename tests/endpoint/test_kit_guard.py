"""Issue 10 #17: /_kit answers only its own names, and refuses state changes from other sites."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest
from click.testing import CliRunner

from tests.helpers import KitClient, notification
from webhook_kit.cli import main
from webhook_kit.endpoint.guard import KitGuard
from webhook_kit.endpoint.service import Endpoint
from webhook_kit.serving import servers


@pytest.fixture
def kit(shared_endpoint: Endpoint) -> Iterator[KitClient]:
    """A client of the module's endpoint (one per server kind): these tests change nothing
    another one reads, and a key rotation is checked against the key it replaced."""
    client = KitClient(shared_endpoint)
    yield client
    client.close()


def origin_of(kit: KitClient) -> str:
    return kit.sink.urls.base


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8443", "127.0.0.1.nip.io"])
def test_a_foreign_host_header_is_refused_on_kit_routes(kit: KitClient, host: str) -> None:
    kit.post(notification())
    for path in ("/_kit/deliveries", "/_kit/", "/_kit/deliveries.jsonl", "/_kit/index.json"):
        response = kit.http.get(kit.sink.urls.base + path, headers={"Host": host}, timeout=10)
        assert response.status_code == 403, path
        assert response.json()["error_type"] == "forbidden_host"
        assert "event_id" not in response.text


def test_the_webhook_and_token_routes_ignore_the_host(kit: KitClient) -> None:
    assert kit.post(notification(), headers={"Host": "receiver.example"}).status_code == 200


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "localhost", "LOCALHOST.", "app.localhost", "[::1]", socket.gethostname()]
)
def test_own_names_and_ip_literals_are_answered(kit: KitClient, host: str) -> None:
    port = kit.sink.sock.getsockname()[1]
    response = kit.http.get(
        kit.sink.urls.deliveries, headers={"Host": f"{host}:{port}"}, timeout=10
    )
    assert response.status_code == 200


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "https://evil.example", "Content-Type": "application/json"},
        {"Origin": "null", "X-Webhook-Kit": "1"},
        {"Sec-Fetch-Site": "cross-site", "X-Webhook-Kit": "1"},
        {"Sec-Fetch-Site": "same-site", "X-Webhook-Kit": "1"},
        {},  # a plain form POST from any page: no marker
        {"Content-Type": "text/plain"},
        {"Content-Type": "application/x-www-form-urlencoded"},
    ],
)
def test_cross_site_rotate_key_is_refused(kit: KitClient, headers: dict[str, str]) -> None:
    kid = kit.sink.issuer.key.kid
    response = kit.http.post(kit.sink.urls.base + "/_kit/rotate-key", headers=headers, timeout=10)
    assert response.status_code == 403
    assert response.json()["error_type"] in ("cross_site_refused", "marker_required")
    assert kit.sink.issuer.key.kid == kid  # nothing changed


def test_cross_site_clear_is_refused(start_endpoint: Any) -> None:
    kit = KitClient(start_endpoint())  # its own endpoint: the record count is checked
    kit.post(notification())
    for headers in ({"Origin": "https://evil.example", "X-Webhook-Kit": "1"}, {}):
        response = kit.http.delete(kit.sink.urls.deliveries, headers=headers, timeout=10)
        assert response.status_code == 403
    assert kit.sink.recorder.count() == 1


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Webhook-Kit": "1"},
        {"Content-Type": "application/json"},
        {"X-Webhook-Kit": "1", "Sec-Fetch-Site": "same-origin", "Origin": "SAME"},
        {"X-Webhook-Kit": "1", "Sec-Fetch-Site": "none"},
    ],
)
def test_scripts_and_the_page_itself_may_rotate(kit: KitClient, headers: dict[str, str]) -> None:
    if headers.get("Origin") == "SAME":
        # A copy: the parameter's dict is shared by every server kind's run.
        headers = {**headers, "Origin": origin_of(kit)}
    kid = kit.sink.issuer.key.kid
    response = kit.http.post(kit.sink.urls.base + "/_kit/rotate-key", headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    assert response.json()["kid"] != kid


def test_host_names_are_normalised() -> None:
    guard = KitGuard(None, extra_hosts=["kit.internal"])
    assert guard.host_allowed("KIT.internal:8443")
    assert guard.host_allowed("[fe80::1]:1")
    assert not guard.host_allowed("kit.internal.evil.example")
    assert not guard.host_allowed("localhost.evil.example")


def test_is_loopback() -> None:
    sock = servers.bind("127.0.0.1", 0)
    try:
        assert servers.is_loopback(sock)
    finally:
        sock.close()


def test_serve_warns_when_the_address_is_not_loopback(
    monkeypatch: pytest.MonkeyPatch, certs_dir: Any
) -> None:
    # Binding a non-loopback address in a test would expose the port, so only the check is
    # replaced; the server really starts, and stops at once.
    import asyncio

    from webhook_kit.serving import loop as runtime

    def start_then_stop(runner: Any, ready: Any) -> None:
        async def once() -> None:
            shutdown = asyncio.Event()
            shutdown.set()
            await runner(ready, shutdown)

        runtime.run(once())

    monkeypatch.setattr(servers, "is_loopback", lambda sock: False)
    monkeypatch.setattr(runtime, "run_until_signal", start_then_stop)
    result = CliRunner().invoke(
        main,
        ["serve", "--port", "0", "--json", "--certs-dir", str(certs_dir)],
    )
    assert result.exit_code == 0, result.output
    assert "warning: listening on 127.0.0.1, which other machines can reach" in result.stderr
    assert "no authentication" in result.stderr


def test_a_foreign_authority_over_http2_is_refused(start_endpoint: Any) -> None:
    from tests.endpoint.test_output import h2_request

    sink = start_endpoint(server="hypercorn")
    KitClient(sink).post(notification())
    port = sink.sock.getsockname()[1]
    assert sink.info.ca_file is not None
    status, body = h2_request(
        port,
        sink.info.ca_file,
        "GET",
        "/_kit/deliveries",
        [],
        b"",
        authority=f"evil.example:{port}",
    )
    assert status == 403 and b"forbidden_host" in body
    status, body = h2_request(port, sink.info.ca_file, "GET", "/_kit/deliveries", [], b"")
    assert status == 200 and b'"count":1' in body
