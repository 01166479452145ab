"""Fault injection: the answers a sender must survive (errors, slowness, Retry-After)."""

from __future__ import annotations

import random
from dataclasses import dataclass

from webhook_kit.contract.statuses import canonical
from webhook_kit.endpoint.settings import FaultSettings


@dataclass(frozen=True)
class Fault:
    code: int
    reason: str
    headers: dict[str, str]


class FaultInjector:
    def __init__(self, settings: FaultSettings, rng: random.Random | None = None) -> None:
        self.settings = settings
        self._rng = rng or random.Random(settings.seed)
        self._used: dict[int, int] = {}

    @property
    def delay(self) -> float:
        return self.settings.delay

    def decide(self, status: str) -> Fault | None:
        """The injected answer for one valid notification, or ``None`` to accept it."""
        for index, rule in enumerate(self.settings.respond):
            if rule.status not in ("*", status, canonical(status)):
                continue
            used = self._used.get(index, 0)
            if rule.times is not None and used >= rule.times:
                continue
            self._used[index] = used + 1
            flag = f"{rule.status}={rule.code}" + (f"x{rule.times}" if rule.times else "")
            return self._fault(rule.code, f"injected {rule.code} (--respond {flag})")
        if self.settings.fail_rate and self._rng.random() < self.settings.fail_rate:
            code = self.settings.fail_code
            return self._fault(code, f"injected {code} (--fail-rate {self.settings.fail_rate})")
        return None

    def _fault(self, code: int, reason: str) -> Fault:
        headers: dict[str, str] = {}
        if code in (429, 503) and self.settings.retry_after is not None:
            headers["Retry-After"] = str(self.settings.retry_after)
        if 300 <= code < 400:
            # A redirect to a path that is not the webhook: a sender must not follow it.
            headers["Location"] = "/_kit/redirected"
        return Fault(code, reason, headers)
