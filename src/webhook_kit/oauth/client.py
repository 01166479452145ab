"""Client credentials for senders, through Authlib's client authentication, with a token cache.

Authlib's own clients refresh 60 s before expiry (so a 60 s token is fetched on every request),
never refresh a token without ``expires_in``, do not retry on a 401 and lock on every request.
This wrapper keeps Authlib for what it does well (client authentication encodings, token request
bodies) and owns the caching: one fetch shared by concurrent callers, a skew that scales down for
short-lived tokens, an injectable clock, and ``invalidate`` for the 401-then-refetch rule.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import quote_plus

import aiohttp
from authlib.oauth2.auth import ClientAuth
from authlib.oauth2.rfc6749.parameters import prepare_token_request

from webhook_kit.delivery.guard import ForbiddenAddress
from webhook_kit.display import visible
from webhook_kit.errors import TokenFetchError
from webhook_kit.redact import scrub

log = logging.getLogger("webhook_kit.oauth")

AuthMethod = Literal["client_secret_basic", "client_secret_post"]
#: Lifetime assumed when a token response has no ``expires_in`` (a 401 still forces a refetch).
DEFAULT_TOKEN_LIFETIME = 300.0
MAX_TOKEN_RESPONSE = 64 * 1024
MAX_TOKEN_LIFETIME = 366 * 86400.0


@dataclass(frozen=True)
class OAuthSettings:
    token_url: str
    client_id: str
    client_secret: str = field(repr=False)
    scope: str | None = None
    audience: str | None = None
    auth_method: AuthMethod = "client_secret_basic"
    #: Refresh this many seconds before expiry (at most a quarter of the token's lifetime).
    skew: float = 30.0
    timeout: float = 10.0


@dataclass(frozen=True)
class CachedToken:
    value: str
    refresh_at: float


class OAuthClient:
    """Fetches and caches one client's access token."""

    def __init__(
        self,
        settings: OAuthSettings,
        session: aiohttp.ClientSession,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self._session = session
        self._clock = clock
        self._token: CachedToken | None = None
        self._inflight: asyncio.Future[str] | None = None
        #: How many token requests were sent (for benchmarks and tests).
        self.fetches = 0
        #: The last token response's ``expires_in`` when it gave a usable one.
        self.expires_in: float | None = None

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

    async def _fetch(self) -> str:
        started = self._clock()
        self.fetches += 1
        status, raw = await self._post()
        return self._accept(status, raw, started)

    def _request(self) -> tuple[str, dict[str, str], str]:
        """The token request: URL, headers and form body, client authentication applied."""
        s = self.settings
        extra: dict[str, Any] = {}
        if s.scope:
            extra["scope"] = s.scope
        if s.audience:
            extra["audience"] = s.audience
        body = prepare_token_request("client_credentials", **extra)
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "Accept": "application/json",
        }
        if s.auth_method == "client_secret_basic":
            # RFC 6749 section 2.3.1: form-encode both before Basic; Authlib does not, so a
            # secret with '+', '%' or ':' would fail against a server that follows the RFC.
            auth = ClientAuth(
                quote_plus(s.client_id, safe=""),
                quote_plus(s.client_secret, safe=""),
                s.auth_method,
            )
        else:
            auth = ClientAuth(s.client_id, s.client_secret, s.auth_method)
        url, headers, body = auth.prepare("POST", s.token_url, headers, body)
        return url, headers, body

    async def _post(self) -> tuple[int, bytes]:
        """POST the token request; the status and at most ``MAX_TOKEN_RESPONSE + 1`` bytes."""
        s = self.settings
        url, headers, body = self._request()
        try:
            async with self._session.post(
                url,
                data=body.encode(),
                headers=headers,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=s.timeout),
            ) as response:
                return response.status, await response.content.read(MAX_TOKEN_RESPONSE + 1)
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
        token_type = str(payload.get("token_type", "")).lower()
        if token_type != "bearer":
            shown = visible(token_type[:40]) if token_type else "missing"
            raise self._error(f"token_type '{shown}' is not Bearer")
        if not _ACCESS_TOKEN.fullmatch(payload["access_token"]):
            # It goes into an Authorization header: CR, LF or NUL there would inject headers.
            raise self._error(
                "the access_token has characters a bearer token may not carry (RFC 6750 b64token)"
            )
        lifetime = _lifetime(payload.get("expires_in"))
        skew = min(s.skew, lifetime / 4)
        value: str = payload["access_token"]
        self._token = CachedToken(value, started + lifetime - skew)
        self.expires_in = lifetime if "expires_in" in payload else None
        log.info("token for %s from %s, valid %.0f s", s.client_id, s.token_url, lifetime)
        return value

    def _error(
        self, reason: str, *, error: str | None = None, description: str | None = None
    ) -> TokenFetchError:
        secrets = [self.settings.client_secret]
        return TokenFetchError(
            scrub(reason, secrets),
            error=error,
            description=scrub(description, secrets) if description else None,
        )


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
