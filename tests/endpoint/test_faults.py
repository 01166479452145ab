"""Fault injection for testing senders: per-status codes, rates, delays and Retry-After."""

from __future__ import annotations

import random
import time

import pytest

from tests.helpers import KitClient, notification
from webhook_kit.endpoint.faults import FaultInjector
from webhook_kit.endpoint.settings import FaultRule, FaultSettings
from webhook_kit.errors import ConfigError


def test_respond_per_status(start_endpoint: object) -> None:
    sink = start_endpoint(faults=FaultSettings(respond=(FaultRule.parse("deleted=500"),)))  # type: ignore[operator]
    kit = KitClient(sink)
    assert kit.post(notification("on-course")).status_code == 200
    failed = kit.post(notification("deleted"))
    assert failed.status_code == 500
    assert failed.json()["error_type"] == "injected_fault"
    record = sink.recorder.query(status="deleted")[-1]
    assert record["accepted"] is False and "--respond deleted=500" in record["reason"]


def test_respond_times_then_success(start_endpoint: object) -> None:
    rule = FaultRule.parse("*=503x2")
    sink = start_endpoint(faults=FaultSettings(respond=(rule,), retry_after=7))  # type: ignore[operator]
    kit = KitClient(sink)
    body = notification()
    answers = [kit.post(body) for _ in range(3)]
    assert [a.status_code for a in answers] == [503, 503, 200]
    assert answers[0].headers["Retry-After"] == "7"
    # A refused attempt does not count as "seen": the first success is not a duplicate.
    assert answers[2].json()["duplicate"] is False


def test_redirect_fault_points_elsewhere(start_endpoint: object) -> None:
    sink = start_endpoint(faults=FaultSettings(respond=(FaultRule.parse("*=307"),)))  # type: ignore[operator]
    kit = KitClient(sink)
    token = kit.token()
    response = kit.http.post(
        sink.info.url,
        json=notification(),
        headers={"Authorization": f"Bearer {token}"},
        allow_redirects=False,
        timeout=10,
    )
    assert response.status_code == 307
    assert response.headers["Location"] == "/_kit/redirected"


def test_delay(start_endpoint: object) -> None:
    sink = start_endpoint(faults=FaultSettings(delay=0.3))  # type: ignore[operator]
    kit = KitClient(sink)
    token = kit.token()
    started = time.monotonic()
    assert kit.post(notification(), token=token).status_code == 200
    # A lower bound only: the delay must have happened (no upper bound: shared machines vary).
    assert time.monotonic() - started >= 0.3


def test_fail_rate_is_seeded_and_roughly_right() -> None:
    injector = FaultInjector(FaultSettings(fail_rate=0.25, seed=7))
    outcomes = [injector.decide("on-course") for _ in range(2000)]
    failures = [o for o in outcomes if o is not None]
    assert 400 < len(failures) < 600
    assert {f.code for f in failures} == {503}
    again = FaultInjector(FaultSettings(fail_rate=0.25, seed=7))
    assert [again.decide("on-course") is None for _ in range(2000)] == [o is None for o in outcomes]


def test_fail_rate_zero_and_one() -> None:
    assert FaultInjector(FaultSettings(fail_rate=0.0), random.Random(1)).decide("deleted") is None
    assert (
        FaultInjector(FaultSettings(fail_rate=1.0), random.Random(1)).decide("deleted") is not None
    )


@pytest.mark.parametrize(
    "text", ["deleted", "nope=500", "deleted=abc", "deleted=99", "deleted=500x0", "=500"]
)
def test_bad_rules_are_refused(text: str) -> None:
    with pytest.raises(ConfigError):
        FaultRule.parse(text)


def test_legacy_alias_matches_canonical_rule() -> None:
    injector = FaultInjector(FaultSettings(respond=(FaultRule.parse("document2-uploaded=500"),)))
    fault = injector.decide("documen2-uploaded")
    assert fault is not None and fault.code == 500
