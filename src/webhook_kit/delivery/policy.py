"""The retry policy: pure and sans-IO. It never reads a clock or sleeps; callers pass ``now``
and a random number in [0, 1), so a multi-day schedule can be checked in microseconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from webhook_kit.delivery.outcome import AttemptResult
from webhook_kit.errors import ConfigError


def exponential_schedule(
    first: float = 10.0, factor: float = 2.0, cap: float = 6 * 3600, total: float = 3 * 86400
) -> tuple[float, ...]:
    """Delays before each retry: ``first * factor**n``, capped at ``cap``, within ``total``."""
    if first <= 0 or factor < 1 or cap < first or total < first:
        raise ConfigError("schedule needs first > 0, factor >= 1, cap >= first, total >= first")
    delays: list[float] = []
    spent = 0.0
    delay = first
    while spent + delay <= total:
        delays.append(delay)
        spent += delay
        delay = min(cap, delay * factor)
    return tuple(delays)


#: About three days of retries: 10 s, 20 s, 40 s, ... doubling up to 6 h between attempts.
DEFAULT_SCHEDULE = exponential_schedule()

Action = Literal["done", "retry", "fail", "disable"]


@dataclass(frozen=True, slots=True)
class Decision:
    action: Action
    #: When to try again (absolute, in the caller's clock), for ``retry``.
    next_attempt_at: float | None = None
    reason: str = ""


DONE = Decision("done")


@dataclass(frozen=True)
class RetryPolicy:
    """When to retry. ``schedule[n]`` is the delay before retry ``n + 1``."""

    schedule: tuple[float, ...] = field(default=DEFAULT_SCHEDULE)
    #: Each delay is drawn uniformly from ``delay * (1 ± jitter)``.
    jitter: float = 0.2
    #: The longest ``Retry-After`` honoured, in seconds.
    retry_after_cap: float = 3600.0

    def __post_init__(self) -> None:
        if not 0 <= self.jitter < 1:
            raise ConfigError("jitter must be in [0, 1)")
        if any(d < 0 for d in self.schedule):
            raise ConfigError("schedule delays must not be negative")
        if self.retry_after_cap < 0:
            raise ConfigError("retry_after_cap must not be negative")

    @property
    def max_attempts(self) -> int:
        return len(self.schedule) + 1

    def decide(self, attempts: int, result: AttemptResult, *, now: float, rand: float) -> Decision:
        """What to do after the ``attempts``-th attempt (1-based) ended with ``result``."""
        if result.ok:
            return DONE
        if result.http_status == 410:
            return Decision(
                "disable", reason="410 Gone: the receiver asked to stop; webhook disabled"
            )
        if attempts > len(self.schedule):
            return Decision("fail", reason=f"gave up after {attempts} attempts")
        delay = self.schedule[attempts - 1] * (1 - self.jitter + 2 * self.jitter * rand)
        if result.retry_after is not None and result.http_status in (429, 503):
            # The receiver knows its own recovery time better than our schedule does.
            delay = min(max(result.retry_after, 0.0), self.retry_after_cap)
        return Decision("retry", next_attempt_at=now + delay)
