"""Client credentials for senders: every client authentication method, DPoP, a token cache.

Authlib's own clients refresh 60 s before expiry (so a 60 s token is fetched on every request),
never refresh a token without ``expires_in``, do not retry on a 401 and lock on every request.
This wrapper keeps Authlib for what it does well (client-secret encodings, token request bodies)
and owns the caching: one fetch shared by concurrent callers, a skew that scales down for
short-lived tokens, an injectable clock, and ``invalidate`` for the 401-then-refetch rule.

The methods come from :mod:`webhook_kit.oauth.client_auth`: a client secret (Basic or form),
a ``private_key_jwt`` assertion signed afresh for each token request (never per delivery), or a
client certificate (``tls_client_auth``, ``self_signed_tls_client_auth``) presented through an
SSL context of this client's own, which the webhook POST uses too (mTLS-bound tokens). With
``dpop`` set, the client holds a DPoP key and proves possession on the token request and, through
:meth:`OAuthClient.resource_headers`, on each webhook POST; a server's nonce (``DPoP-Nonce``) is
kept per origin and a ``use_dpop_nonce`` refusal is retried once with it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import re
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus, urlencode, urlsplit

import aiohttp
from authlib.oauth2.auth import ClientAuth
from authlib.oauth2.rfc6749.parameters import prepare_token_request
from joserfc.jwk import ECKey, RSAKey

from webhook_kit.delivery.guard import ForbiddenAddress
from webhook_kit.display import visible
from webhook_kit.errors import ConfigError, TokenFetchError
from webhook_kit.oauth import assertion, dpop
from webhook_kit.oauth.client_auth import (
    DEFAULT_METHOD,
    SECRET_METHODS,
    AuthMethod,
    ClientCredentials,
    parse_method,
)
from webhook_kit.oauth.dpop import DPoPKey, ProofAlgorithm
from webhook_kit.redact import scrub

log = logging.getLogger("webhook_kit.oauth")

__all__ = ["AuthMethod", "OAuthClient", "OAuthSettings", "ServerMetadata"]

#: Lifetime assumed when a token response has no ``expires_in`` (a 401 still forces a refetch).
DEFAULT_TOKEN_LIFETIME = 300.0
MAX_TOKEN_RESPONSE = 64 * 1024
MAX_TOKEN_LIFETIME = 366 * 86400.0
MAX_METADATA = 256 * 1024
#: A server's DPoP nonce is opaque but goes back in a signed claim: bound it.
_NONCE = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]{1,512}")


@dataclass(frozen=True)
class OAuthSettings:
    """One client at one token endpoint.

    The secret methods may be given flat, as before (``client_id``, ``client_secret``,
    ``auth_method``); any method may be given as ``credentials``, and the methods without a
    secret must be: then ``client_id``, ``client_secret`` and ``auth_method`` are read from it
    (left at their defaults, or equal to it).
    """

    token_url: str
    client_id: str = ""
    #: Empty for the methods without a secret.
    client_secret: str = field(default="", repr=False)
    scope: str | None = None
    audience: str | None = None
    auth_method: AuthMethod = DEFAULT_METHOD
    #: Refresh this many seconds before expiry (at most a quarter of the token's lifetime).
    skew: float = 30.0
    timeout: float = 10.0
    credentials: ClientCredentials | None = None
    #: Ask for DPoP-bound tokens (RFC 9449), proving possession of a key of this algorithm.
    dpop: ProofAlgorithm | None = None
    #: The authorization server's issuer: its metadata (RFC 8414, then OpenID discovery) says
    #: which methods the token endpoint takes, and where it is when ``token_url`` is empty; it
    #: is the assertion ``aud`` when asked.
    issuer: str | None = None
    #: RFC 8707 ``resource`` parameter of the token request.
    resource: str | None = None

    def __post_init__(self) -> None:
        c = self.credentials
        if c is None:
            parse_method(self.auth_method, name="auth_method")
            if self.auth_method not in SECRET_METHODS:
                raise ConfigError(
                    f"credentials: {self.auth_method} needs ClientCredentials "
                    "(a private key or a client certificate), not a client secret"
                )
        else:
            given = {
                "client_id": (self.client_id, "", c.client_id),
                "client_secret": (self.client_secret, "", c.secret or ""),
                "auth_method": (self.auth_method, DEFAULT_METHOD, c.method),
            }
            for name, (value, default, actual) in given.items():
                if value != default and value != actual:
                    raise ConfigError(
                        f"{name}: given apart from credentials, and different "
                        "(to change the credentials, use OAuthSettings.with_credentials)"
                    )
                # A read-only view for the readers of the flat fields (scrubbing, reports).
                object.__setattr__(self, name, actual)
        if self.dpop is not None and self.dpop not in dpop.ALGORITHMS:
            choices = ", ".join(dpop.ALGORITHMS)
            raise ConfigError(f"dpop: unsupported algorithm {self.dpop!r}; use one of {choices}")

    def with_credentials(self, **changes: Any) -> OAuthSettings:
        """These settings with their credentials changed (``secret=...``, ``method=...``): a
        plain ``dataclasses.replace`` would carry the old flat fields, which now disagree."""
        if self.credentials is None:
            flat = {"client_id": "client_id", "secret": "client_secret", "method": "auth_method"}
            return replace(self, **{flat[k]: v for k, v in changes.items()})
        credentials = replace(self.credentials, **changes)
        return replace(
            self,
            client_id="",
            client_secret="",
            auth_method=DEFAULT_METHOD,
            credentials=credentials,
        )

    @property
    def secrets(self) -> tuple[str, ...]:
        """What must never appear in a text that leaves the process."""
        c = self.credentials
        values = [self.client_secret, c.private_key if c else None]
        return tuple(v for v in values if v)


@dataclass(frozen=True)
class ServerMetadata:
    """What the client reads from the authorization server's metadata."""

    issuer: str
    token_endpoint: str | None
    #: ``None`` when the server does not say (RFC 8414 then means client_secret_basic).
    auth_methods: tuple[str, ...] | None
    dpop_algorithms: tuple[str, ...] | None
    #: RFC 8705 section 5: where a client presenting a certificate sends its token requests.
    mtls_token_endpoint: str | None = None


