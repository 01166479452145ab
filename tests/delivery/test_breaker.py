"""The circuit breaker's state machine, on an injected clock."""

from __future__ import annotations

import pytest

from webhook_kit.delivery.breaker import Breaker, BreakerPolicy, admits, after, probing, unwell
from webhook_kit.delivery.outcome import AttemptResult
from webhook_kit.errors import ConfigError

POLICY = BreakerPolicy(threshold=3, first_pause=5.0, max_pause=20.0)
OK = AttemptResult("success", "200", 1.0, 200)
DOWN = AttemptResult("connect_error", "cannot connect", 1.0)


@pytest.mark.parametrize(
    ("result", "counts"),
    [
        (AttemptResult("connect_error", "refused", 1.0), True),
        (AttemptResult("tls_error", "bad cert", 1.0), True),
        (AttemptResult("timeout", "10 s", 1.0), True),
        (AttemptResult("token_error", "token endpoint down", 1.0), True),
        (AttemptResult("http_error", "HTTP 503", 1.0, 503), True),
        (AttemptResult("http_error", "HTTP 500", 1.0, 500), True),
        (AttemptResult("http_error", "HTTP 422", 1.0, 422), False),
        (AttemptResult("http_error", "HTTP 429", 1.0, 429), False),
        (AttemptResult("unauthorized", "401", 1.0, 401), False),
        (AttemptResult("redirect", "307", 1.0, 307), False),
        (OK, False),
    ],
)
def test_which_failures_say_the_endpoint_is_unwell(result: AttemptResult, counts: bool) -> None:
    assert unwell(result) is counts


def test_it_opens_after_the_threshold_and_waits_its_pause() -> None:
    b = Breaker()
    for t in (1.0, 2.0):
        b = after(b, DOWN, t, POLICY)
        assert b.state == "closed" and admits(b, t) == "yes"
    b = after(b, DOWN, 3.0, POLICY)
    assert (b.state, b.since, b.probe_at, b.failures) == ("open", 3.0, 8.0, 3)
    assert "3 consecutive failures" in b.reason and "cannot connect" in b.reason
    assert admits(b, 7.9) == "no"
    assert admits(b, 8.0) == "probe"


def test_a_healthy_answer_resets_the_count() -> None:
    b = after(after(Breaker(), DOWN, 1.0, POLICY), DOWN, 2.0, POLICY)
    b = after(b, AttemptResult("http_error", "HTTP 422", 1.0, 422), 3.0, POLICY)
    assert b.failures == 0
    b = after(after(b, DOWN, 4.0, POLICY), DOWN, 5.0, POLICY)
    assert b.state == "closed"


def test_a_failed_probe_doubles_the_pause_up_to_the_cap() -> None:
    b = Breaker("open", 0.0, "down", 3, 5.0, 5.0)
    pauses = []
    t = 5.0
    for _ in range(4):
        b = probing(b, t, lease=60.0)
        assert b.state == "half_open" and admits(b, t + 1) == "no"  # one probe at a time
        b = after(b, DOWN, t + 1, POLICY)
        assert b.state == "open"
        pauses.append(b.pause)
        t = b.probe_at or 0.0
    assert pauses == [10.0, 20.0, 20.0, 20.0]


def test_a_successful_probe_closes_it() -> None:
    b = probing(Breaker("open", 0.0, "down", 3, 5.0, 5.0), 5.0, lease=60.0)
    b = after(b, OK, 6.0, POLICY)
    assert (b.state, b.failures, b.probe_at, b.since) == ("closed", 0, None, 6.0)
    assert admits(b, 6.0) == "yes"


def test_a_probe_whose_worker_died_is_retried_after_its_lease() -> None:
    b = probing(Breaker("open", 0.0, "down", 3, 5.0, 5.0), 5.0, lease=60.0)
    assert admits(b, 64.0) == "no"
    assert admits(b, 65.0) == "probe"


def test_the_state_reads_as_json() -> None:
    b = after(after(after(Breaker(), DOWN, 1, POLICY), DOWN, 2, POLICY), DOWN, 3, POLICY)
    shown = b.as_json()
    assert shown["state"] == "open" and shown["next_probe_at"] == 8.0
    assert shown["consecutive_failures"] == 3


@pytest.mark.parametrize(
    "kw", [{"threshold": 0}, {"first_pause": 0}, {"first_pause": 30.0, "max_pause": 10.0}]
)
def test_impossible_policies_are_refused(kw: dict[str, float]) -> None:
    with pytest.raises(ConfigError):
        BreakerPolicy(**kw)  # type: ignore[arg-type]
