"""RFC 7523 client assertions (``private_key_jwt``): signing one, and verifying one.

An assertion says ``iss = sub = client_id``, ``aud`` = the token endpoint (or the issuer), and
lives :data:`LIFETIME` seconds; its ``jti`` is unique, and the verifier remembers each ``jti``
until the assertion expires (:class:`ReplayCache`), so a captured assertion cannot be replayed.
Signing happens once per token, not per delivery.
"""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Collection, Mapping
from typing import Any, Final

from joserfc import jwt
from joserfc.errors import BadSignatureError, JoseError
from joserfc.jwk import ECKey, KeyParameters, KeySet, RSAKey

from webhook_kit.errors import TokenError
from webhook_kit.oauth.client_auth import ALGORITHMS, ClientCredentials

ASSERTION_TYPE: Final[str] = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
#: Seconds an assertion the kit signs stays valid: one token request, with room for a slow link.
LIFETIME: Final[int] = 60
#: The longest lifetime (exp - iat) the verifier accepts; longer-lived assertions are replay bait.
MAX_LIFETIME: Final[int] = 300
#: Clock skew tolerated between client and server, in seconds.
LEEWAY: Final[int] = 30
MAX_ASSERTION_LENGTH: Final[int] = 8192

VerificationKey = RSAKey | ECKey | KeySet


class ReplayCache:
    """Identifiers seen recently (``jti``), each kept until it expires. Bounded: when full of
    unexpired entries it refuses new ones (fails closed) rather than forget one that could then
    be replayed. Pure: the clock is injected."""

    def __init__(self, capacity: int = 100_000, *, clock: Callable[[], float] = time.time) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self._clock = clock
        # Insertion order is close to expiry order; purging scans from the front.
        self._seen: OrderedDict[str, float] = OrderedDict()

    def __len__(self) -> int:
        return len(self._seen)

    def _purge(self, now: float) -> None:
        expired = [key for key, until in self._seen.items() if until <= now]
        for key in expired:
            del self._seen[key]

    def use(self, key: str, expires_at: float) -> None:
        """Record ``key`` until ``expires_at``; :class:`TokenError` if it was seen already.

        ``error`` of the raised error is ``invalid_request``: callers substitute their own code.
        """
        now = self._clock()
        until = self._seen.get(key)
        if until is not None and until > now:
            raise TokenError("replayed: this jti was already used", "invalid_request")
        if len(self._seen) >= self.capacity:
            self._purge(now)
            if len(self._seen) >= self.capacity:
                raise TokenError(
                    "too many recent requests to check for replay; retry shortly",
                    "temporarily_unavailable",
                )
        self._seen[key] = max(expires_at, now)


def signing_key(credentials: ClientCredentials) -> RSAKey | ECKey:
    """The joserfc private key of a ``private_key_jwt`` client (checked when it was made)."""
    if credentials.private_key is None:
        raise TokenError(f"{credentials.method} does not sign assertions", "invalid_client")
    parameters: KeyParameters = {}
    if credentials.key_id:
        parameters["kid"] = credentials.key_id
    if credentials.algorithm == "ES256":
        return ECKey.import_key(credentials.private_key, parameters)
    return RSAKey.import_key(credentials.private_key, parameters)


def sign_client_assertion(
    credentials: ClientCredentials,
    *,
    audience: str,
    clock: Callable[[], float] = time.time,
    lifetime: int = LIFETIME,
    key: RSAKey | ECKey | None = None,
) -> str:
    """A fresh client assertion for one token request (``key`` saves re-parsing the PEM)."""
    key = key or signing_key(credentials)
    now = int(clock())
    header: dict[str, Any] = {"alg": credentials.algorithm, "typ": "JWT"}
    if credentials.key_id:
        header["kid"] = credentials.key_id
    if credentials.x5t_s256:
        header["x5t#S256"] = credentials.x5t_s256
    claims = {
        "iss": credentials.client_id,
        "sub": credentials.client_id,
        "aud": audience,
        "iat": now,
        "nbf": now,
        "exp": now + lifetime,
        "jti": secrets.token_urlsafe(24),
    }
    return jwt.encode(header, claims, key, algorithms=[credentials.algorithm])


