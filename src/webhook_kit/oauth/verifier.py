"""The bearer check of a protected route (RFC 6750), with a bounded cache of verified tokens.

Verifying an RS256 signature costs tens of microseconds; a sender reuses one token for many
requests, so verified tokens are cached (token -> claims). Expiry and not-before are re-checked on
every request, so a cached token stops working the moment it expires.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

from joserfc import jwt
from joserfc.errors import (
    BadSignatureError,
    ExpiredTokenError,
    InvalidClaimError,
    JoseError,
    MissingClaimError,
)
from joserfc.jwk import RSAKey

from webhook_kit.errors import TokenError

ALGORITHMS = ["RS256"]
ACCEPTED_TYPES = frozenset({"at+jwt", "application/at+jwt"})
MAX_TOKEN_LENGTH = 8192


def bearer_token(authorization: str | None, query_string: bytes = b"") -> str:
    """The token from an ``Authorization: Bearer`` header; raises :class:`TokenError`.

    A token in the query string is refused (RFC 6750 section 2.3 allows it, but URLs end up in
    logs and proxies, so this profile does not).
    """
    if b"access_token=" in query_string:
        raise TokenError("token in query string refused", "invalid_request")
    if authorization is None:
        raise TokenError("missing token", None)
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer":
        raise TokenError("Authorization scheme is not Bearer", "invalid_request")
    token = token.strip()
    if not token or " " in token:
        raise TokenError("malformed Authorization header", "invalid_request")
    if len(token) > MAX_TOKEN_LENGTH:
        raise TokenError("token too long", "invalid_token")
    return token


class BearerVerifier:
    def __init__(
        self,
        *,
        key: RSAKey,
        issuer: str,
        audience: str,
        leeway: int = 0,
        clock: Callable[[], float] = time.time,
        cache_size: int = 4096,
    ) -> None:
        self._key = key
        self._issuer = issuer
        self._audience = audience
        self._leeway = leeway
        self._clock = clock
        self._cache: OrderedDict[str, Mapping[str, Any]] = OrderedDict()
        self._cache_size = cache_size

    def set_key(self, key: RSAKey) -> None:
        """Verify with ``key`` from now on; tokens verified with the old key are forgotten."""
        self._key = key
        self._cache.clear()

    def verify(self, token: str) -> Mapping[str, Any]:
        """The token's claims; raises :class:`TokenError` naming why it is refused."""
        claims = self._cache.get(token)
        if claims is not None:
            self._check_times(claims)
            return claims
        claims = self._verify_uncached(token)
        self._cache[token] = claims
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return claims

    def _verify_uncached(self, token: str) -> Mapping[str, Any]:
        if token.count(".") != 2:
            raise TokenError("malformed token (not a JWT)")
        try:
            decoded = jwt.decode(token, self._key, algorithms=ALGORITHMS)
        except BadSignatureError as exc:
            raise TokenError("bad signature") from exc
        except JoseError as exc:
            raise TokenError(_describe_decode_error(token, exc)) from exc
        except (ValueError, TypeError) as exc:
            raise TokenError("malformed token") from exc
        typ = str(decoded.header.get("typ", "")).lower()
        if typ not in ACCEPTED_TYPES:
            raise TokenError(f"token type {typ or 'missing'!r} is not at+jwt")
        claims = decoded.claims
        registry = jwt.JWTClaimsRegistry(
            now=lambda: int(self._clock()),
            leeway=self._leeway,
            iss={"essential": True, "value": self._issuer},
            aud={"essential": True, "value": self._audience},
            exp={"essential": True},
        )
        try:
            registry.validate(claims)
        except ExpiredTokenError as exc:
            raise TokenError("expired token") from exc
        except MissingClaimError as exc:
            raise TokenError(f"token lacks a required claim ({exc.description})") from exc
        except InvalidClaimError as exc:
            raise TokenError(_describe_claim_error(exc)) from exc
        except JoseError as exc:
            raise TokenError("token claims refused") from exc
        return claims

    def _check_times(self, claims: Mapping[str, Any]) -> None:
        now = self._clock()
        if claims["exp"] <= now - self._leeway:
            raise TokenError("expired token")
        nbf = claims.get("nbf")
        if nbf is not None and nbf > now + self._leeway:
            raise TokenError("token not yet valid")


def _describe_decode_error(token: str, exc: JoseError) -> str:
    import base64
    import json

    try:
        head = token.split(".", 1)[0]
        header = json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
        alg = header.get("alg") if isinstance(header, dict) else None
    except (ValueError, UnicodeDecodeError):
        return "malformed token"
    if alg is not None and alg not in ALGORITHMS:
        return f"algorithm {alg!r} not allowed"
    return f"token refused ({exc.error})"


def _describe_claim_error(exc: InvalidClaimError) -> str:
    text = str(exc.description)
    if "'iss'" in text:
        return "wrong issuer"
    if "'aud'" in text:
        return "wrong audience"
    if "'nbf'" in text or "not yet valid" in text:
        return "token not yet valid"
    if "'iat'" in text or "future" in text:
        return "token issued in the future"
    return f"invalid claim ({text})"


def www_authenticate(exc: TokenError, realm: str = "webhook-kit") -> str:
    """The RFC 6750 section 3 challenge for a refused request."""
    if exc.error is None:
        return f'Bearer realm="{realm}"'
    description = exc.description.replace('"', "'")
    return f'Bearer realm="{realm}", error="{exc.error}", error_description="{description}"'
