"""--public-only: the server-side request forgery guard."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest

from tests.helpers import run_kit, sender_args
from webhook_kit.delivery.guard import why_not_public
from webhook_kit.endpoint.service import Endpoint


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


def emit_to(sink: Endpoint, url: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return run_kit(["emit", url, *sender_args(sink), "--status", "on-course", *extra], timeout=60)


@pytest.mark.slow
@pytest.mark.parametrize(
    "host",
    ["127.0.0.1", "localhost", "2130706433", "0x7f000001", "127.1", "[::ffff:127.0.0.1]", "[::1]"],
)
def test_emit_public_only_refuses_loopback_in_any_form(start_endpoint: Any, host: str) -> None:
    sink: Endpoint = start_endpoint()
    port = sink.sock.getsockname()[1]
    result = emit_to(sink, f"https://{host}:{port}/webhook", "--public-only")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "refused by --public-only" in result.stdout
    assert sink.recorder.query() == []  # nothing reached the endpoint
    assert sink.issuer.issued == 0  # and no token was fetched from it either


@pytest.mark.slow
def test_without_public_only_the_same_target_works(start_endpoint: Any) -> None:
    sink: Endpoint = start_endpoint()
    assert emit_to(sink, sink.info.url).returncode == 0


def test_provider_public_only_refuses_internal_targets(
    start_endpoint: Any, start_provider: Any
) -> None:
    from tests.provider.helpers import ProviderClient

    sink: Endpoint = start_endpoint()
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


# Finding 8 (issue 10): one policy, decided on the address connected to.
POLICY_TABLE = [
    # address, local (default), private (--allow-private), public (--public-only)
    ("127.0.0.1", True, True, False),
    ("::1", True, True, False),
    ("::ffff:127.0.0.1", True, True, False),
    ("10.0.0.1", False, True, False),
    ("172.16.5.4", False, True, False),
    ("192.168.1.1", False, True, False),
    ("fd12:3456::1", False, True, False),
    ("100.64.0.1", False, True, False),
    ("::ffff:10.0.0.1", False, True, False),
    ("169.254.169.254", False, False, False),
    ("::ffff:169.254.169.254", False, False, False),
    ("169.254.170.2", False, False, False),
    ("fd00:ec2::254", False, False, False),
    ("100.100.100.200", False, False, False),
    ("168.63.129.16", False, False, False),
    ("169.254.1.1", False, False, False),
    ("fe80::1", False, False, False),
    ("0.0.0.0", False, False, False),
    ("::", False, False, False),
    ("224.0.0.1", False, False, False),
    ("255.255.255.255", False, False, False),
    ("192.0.2.1", False, False, False),
    ("64:ff9b::7f00:1", False, False, False),  # NAT64 of loopback: not the local loopback
    ("2002:a00:1::1", False, False, False),  # 6to4 of 10.0.0.1
    ("8.8.8.8", True, True, True),
    ("2606:4700:4700::1111", True, True, True),
    ("64:ff9b::808:808", True, True, True),
]


@pytest.mark.parametrize("address,local,private,public", POLICY_TABLE)
def test_address_policy(address: str, local: bool, private: bool, public: bool) -> None:
    from webhook_kit.delivery.guard import why_refused

    for policy, allowed in (("local", local), ("private", private), ("public", public)):
        reason = why_refused(address, policy)  # type: ignore[arg-type]
        assert (reason is None) == allowed, (policy, address, reason)
    assert (why_not_public(address) is None) == public


def test_refusals_say_why_and_what_allows_it() -> None:
    from webhook_kit.delivery.guard import why_refused

    assert why_refused("10.0.0.1", "local") == (
        "refused: 10.0.0.1 is private; allow private addresses with --allow-private"
    )
    assert why_refused("169.254.169.254", "private") == (
        "refused: 169.254.169.254 is a cloud metadata address (never allowed)"
    )
    assert why_refused("127.0.0.1", "public") == "refused by --public-only: 127.0.0.1 is loopback"


@pytest.mark.slow
def test_emit_refuses_the_metadata_address_without_sending_anything(start_endpoint: Any) -> None:
    sink: Endpoint = start_endpoint()
    result = emit_to(sink, "https://169.254.169.254/latest/meta-data", "--allow-private")
    assert result.returncode == 1
    assert "169.254.169.254 is a cloud metadata address (never allowed)" in result.stdout
    assert sink.recorder.query() == []


@pytest.mark.parametrize(
    "url,problem",
    [
        ("https://user@127.0.0.1/w", "must not contain a user name or password"),
        ("https://u:p@127.0.0.1/w", "must not contain a user name or password"),
        ("https://a..b/w", "is not a valid host name"),
        ("https://-a.example/w", "is not a valid host name"),
        ("https://" + "a" * 64 + ".example/w", "is not a valid host name"),
        ("https://127.0.0.1:99999/w", "not a valid URL"),
        ("https://exa mple.com/w", "must not contain spaces or control characters"),
        ("https://example.com/\x1b[2J", "must not contain spaces or control characters"),
        ("http://example.com/w", "must be an absolute https:// URL"),
        ("https:///w", "must be an absolute https:// URL"),
    ],
)
def test_url_problems(url: str, problem: str) -> None:
    from webhook_kit.delivery.guard import url_problem

    found = url_problem(url)
    assert found is not None and problem in found


@pytest.mark.parametrize(
    "url", ["https://example.com/w", "https://[::1]:8443/w", "https://bücher.example/w"]
)
def test_usable_urls(url: str) -> None:
    from webhook_kit.delivery.guard import url_problem

    assert url_problem(url) is None