def check_supported(settings: OAuthSettings, metadata: ServerMetadata) -> None:
    """:class:`ConfigError` when the server's metadata says it does not take this client's
    method or DPoP algorithm (a usage error before any token request)."""
    methods = metadata.auth_methods
    if methods is not None and settings.auth_method not in methods:
        raise ConfigError(
            f"auth_method: the token endpoint does not advertise {settings.auth_method} "
            f"(token_endpoint_auth_methods_supported: {_listed(methods)})"
        )
    algorithms = metadata.dpop_algorithms
    if settings.dpop is not None and algorithms is not None and settings.dpop not in algorithms:
        raise ConfigError(
            f"dpop: the authorization server does not take {settings.dpop} proofs "
            f"(dpop_signing_alg_values_supported: {_listed(algorithms)})"
        )


def metadata_urls(issuer: str) -> list[str]:
    """RFC 8414 section 3.1 inserts the well-known segment before the issuer's path; OpenID
    Connect Discovery appends it. Both, RFC 8414 first."""
    parts = urlsplit(issuer)
    path = parts.path.rstrip("/")
    origin = f"{parts.scheme}://{parts.netloc}"
    return [
        f"{origin}/.well-known/oauth-authorization-server{path}",
        f"{origin}{path}/.well-known/openid-configuration",
    ]


@dataclass(frozen=True)
class CachedToken:
    value: str
    refresh_at: float


@dataclass(frozen=True)
class _Answer:
    status: int
    raw: bytes
    nonce: str | None


