"""--public-only: the server-side request forgery guard."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest

from tests.helpers import run_kit, sender_args
from webhook_kit.guard import why_not_public
from webhook_kit.sink.runner import Sink


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "127.1.2.3",
        "::1",
        "10.0.0.1",
        "172.16.5.4",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "::",
        "fe80::1",
        "fd00:ec2::254",
        "224.0.0.1",
        "::ffff:127.0.0.1",
        "::ffff:169.254.169.254",
        "64:ff9b::7f00:1",
        "2002:7f00:1::1",
        "::127.0.0.1",
        "240.0.0.1",
    ],
)
def test_internal_addresses_are_refused(address: str) -> None:
    assert why_not_public(address) is not None


@pytest.mark.parametrize(
    "address", ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8"]
)
def test_public_addresses_pass(address: str) -> None:
    assert why_not_public(address) is None


def emit_to(sink: Sink, url: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return run_kit(["emit", url, *sender_args(sink), "--status", "on-course", *extra], timeout=60)


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1", "localhost", "2130706433", "0x7f000001", "127.1", "[::ffff:127.0.0.1]", "[::1]"],
)
def test_emit_public_only_refuses_loopback_in_any_form(start_sink: Any, host: str) -> None:
    sink: Sink = start_sink()
    port = sink.sock.getsockname()[1]
    result = emit_to(sink, f"https://{host}:{port}/webhook", "--public-only")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "refused by --public-only" in result.stdout
    assert sink.recorder.query() == []  # nothing reached the endpoint
    assert sink.issuer.issued == 0  # and no token was fetched from it either


def test_without_public_only_the_same_target_works(start_sink: Any) -> None:
    sink: Sink = start_sink()
    assert emit_to(sink, sink.info.url).returncode == 0


def test_provider_public_only_refuses_internal_targets(
    start_sink: Any, start_provider: Any
) -> None:
    from tests.provider.helpers import ProviderClient

    sink: Sink = start_sink()
    api = ProviderClient(start_provider(public_only=True))
    assert api.configure(sink).status_code == 201
    trace = api.call("POST", "/webhook/test").json()["data"]
    assert trace["ok"] is False
    assert "refused by --public-only" in trace["steps"][0]["detail"]
    validation_id = api.new_validation()
    import time

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        events = api.call("GET", f"/validation/{validation_id}/events").json()["data"]
        if events and events[0]["attempts"]:
            break
        time.sleep(0.05)
    assert "refused by --public-only" in events[0]["attempts"][0]["reason"]
    assert sink.recorder.query() == []
    api.http.close()
