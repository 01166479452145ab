"""Client credentials: a frozen pair whose secret never shows in a repr, a log or a report."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field


@dataclass(frozen=True)
class ClientCredentials:
    client_id: str
    client_secret: str = field(repr=False)

    @classmethod
    def generate(cls) -> ClientCredentials:
        return cls(f"kit-{secrets.token_hex(6)}", secrets.token_urlsafe(32))


def mask(secret: str | None) -> str | None:
    """The form in which a secret may be shown: never any of its characters."""
    return None if secret is None else "********"