def assertion_form(credentials: ClientCredentials, assertion: str) -> dict[str, str]:
    """The token request's client-authentication parameters (RFC 7523 section 2.2)."""
    return {
        "client_id": credentials.client_id,
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": assertion,
    }


def _refuse(description: str) -> TokenError:
    return TokenError(description, "invalid_client")


def verify_client_assertion(
    assertion: str,
    *,
    client_id: str,
    keys: VerificationKey,
    audiences: Collection[str],
    replay: ReplayCache,
    clock: Callable[[], float] = time.time,
    algorithms: Collection[str] = ALGORITHMS,
    leeway: int = LEEWAY,
    max_lifetime: int = MAX_LIFETIME,
) -> Mapping[str, Any]:
    """The claims of a valid assertion from ``client_id``; :class:`TokenError` (``error`` is
    ``invalid_client``) naming what is wrong. Only ``keys`` (the client's registered public key
    or JWKS) can make it valid: a ``jwk``, ``x5c`` or ``jku`` in the header is ignored."""
    if len(assertion) > MAX_ASSERTION_LENGTH:
        raise _refuse("client assertion too long")
    if assertion.count(".") != 2:
        raise _refuse("client assertion is not a signed JWT")
    for algorithm in algorithms:
        if algorithm not in ALGORITHMS:
            raise ValueError(f"algorithm {algorithm!r} cannot verify client assertions")
    try:
        decoded = jwt.decode(assertion, keys, algorithms=list(algorithms))
    except BadSignatureError as exc:
        raise _refuse("client assertion signature does not verify") from exc
    except JoseError as exc:
        raise _refuse(f"client assertion refused ({exc.error}: {exc.description})") from exc
    except (ValueError, TypeError, KeyError) as exc:
        raise _refuse("malformed client assertion") from exc
    claims = decoded.claims
    _check_subject(claims, client_id)
    _check_audience(claims.get("aud"), audiences)
    expires_at = _check_times(claims, clock(), leeway, max_lifetime)
    jti = claims.get("jti")
    if not isinstance(jti, str) or not jti:
        raise _refuse("client assertion has no jti")
    try:
        replay.use(f"{client_id}\0{jti}", expires_at + leeway)
    except TokenError as exc:
        code = exc.error if exc.error == "temporarily_unavailable" else "invalid_client"
        raise TokenError(f"client assertion {exc.description}", code) from exc
    return claims


def _check_subject(claims: Mapping[str, Any], client_id: str) -> None:
    if claims.get("iss") != client_id:
        raise _refuse("client assertion iss is not the client_id")
    if claims.get("sub") != client_id:
        raise _refuse("client assertion sub is not the client_id")


def _check_audience(aud: object, audiences: Collection[str]) -> None:
    values = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else None
    if not values:
        raise _refuse("client assertion has no aud")
    if not any(isinstance(v, str) and v in audiences for v in values):
        raise _refuse(
            f"client assertion aud is not this server (expected one of {sorted(audiences)})"
        )


def _number(claims: Mapping[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _refuse(f"client assertion {name} is not a number")
    return float(value)


def _check_times(claims: Mapping[str, Any], now: float, leeway: int, max_lifetime: int) -> float:
    exp = _number(claims, "exp")
    if exp is None:
        raise _refuse("client assertion has no exp")
    if exp <= now - leeway:
        raise _refuse("client assertion expired")
    iat = _number(claims, "iat")
    if iat is not None and iat > now + leeway:
        raise _refuse("client assertion issued in the future (iat)")
    nbf = _number(claims, "nbf")
    if nbf is not None and nbf > now + leeway:
        raise _refuse("client assertion not yet valid (nbf)")
    start = iat if iat is not None else now
    if exp - start > max_lifetime:
        raise _refuse(f"client assertion lives longer than {max_lifetime} s")
    return exp
