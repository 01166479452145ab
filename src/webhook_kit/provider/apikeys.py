"""API keys: made, hashed and checked. A key is shown once; only its hash is stored.

A SHA-256 of the key, not a slow password hash: the kit's keys are 256 random bits (nothing to
guess), and a slow hash would cost every API call. A key given on the command line
(``provider --apikey``) is compared in constant time, in memory, and never stored.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

PREFIX = "wk_"


def new_key() -> str:
    return PREFIX + secrets.token_urlsafe(32)


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()


def same(given: str, expected: str) -> bool:
    """Constant-time comparison of two keys (or two hashes)."""
    return hmac.compare_digest(
        given.encode("utf-8", "surrogateescape"), expected.encode("utf-8", "surrogateescape")
    )
