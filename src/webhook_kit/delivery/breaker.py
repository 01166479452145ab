"""A circuit breaker per endpoint: pure state, an injected clock, no I/O.

``closed``: deliveries flow. After ``threshold`` consecutive failures that say the endpoint is
unwell (no connection, TLS, a timeout, a 5xx, or its token endpoint failing likewise) it opens:
nothing is sent to it, and its pending events wait without using their retry budget. When the
pause is over, one delivery probes it (``half_open``); success closes it, failure opens it again
for twice as long, up to ``max_pause``. An answer that is not a sign of ill health (a 2xx, a 4xx,
a 401) resets the count. The state is stored, so every worker sees the same breaker; the store
makes the move to ``half_open`` atomic, so that exactly one worker probes.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from webhook_kit.delivery.outcome import AttemptResult
from webhook_kit.errors import ConfigError

BreakerState = Literal["closed", "open", "half_open"]
#: What an endpoint's breaker lets through now.
Admission = Literal["yes", "probe", "no"]
UNWELL = frozenset({"connect_error", "tls_error", "timeout", "token_error"})


@dataclass(frozen=True)
class BreakerPolicy:
    threshold: int = 5
    first_pause: float = 5.0
    max_pause: float = 600.0

    def __post_init__(self) -> None:
        if self.threshold < 1:
            raise ConfigError("the breaker threshold must be at least 1")
        if not 0 < self.first_pause <= self.max_pause:
            raise ConfigError("the breaker pauses must be positive, the first not the longest")


@dataclass(frozen=True)
class Breaker:
    state: BreakerState = "closed"
    #: When it entered this state, and why.
    since: float = 0.0
    reason: str = ""
    #: Consecutive failures that count (see :func:`unwell`).
    failures: int = 0
    #: The current pause, and when the next probe may go (open and half-open only).
    pause: float = 0.0
    probe_at: float | None = None

    def as_json(self) -> dict[str, object]:
        return {
            "state": self.state,
            "since": self.since,
            "reason": self.reason,
            "consecutive_failures": self.failures,
            "next_probe_at": self.probe_at,
        }


def unwell(result: AttemptResult) -> bool:
    """Whether this attempt's failure says the endpoint itself is unwell."""
    if result.outcome in UNWELL:
        return True
    return result.outcome == "http_error" and (result.http_status or 0) >= 500


def admits(breaker: Breaker, now: float) -> Admission:
    """What may be sent now: anything, one probe, or nothing."""
    if breaker.state == "closed":
        return "yes"
    if breaker.probe_at is not None and now >= breaker.probe_at:
        # Open and rested, or half-open with a probe that never reported (its worker died).
        return "probe"
    return "no"


def probing(breaker: Breaker, now: float, lease: float) -> Breaker:
    """One probe is going out: half-open until it reports, or until ``lease`` passes."""
    return replace(breaker, state="half_open", since=now, probe_at=now + lease)


def after(breaker: Breaker, result: AttemptResult, now: float, policy: BreakerPolicy) -> Breaker:
    """The breaker after one attempt to its endpoint."""
    if not unwell(result):
        if breaker.state == "closed":
            return breaker if breaker.failures == 0 else replace(breaker, failures=0)
        return Breaker("closed", now, "a delivery succeeded", 0, 0.0, None)
    failures = breaker.failures + 1
    why = f"{failures} consecutive failures, the last: {result.reason[:200]}"
    if breaker.state == "half_open":
        pause = min(max(breaker.pause, policy.first_pause) * 2, policy.max_pause)
        return Breaker(
            "open", now, f"the probe failed: {result.reason[:200]}", failures, pause, now + pause
        )
    if breaker.state == "closed" and failures >= policy.threshold:
        pause = policy.first_pause
        return Breaker("open", now, why, failures, pause, now + pause)
    return replace(breaker, failures=failures)
