"""Keep secrets out of every text that leaves the process: reasons, logs, reports."""

from __future__ import annotations

from collections.abc import Iterable

REDACTED = "********"


def scrub(text: str, secrets: Iterable[str | None]) -> str:
    """``text`` with every occurrence of each non-empty secret replaced."""
    for secret in secrets:
        if secret and len(secret) >= 4 and secret in text:
            text = text.replace(secret, REDACTED)
    return text
