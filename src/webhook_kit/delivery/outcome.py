"""What one delivery attempt came to. Pure types: no I/O, no package imports."""

from __future__ import annotations

from typing import Literal, NamedTuple

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


class AttemptResult(NamedTuple):
    """Immutable; a named tuple because one is built per attempt on the hot path, and a frozen
    dataclass costs twice as much to construct."""

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
