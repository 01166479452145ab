"""What one delivery attempt came to. Pure types: no I/O, no package imports."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Outcome = Literal[
    "success",
    "token_error",
    "unauthorized",
    "http_error",
    "timeout",
    "tls_error",
    "connect_error",
    "redirect",
]


@dataclass(frozen=True, slots=True)
class AttemptResult:
    outcome: Outcome
    reason: str
    duration_ms: float
    http_status: int | None = None
    #: Seconds the receiver asked us to wait (``Retry-After`` on 429/503), if any.
    retry_after: float | None = None
    #: Whether a fresh token was fetched after a 401 within this attempt.
    token_refreshed: bool = False

    @property
    def ok(self) -> bool:
        return self.outcome == "success"