class OAuthClient:
    """Fetches and caches one client's access token; holds its TLS identity and DPoP key."""

    def __init__(
        self,
        settings: OAuthSettings,
        session: aiohttp.ClientSession,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        ca_file: Path | None = None,
        dpop_key: DPoPKey | None = None,
    ) -> None:
        self.settings = settings
        self._session = session
        self._clock = clock
        self._wall_clock = wall_clock
        self._ca_file = ca_file
        self._token: CachedToken | None = None
        self._inflight: asyncio.Future[str] | None = None
        self._prepared = False
        self._tls: ssl.SSLContext | None = None
        self._signing_key: RSAKey | ECKey | None = None
        self._metadata: ServerMetadata | None = None
        self._metadata_read = False
        #: This client's own key: accounts never share a DPoP key (nor a token).
        self.dpop_key = dpop_key or (DPoPKey.generate(settings.dpop) if settings.dpop else None)
        #: The latest DPoP nonce of each origin (the token endpoint's and the receiver's differ).
        self._nonces: dict[str, str] = {}
        #: How many token requests were sent (for benchmarks and tests).
        self.fetches = 0
        #: The last token response's ``expires_in`` when it gave a usable one.
        self.expires_in: float | None = None
        #: ``"DPoP"`` once the server bound a token to the DPoP key, else ``"Bearer"``.
        self.token_scheme = "Bearer"

    # -- the credentials, checked once -------------------------------------------------------

    def prepare(self) -> None:
        """Read and check the client certificate and the signing key; :class:`ConfigError`
        (a :class:`~webhook_kit.errors.CertificateError` for the certificate) saying what is
        wrong. Done before the first token request; call it early to fail at start-up."""
        if self._prepared:
            return
        c = self.settings.credentials
        if c is not None:
            now = dt.datetime.fromtimestamp(self._wall_clock(), dt.UTC)
            identity = c.client_identity(now=now)
            if identity is not None:
                # One context per client: a shared one would present this certificate for
                # every account, and a webhook host would see whose certificate it is.
                self._tls = identity.ssl_context(self._ca_file)
            if c.method == "private_key_jwt":
                self._signing_key = assertion.signing_key(c)
        self._prepared = True

    @property
    def tls_context(self) -> ssl.SSLContext | None:
        """The context presenting this client's certificate, or ``None`` when it has none (the
        session's own context applies). Use it for the webhook POST too: an mTLS-bound token is
        good only with its certificate."""
        self.prepare()
        return self._tls

    @property
    def token_endpoint(self) -> str:
        """The token URL: the configured one, else the issuer's metadata's (once read)."""
        if self.settings.token_url:
            return self.settings.token_url
        return (self._metadata.token_endpoint if self._metadata else None) or ""

    @property
    def _request_url(self) -> str:
        """Where the token request goes: the metadata's mTLS alias when this client presents a
        certificate (RFC 8705 section 5), else the token endpoint (the assertion's ``aud``)."""
        alias = self._metadata.mtls_token_endpoint if self._metadata else None
        return alias if alias and self._tls is not None else self.token_endpoint

    # -- the cache -----------------------------------------------------------------------------

    def cached(self) -> str | None:
        """The cached token while it is fresh, without awaiting anything (the hot path)."""
        cached = self._token
        if cached is not None and self._clock() < cached.refresh_at:
            return cached.value
        return None

    async def token(self) -> str:
        cached = self._token
        if cached is not None and self._clock() < cached.refresh_at:
            return cached.value
        if self._inflight is None:
            self._inflight = asyncio.ensure_future(self._fetch())
            self._inflight.add_done_callback(self._clear_inflight)
        # shield: a cancelled caller must not cancel the fetch the others are waiting for.
        return await asyncio.shield(self._inflight)

    def _clear_inflight(self, future: asyncio.Future[str]) -> None:
        self._inflight = None
        if not future.cancelled():
            future.exception()  # mark retrieved; each waiter gets it through its own await

    def invalidate(self, token: str | None = None) -> None:
        """Drop the cached token (only if it is still ``token``, when given)."""
        if self._token is not None and (token is None or self._token.value == token):
            self._token = None

    # -- the resource request ----------------------------------------------------------------

    def resource_headers(self, token: str, method: str, url: str) -> dict[str, str]:
        """``Authorization`` (and ``DPoP``) for a request with ``token``: a proof with ``ath``
        and the receiver's latest nonce when the token is DPoP-bound, else ``Bearer``."""
        if self.token_scheme != "DPoP":
            return {"Authorization": f"Bearer {token}"}
        return {"Authorization": f"DPoP {token}", "DPoP": self.proof(method, url, token)}

    def proof(self, method: str, url: str, access_token: str | None = None) -> str:
        """A DPoP proof for one request, with the origin's latest nonce (``ath`` when given)."""
        if self.dpop_key is None:
            raise ConfigError("dpop: this client has no DPoP key (set OAuthSettings.dpop)")
        return dpop.make_proof(
            self.dpop_key,
            method=method,
            url=url,
            access_token=access_token,
            nonce=self._nonces.get(_origin(url)),
            clock=self._wall_clock,
        )

    def note_nonce(self, url: str, nonce: str | None) -> bool:
        """Keep a server's ``DPoP-Nonce`` for its origin; whether it was new and usable."""
        if nonce is None or not _NONCE.fullmatch(nonce):
            return False
        origin = _origin(url)
        if self._nonces.get(origin) == nonce:
            return False
        self._nonces[origin] = nonce
        return True

    # -- the token request -------------------------------------------------------------------

    async def _fetch(self) -> str:
        started = self._clock()
        try:
            self.prepare()
        except ConfigError as exc:
            raise self._error(str(exc)) from exc
        metadata = await self.metadata()
        if metadata is not None:
            try:
                check_supported(self.settings, metadata)
            except ConfigError as exc:
                raise self._error(str(exc)) from exc
        if not self.token_endpoint:
            raise self._error(
                "no token URL: give one, or an issuer whose metadata names its token_endpoint"
            )
        self.fetches += 1
        answer = await self._post()
        # RFC 9449 section 8 says 400; some servers answer 401 (as a resource server would).
        nonce_refusal = answer.status in (400, 401) and answer.nonce is not None
        if nonce_refusal and self.dpop_key is not None:
            payload = _json_object(answer.raw)
            fresh = self.note_nonce(self._request_url, answer.nonce)
            if fresh and payload and payload.get("error") == dpop.USE_NONCE:
                # RFC 9449 section 8: once, with the server's nonce (and a fresh assertion).
                answer = await self._post()
        self.note_nonce(self._request_url, answer.nonce)
        return self._accept(answer.status, answer.raw, started)

    def _request(self) -> tuple[str, dict[str, str], str]:
        """The token request: URL, headers and form body, client authentication applied."""
        s = self.settings
        extra: dict[str, Any] = {}
        if s.scope:
            extra["scope"] = s.scope
        if s.audience:
            extra["audience"] = s.audience
        if s.resource:
            extra["resource"] = s.resource
        body = prepare_token_request("client_credentials", **extra)
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "Accept": "application/json",
        }
        if self.dpop_key is not None:
            headers["DPoP"] = self.proof("POST", self._request_url)
        if s.auth_method in SECRET_METHODS:
            return self._secret_auth(headers, body)
        form = {"client_id": s.client_id}
        if s.auth_method == "private_key_jwt":
            form = assertion.assertion_form(self._credentials(), self._assertion())
        return self._request_url, headers, f"{body}&{urlencode(form)}"

    def _secret_auth(self, headers: dict[str, str], body: str) -> tuple[str, dict[str, str], str]:
        s = self.settings
        secret = s.client_secret
        if s.auth_method == "client_secret_basic":
            # RFC 6749 section 2.3.1: form-encode both before Basic; Authlib does not, so a
            # secret with '+', '%' or ':' would fail against a server that follows the RFC.
            auth = ClientAuth(
                quote_plus(s.client_id, safe=""), quote_plus(secret, safe=""), s.auth_method
            )
        else:
            auth = ClientAuth(s.client_id, secret, s.auth_method)
        url, headers, body = auth.prepare("POST", self._request_url, headers, body)
        return url, headers, body

    def _credentials(self) -> ClientCredentials:
        c = self.settings.credentials
        assert c is not None  # OAuthSettings requires credentials for every non-secret method
        return c

    def _assertion(self) -> str:
        """A fresh RFC 7523 assertion: one per token request (a server remembers each jti)."""
        c = self._credentials()
        issuer = self.settings.issuer or (self._metadata.issuer if self._metadata else None)
        audience = c.audience_for(token_endpoint=self.token_endpoint, issuer=issuer)
        return assertion.sign_client_assertion(
            c, audience=audience, clock=self._wall_clock, key=self._signing_key
        )

    async def _post(self) -> _Answer:
        """POST the token request; the status, at most ``MAX_TOKEN_RESPONSE + 1`` bytes and the
        server's DPoP nonce."""
        s = self.settings
        try:
            url, headers, body = self._request()
        except ConfigError as exc:
            raise self._error(str(exc)) from exc
        extra: dict[str, Any] = {} if self._tls is None else {"ssl": self._tls}
        try:
            async with self._session.post(
                url,
                data=body.encode(),
                headers=headers,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=s.timeout),
                **extra,
            ) as response:
                raw = await response.content.read(MAX_TOKEN_RESPONSE + 1)
                return _Answer(response.status, raw, response.headers.get("DPoP-Nonce"))
        except TimeoutError as exc:
            raise self._error(f"token request timed out after {s.timeout:g}s") from exc
        except aiohttp.ClientSSLError as exc:
            raise self._error(f"TLS error at the token URL: {_short(exc)}") from exc
        except aiohttp.ClientConnectorError as exc:
            if isinstance(exc.os_error, ForbiddenAddress):
                raise self._error(f"token URL {_short(exc.os_error)}") from exc
            raise self._error(f"token URL unreachable: {_short(exc)}") from exc
        except aiohttp.ClientError as exc:
            raise self._error(f"token URL unreachable: {_short(exc)}") from exc

    def _accept(self, status: int, raw: bytes, started: float) -> str:
        """The token from the endpoint's answer (cached), or a TokenFetchError saying why not."""
        s = self.settings
        if 300 <= status < 400:
            raise self._error(f"token endpoint redirected ({status}); redirects are not followed")
        payload = _json_object(raw)
        if status != 200:
            code = error_code(payload.get("error") if payload else None)
            description = error_description(payload.get("error_description") if payload else None)
            detail = f" ({code})" if code else ""
            raise self._error(
                f"token endpoint answered {status}{detail}", error=code, description=description
            )
        if payload is None or not isinstance(payload.get("access_token"), str):
            raise self._error("token response is not JSON with an access_token")
        scheme = self._scheme(payload.get("token_type"))
        if not _ACCESS_TOKEN.fullmatch(payload["access_token"]):
            # It goes into an Authorization header: CR, LF or NUL there would inject headers.
            raise self._error(
                "the access_token has characters a bearer token may not carry (RFC 6750 b64token)"
            )
        lifetime = _lifetime(payload.get("expires_in"))
        skew = min(s.skew, lifetime / 4)
        value: str = payload["access_token"]
        self._token = CachedToken(value, started + lifetime - skew)
        self.token_scheme = scheme
        self.expires_in = lifetime if "expires_in" in payload else None
        log.info(
            "%s token for %s from %s, valid %.0f s",
            scheme,
            s.client_id,
            self.token_endpoint,
            lifetime,
        )
        return value

    def _scheme(self, token_type: object) -> str:
        """``Bearer`` or ``DPoP`` (RFC 9449 section 5: only when this client asked for DPoP; a
        server that ignores DPoP may still answer Bearer, usable as such)."""
        kind = str(token_type or "").lower()
        if kind == "bearer":
            return "Bearer"
        if kind == "dpop" and self.dpop_key is not None:
            return "DPoP"
        shown = visible(kind[:40]) if kind else "missing"
        expected = "Bearer or DPoP" if self.dpop_key is not None else "Bearer"
        raise self._error(f"token_type '{shown}' is not {expected}")

    # -- the authorization server's metadata ---------------------------------------------------

    async def metadata(self) -> ServerMetadata | None:
        """The server's metadata (read once), or ``None`` when it publishes none.

        Read when the issuer is known, or for a method without a secret or a client with a
        certificate (the origin of the token URL is tried as the issuer): it tells a method the
        endpoint does not take before a refused request does, and the mTLS alias of the token
        endpoint. A secret without an issuer or a certificate skips it, as before.
        """
        if self._metadata_read:
            return self._metadata
        s = self.settings
        issuer = s.issuer
        plain = s.auth_method in SECRET_METHODS and self._tls is None
        if (issuer is None and plain) or not (issuer or s.token_url):
            self._metadata_read = True
            return None
        candidates = [issuer] if issuer else [_origin(s.token_url)]
        for candidate in candidates:
            for url in metadata_urls(candidate):
                document = await self._get_json(url)
                if document is None or document.get("issuer") != candidate:
                    continue  # RFC 8414 section 3.3: another issuer's metadata is not used
                # Without an explicit issuer, the document counts only if it names this endpoint.
                metadata = _parse_metadata(candidate, document)
                named = (metadata.token_endpoint, metadata.mtls_token_endpoint)
                if issuer is None and s.token_url not in named:
                    continue
                if not s.token_url and not _https(metadata.token_endpoint or ""):
                    log.info("metadata at %s names no HTTPS token_endpoint", visible(url))
                    continue
                self._metadata = metadata
                break
            if self._metadata is not None:
                break
        self._metadata_read = True
        return self._metadata

    async def _get_json(self, url: str) -> dict[str, Any] | None:
        extra: dict[str, Any] = {} if self._tls is None else {"ssl": self._tls}
        try:
            async with self._session.get(
                url,
                headers={"Accept": "application/json"},
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=self.settings.timeout),
                **extra,
            ) as response:
                if response.status != 200:
                    return None
                raw = await response.content.read(MAX_METADATA + 1)
        except (TimeoutError, aiohttp.ClientError) as exc:
            log.debug("no metadata at %s: %s", visible(url), _short(exc))
            return None
        if len(raw) > MAX_METADATA:
            return None
        try:
            value = json.loads(raw)
        except (ValueError, RecursionError):
            return None
        return value if isinstance(value, dict) else None

    def _error(
        self, reason: str, *, error: str | None = None, description: str | None = None
    ) -> TokenFetchError:
        secrets = self.settings.secrets
        return TokenFetchError(
            scrub(reason, secrets),
            error=error,
            description=scrub(description, secrets) if description else None,
        )


