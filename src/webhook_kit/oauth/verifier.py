"""The bearer check of a protected route (RFC 6750), with a bounded cache of verified tokens,
and the sender-constraint check of bound tokens (:class:`SenderConstraint`).

Verifying an RS256 signature costs tens of microseconds; a sender reuses one token for many
requests, so verified tokens are cached (token -> claims). Expiry and not-before are re-checked on
every request, so a cached token stops working the moment it expires.

A bound token is only good with what it is bound to: a certificate-bound token (``cnf.x5t#S256``,
RFC 8705) over a TLS connection with that client certificate, a DPoP-bound one (``cnf.jkt``,
RFC 9449) as ``Authorization: DPoP`` with a fresh proof by that key for this method and URL.
"""

from __future__ import annotations

import hmac
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, Literal, get_args

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
from webhook_kit.oauth import dpop
from webhook_kit.oauth.assertion import ReplayCache

ALGORITHMS = ["RS256"]
ACCEPTED_TYPES = frozenset({"at+jwt", "application/at+jwt"})
MAX_TOKEN_LENGTH = 8192


Binding = Literal["none", "mtls", "dpop"]
#: What ``serve --token-binding`` may require of the tokens at the webhook.
BINDINGS: Final[tuple[Binding, ...]] = get_args(Binding)
Scheme = Literal["Bearer", "DPoP"]


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


def access_token(authorization: str | None, query_string: bytes = b"") -> tuple[Scheme, str]:
    """The scheme (``Bearer`` or ``DPoP``) and the token; raises :class:`TokenError`."""
    if authorization is not None and authorization.partition(" ")[0].lower() == "dpop":
        return "DPoP", bearer_token("Bearer " + authorization.partition(" ")[2], query_string)
    return "Bearer", bearer_token(authorization, query_string)


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


class SenderConstraint:
    """Checks that a verified token is used by the party it is bound to, and that the route's
    ``binding`` is met. Proofs are remembered (``jti``) to refuse a replay; only proofs that
    come with a valid token reach the cache, so strangers cannot fill it."""

    def __init__(
        self,
        binding: Binding = "none",
        *,
        nonces: dpop.NonceSource | None = None,
        policy: dpop.ProofPolicy | None = None,
        clock: Callable[[], float] = time.time,
        replay: ReplayCache | None = None,
    ) -> None:
        if binding not in BINDINGS:
            raise ValueError(f"binding must be one of {', '.join(BINDINGS)}")
        self.binding = binding
        self.nonces = nonces
        self.policy = policy or dpop.ProofPolicy()
        self._clock = clock
        # "is not None": an empty cache has no length, and so is falsy.
        self.replay = replay if replay is not None else ReplayCache(clock=clock)
        self.keys = dpop.ProofKeys()
        self.routes = dpop.RouteTargets()

    def check(
        self,
        scheme: Scheme,
        token: str,
        claims: Mapping[str, Any],
        *,
        method: str,
        url: str,
        proofs: Sequence[str] = (),
        peer_thumbprint: str | None = None,
    ) -> None:
        """Raise :class:`TokenError` (``invalid_token``, ``invalid_dpop_proof`` or
        ``use_dpop_nonce``) unless the token is presented as it is bound and as required."""
        cnf = claims.get("cnf")
        cnf = cnf if isinstance(cnf, Mapping) else {}
        jkt, x5t = cnf.get("jkt"), cnf.get("x5t#S256")
        if jkt is not None:
            if scheme != "DPoP":
                raise TokenError("a DPoP-bound token must be sent as Authorization: DPoP")
            if not proofs:
                raise TokenError("DPoP proof missing", dpop.INVALID_PROOF)
            if len(proofs) > 1:
                raise TokenError("more than one DPoP header", dpop.INVALID_PROOF)
            dpop.verify_proof(
                proofs[0],
                method=method,
                url=url,
                replay=self.replay,
                access_token=token,
                jkt=str(jkt),
                nonces=self.nonces,
                policy=self.policy,
                clock=self._clock,
                keys=self.keys,
                routes=self.routes,
            )
        elif scheme == "DPoP":
            raise TokenError("Authorization: DPoP with a token that is not DPoP-bound")
        if x5t is not None:
            if peer_thumbprint is None:
                raise TokenError("certificate-bound token presented without a client certificate")
            if not hmac.compare_digest(str(x5t), peer_thumbprint):
                raise TokenError("certificate-bound token presented with another certificate")
        if self.binding == "dpop" and jkt is None:
            raise TokenError("this endpoint requires a DPoP-bound token")
        if self.binding == "mtls" and x5t is None:
            raise TokenError("this endpoint requires a certificate-bound token")

    def challenge(
        self, exc: TokenError, scheme: Scheme | None, realm: str = "webhook-kit"
    ) -> dict[str, str]:
        """The headers of the 401: ``WWW-Authenticate`` in the scheme the client should use
        (``DPoP`` with ``algs`` where DPoP is expected, RFC 9449 section 7.1), and a fresh
        ``DPoP-Nonce`` when nonces are required."""
        dpop_expected = (
            self.binding == "dpop"
            or scheme == "DPoP"
            or exc.error in (dpop.INVALID_PROOF, dpop.USE_NONCE)
        )
        headers: dict[str, str] = {}
        if not dpop_expected:
            headers["WWW-Authenticate"] = www_authenticate(exc, realm)
            return headers
        algs = " ".join(self.policy.algorithms)
        if exc.error is None:
            headers["WWW-Authenticate"] = f'DPoP realm="{realm}", algs="{algs}"'
        else:
            description = exc.description.replace('"', "'")
            headers["WWW-Authenticate"] = (
                f'DPoP realm="{realm}", error="{exc.error}", '
                f'error_description="{description}", algs="{algs}"'
            )
        if self.nonces is not None:
            headers["DPoP-Nonce"] = self.nonces.current()
        return headers
