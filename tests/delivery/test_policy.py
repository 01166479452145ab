"""The retry policy is pure: every case runs without a clock or a network."""

from __future__ import annotations

import pytest

from webhook_kit.delivery.outcome import AttemptResult
from webhook_kit.delivery.policy import DEFAULT_SCHEDULE, RetryPolicy, exponential_schedule
from webhook_kit.errors import ConfigError

FAIL = AttemptResult("http_error", "HTTP 500", 1.0, 500)
OK = AttemptResult("success", "200", 1.0, 200)


def test_default_schedule_doubles_up_to_six_hours_over_about_three_days() -> None:
    assert DEFAULT_SCHEDULE[:4] == (10.0, 20.0, 40.0, 80.0)
    assert max(DEFAULT_SCHEDULE) == 6 * 3600
    assert 2.5 * 86400 < sum(DEFAULT_SCHEDULE) <= 3 * 86400


def test_success_is_done() -> None:
    assert RetryPolicy().decide(1, OK, now=0, rand=0.5).action == "done"


@pytest.mark.parametrize("rand", [0.0, 0.5, 0.999])
def test_retry_delay_is_the_schedule_with_bounded_jitter(rand: float) -> None:
    policy = RetryPolicy(schedule=(100.0, 200.0), jitter=0.2)
    decision = policy.decide(2, FAIL, now=1000.0, rand=rand)
    assert decision.action == "retry"
    assert decision.next_attempt_at is not None
    assert 1000 + 160 <= decision.next_attempt_at <= 1000 + 240
    assert decision.next_attempt_at == pytest.approx(1000 + 200 * (0.8 + 0.4 * rand))


def test_gives_up_after_the_schedule() -> None:
    policy = RetryPolicy(schedule=(1.0, 2.0))
    assert policy.max_attempts == 3
    assert policy.decide(2, FAIL, now=0, rand=0).action == "retry"
    decision = policy.decide(3, FAIL, now=0, rand=0)
    assert decision.action == "fail" and "3 attempts" in decision.reason


def test_no_retries_at_all() -> None:
    assert RetryPolicy(schedule=()).decide(1, FAIL, now=0, rand=0).action == "fail"


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_is_honoured(status: int) -> None:
    result = AttemptResult("http_error", "busy", 1.0, status, retry_after=120.0)
    decision = RetryPolicy(schedule=(5.0,)).decide(1, result, now=0, rand=0.5)
    assert decision.next_attempt_at == 120.0


def test_retry_after_is_capped() -> None:
    result = AttemptResult("http_error", "busy", 1.0, 503, retry_after=86400.0)
    decision = RetryPolicy(schedule=(5.0,), retry_after_cap=600).decide(1, result, now=0, rand=0)
    assert decision.next_attempt_at == 600.0


def test_retry_after_on_other_statuses_is_ignored() -> None:
    result = AttemptResult("http_error", "oops", 1.0, 500, retry_after=999.0)
    decision = RetryPolicy(schedule=(5.0,), jitter=0).decide(1, result, now=0, rand=0)
    assert decision.next_attempt_at == 5.0


def test_410_disables() -> None:
    gone = AttemptResult("http_error", "HTTP 410", 1.0, 410)
    decision = RetryPolicy().decide(1, gone, now=0, rand=0)
    assert decision.action == "disable" and "410" in decision.reason


@pytest.mark.parametrize(
    "outcome", ["token_error", "unauthorized", "timeout", "tls_error", "connect_error", "redirect"]
)
def test_every_failure_class_is_retried(outcome: str) -> None:
    result = AttemptResult(outcome, "x", 1.0)  # type: ignore[arg-type]
    assert RetryPolicy(schedule=(1.0,)).decide(1, result, now=0, rand=0).action == "retry"


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ConfigError):
        RetryPolicy(jitter=1.5)
    with pytest.raises(ConfigError):
        RetryPolicy(schedule=(-1.0,))
    with pytest.raises(ConfigError):
        exponential_schedule(first=0)