def _parse_metadata(issuer: str, document: Mapping[str, Any]) -> ServerMetadata:
    token_endpoint = document.get("token_endpoint")
    aliases = document.get("mtls_endpoint_aliases")
    alias = aliases.get("token_endpoint") if isinstance(aliases, dict) else None
    return ServerMetadata(
        issuer=issuer,
        token_endpoint=token_endpoint if isinstance(token_endpoint, str) else None,
        auth_methods=_strings(document.get("token_endpoint_auth_methods_supported")),
        dpop_algorithms=_strings(document.get("dpop_signing_alg_values_supported")),
        mtls_token_endpoint=alias if isinstance(alias, str) and _https(alias) else None,
    )


def _https(url: str) -> bool:
    return url.startswith("https://")


def _strings(value: object) -> tuple[str, ...] | None:
    if not isinstance(value, list):
        return None
    return tuple(v for v in value if isinstance(v, str))


def _listed(values: tuple[str, ...]) -> str:
    return ", ".join(visible(v[:60]) for v in values[:20]) or "none"


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}"


#: RFC 6749 section 5.2: error = 1*( %x20-21 / %x23-5B / %x5D-7E ). Anything else is not an
#: error code but remote text that could carry terminal escapes or markup.
_ERROR_CODE = re.compile(r"[\x20\x21\x23-\x5b\x5d-\x7e]{1,64}")


