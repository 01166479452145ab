"""Issue 10 #20: failed client authentications are limited per client address."""

from __future__ import annotations

import http.client
import json
import ssl
from typing import Any

import pytest

from tests.helpers import KitClient
from webhook_kit.oauth.issuer import FailureLimit, FailureLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# Each step: (seconds to advance, address, action) where action is "fail" or the expected answer
# of retry_after ("ok" for None, a number for the seconds to wait).
STEPS: list[tuple[str, list[tuple[float, str, Any]]]] = [
    ("below the limit", [(0, "a", "fail"), (1, "a", "fail"), (0, "a", "ok")]),
    ("at the limit", [(0, "a", "fail"), (1, "a", "fail"), (1, "a", "fail"), (0, "a", 8.0)]),
    (
        "the window slides",
        [(0, "a", "fail"), (4, "a", "fail"), (4, "a", "fail"), (0, "a", 2.0), (2.5, "a", "ok")],
    ),
    (
        "a failure leaves the window after exactly its length",
        [(0, "a", "fail"), (5, "a", "fail"), (5, "a", "fail"), (0, "a", "ok")],
    ),
    (
        "addresses are separate",
        [(0, "a", "fail"), (0, "a", "fail"), (0, "a", "fail"), (0, "b", "ok"), (0, "a", 10.0)],
    ),
    (
        "limited until the oldest failure leaves",
        [(0, "a", "fail"), (1, "a", "fail"), (1, "a", "fail"), (7.5, "a", 0.5), (0.5, "a", "ok")],
    ),
    ("all forgotten after the window", [(0, "a", "fail")] * 3 + [(10.001, "a", "ok")]),
]


@pytest.mark.parametrize("steps", [s for _, s in STEPS], ids=[n for n, _ in STEPS])
def test_limiter_decisions(steps: list[tuple[float, str, Any]]) -> None:
    clock = Clock()
    limiter = FailureLimiter(FailureLimit(failures=3, window=10.0), clock=clock)
    for advance, address, action in steps:
        clock.now += advance
        if action == "fail":
            limiter.failed(address)
        elif action == "ok":
            assert limiter.retry_after(address) is None
        else:
            assert limiter.retry_after(address) == pytest.approx(action)


def test_limiter_memory_is_bounded() -> None:
    clock = Clock()
    limiter = FailureLimiter(FailureLimit(failures=3, window=10.0, addresses=100), clock=clock)
    for i in range(1_000):
        limiter.failed(f"10.0.{i // 256}.{i % 256}")
        limiter.failed("a")
    assert len(limiter._failures) <= 100
    assert all(len(times) <= 3 for times in limiter._failures.values())
    assert limiter.retry_after("a") is not None  # the busiest address is the one remembered


def token_request(
    kit: KitClient, secret: str, source: str = "127.0.0.1"
) -> tuple[int, dict[str, str], Any]:
    """A token request from ``source`` (any 127/8 address reaches the loopback endpoint)."""
    ctx = ssl.create_default_context(cafile=kit.info.ca_file)
    port = kit.sink.sock.getsockname()[1]
    conn = http.client.HTTPSConnection(
        "127.0.0.1", port, context=ctx, source_address=(source, 0), timeout=10
    )
    try:
        conn.request(
            "POST",
            "/oauth/token",
            body=f"grant_type=client_credentials&client_id={kit.info.client_id}"
            f"&client_secret={secret}",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        response = conn.getresponse()
        headers = {name.lower(): value for name, value in response.getheaders()}
        return response.status, headers, json.loads(response.read())
    finally:
        conn.close()


def test_guessing_is_answered_429_and_the_real_client_is_unaffected(start_endpoint: Any) -> None:
    sink = start_endpoint()
    kit = KitClient(sink)
    limit = sink.issuer.limiter.limit
    for _ in range(limit.failures):
        assert token_request(kit, "wrong", "127.0.0.2")[0] == 401
    status, headers, body = token_request(kit, "wrong", "127.0.0.2")
    assert status == 429
    assert 1 <= int(headers["retry-after"]) <= limit.window
    assert body["error"] == "slow_down" and "retry after" in body["error_description"]
    # Even the right secret is not tried from the guessing address until the window passes.
    assert token_request(kit, kit.info.client_secret, "127.0.0.2")[0] == 429
    # The real client, elsewhere, goes on as before, and its successes never count.
    for _ in range(limit.failures + 5):
        assert token_request(kit, kit.info.client_secret, "127.0.0.1")[0] == 200
    assert kit.token()
