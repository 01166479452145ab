"""Each account's keys for signing ``private_key_jwt`` client assertions, and their JWKS.

The provider keeps one signing key per account (made on first use) and publishes the public
keys at ``/validas/v1/accounts/{account}/jwks.json``, so that a customer registers the sender
at its authorization server by that URL, never by copying a key. A rotation publishes the new
key at once and signs with it only after ``overlap`` (an authorization server's cached JWKS
learns it meanwhile); the old key stays published :data:`RETIRE_AFTER` seconds longer than it
signs, for the assertions it signed last.

Private keys are kept in the provider's database (mode 0600 for SQLite) and never leave it: not
in an API answer, a log line or an error.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from joserfc.jwk import ECKey, RSAKey

from webhook_kit.oauth.client_auth import DEFAULT_ALGORITHM, SigningAlgorithm
from webhook_kit.storage.base import RecordStore
from webhook_kit.storage.rows import SigningKeyRow

#: Seconds an old key stays published after the new one starts signing (assertions live 60 s).
RETIRE_AFTER = 300.0


def new_key(
    now: float, *, active_from: float | None = None, algorithm: SigningAlgorithm = DEFAULT_ALGORITHM
) -> SigningKeyRow:
    """A fresh key; its ``kid`` is its RFC 7638 thumbprint."""
    key: RSAKey | ECKey = (
        ECKey.generate_key("P-256") if algorithm == "ES256" else RSAKey.generate_key(2048)
    )
    pem = key.as_pem(private=True).decode()
    return SigningKeyRow(
        key.thumbprint(), algorithm, pem, now, now if active_from is None else active_from
    )


def signing(keys: Sequence[SigningKeyRow], now: float) -> SigningKeyRow | None:
    """The key that signs now: the newest one active and not retired."""
    live = [k for k in keys if k.active_from <= now and (k.retire_at is None or k.retire_at > now)]
    return max(live, key=lambda k: (k.active_from, k.created_at), default=None)


def published(keys: Sequence[SigningKeyRow], now: float) -> list[SigningKeyRow]:
    """The keys an authorization server may meet: not retired yet (the next one included)."""
    return [k for k in keys if k.retire_at is None or k.retire_at > now]


def jwks(keys: Sequence[SigningKeyRow], now: float) -> dict[str, Any]:
    """The public JWKS of ``keys`` (never a private part)."""
    shown = []
    for row in published(keys, now):
        key = (ECKey if row.algorithm == "ES256" else RSAKey).import_key(row.private_pem)
        public = key.as_dict(private=False)
        shown.append({**public, "kid": row.kid, "alg": row.algorithm, "use": "sig"})
    return {"keys": shown}


async def current(records: RecordStore, account: str, now: float) -> SigningKeyRow:
    """The account's signing key, made on first use."""
    key = signing(await records.signing_keys(account), now)
    if key is None:
        key = new_key(now)
        await records.add_signing_key(account, key, retire_others_at=None)
    return key


async def rotate(
    records: RecordStore, account: str, now: float, *, overlap: float
) -> SigningKeyRow:
    """Add the next key: published now, signing from ``now + overlap``; the others retire
    :data:`RETIRE_AFTER` seconds after that."""
    key = new_key(now, active_from=now + overlap)
    await records.add_signing_key(account, key, retire_others_at=now + overlap + RETIRE_AFTER)
    return key