#: RFC 6750 section 2.1 b64token, with a generous length bound.
_ACCESS_TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]{1,16384}=*")


def error_code(value: object) -> str | None:
    """A token endpoint's ``error``, only when it is one RFC 6749 allows."""
    if isinstance(value, str) and _ERROR_CODE.fullmatch(value):
        return value
    return None


def error_description(value: object) -> str | None:
    """A token endpoint's ``error_description``, printable and short."""
    if not isinstance(value, str) or not value:
        return None
    return visible(value[:300])


def _lifetime(expires_in: object) -> float:
    if isinstance(expires_in, bool) or not isinstance(expires_in, (int, float, str)):
        return DEFAULT_TOKEN_LIFETIME
    try:
        value = float(expires_in)
    except (ValueError, OverflowError):
        return DEFAULT_TOKEN_LIFETIME
    # NaN, infinity and absurd lifetimes (a hostile "1" followed by 400 zeros) are not lifetimes.
    return value if 0 < value <= MAX_TOKEN_LIFETIME else DEFAULT_TOKEN_LIFETIME


def _json_object(raw: bytes) -> dict[str, Any] | None:
    if len(raw) > MAX_TOKEN_RESPONSE:
        return None
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):  # any shape a hostile endpoint can send
        return None
    return value if isinstance(value, dict) else None


def _short(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return visible(text[:200])
