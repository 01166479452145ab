"""One delivery attempt over HTTPS: token, POST, classification. No retries here.

aiohttp, not httpx: on this machine aiohttp sustained ~7.7k TLS POSTs/s with 16 connections where
httpx 0.28's pool collapsed under concurrency (see PERFORMANCE.md). Redirects are never followed
and TLS is always verified (the session's connector carries the SSL context).
"""

from __future__ import annotations

import email.utils
import functools
import ssl
import time
from collections.abc import Mapping
from typing import Any

import aiohttp

from webhook_kit._version import __version__
from webhook_kit.delivery.outcome import AttemptResult
from webhook_kit.delivery.store import encode_body
from webhook_kit.errors import TokenFetchError
from webhook_kit.guard import ForbiddenAddress, public_only_socket
from webhook_kit.oauth.client import OAuthClient
from webhook_kit.timing import elapsed_ms

#: At most this much of a receiver's answer is read (a huge body must not exhaust memory).
MAX_RESPONSE_BYTES = 64 * 1024
USER_AGENT = f"webhook-kit/{__version__}"


def make_session(
    ssl_context: ssl.SSLContext,
    *,
    limit: int = 64,
    limit_per_host: int = 0,
    public_only: bool = False,
) -> aiohttp.ClientSession:
    """A session for deliveries: verifying TLS, keep-alive, no cookies, no env proxies.

    ``public_only`` refuses connections to loopback, private, link-local, CGNAT and metadata
    addresses, checked on the address actually connected to (see :mod:`guard`).
    """
    extra: dict[str, Any] = {"socket_factory": public_only_socket} if public_only else {}
    connector = aiohttp.TCPConnector(
        ssl=ssl_context,
        limit=limit,
        limit_per_host=limit_per_host,
        enable_cleanup_closed=False,
        **extra,
    )
    return aiohttp.ClientSession(
        connector=connector,
        cookie_jar=aiohttp.DummyCookieJar(),
        trust_env=False,
        auto_decompress=True,
    )


def encode(notification: Mapping[str, Any]) -> bytes:
    """Compact UTF-8 JSON, exactly as the store keeps it."""
    return encode_body(notification).encode("utf-8")


@functools.lru_cache(maxsize=16)
def deadline(timeout: float) -> aiohttp.ClientTimeout:
    """The whole-request deadline (shared: a ClientTimeout is immutable)."""
    return aiohttp.ClientTimeout(total=timeout)


async def post_once(
    session: aiohttp.ClientSession,
    url: str,
    body: bytes,
    *,
    token: str | None,
    event_id: str,
    timeout: float,
    content_type: str = "application/json",
    extra_headers: Mapping[str, str] | None = None,
) -> AttemptResult:
    """One POST; ``token=None`` sends no Authorization header (certify's negative checks)."""
    headers = {
        "Content-Type": content_type,
        "User-Agent": USER_AGENT,
        "Webhook-Id": event_id,
        "Webhook-Timestamp": str(int(time.time())),
    }
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    if extra_headers:
        headers.update(extra_headers)
    started = time.perf_counter()
    try:
        async with session.post(
            url,
            data=body,
            headers=headers,
            allow_redirects=False,
            timeout=deadline(timeout),
        ) as response:
            status = response.status
            await response.content.read(MAX_RESPONSE_BYTES)
    except TimeoutError:
        return AttemptResult(
            "timeout", f"no complete answer within {timeout:g}s", elapsed_ms(started)
        )
    except aiohttp.ClientConnectorCertificateError as exc:
        return AttemptResult(
            "tls_error", f"certificate not trusted: {_cert_reason(exc)}", elapsed_ms(started)
        )
    except aiohttp.ClientSSLError as exc:
        return AttemptResult(
            "tls_error", f"TLS handshake failed: {_short(exc)}", elapsed_ms(started)
        )
    except aiohttp.ClientConnectorError as exc:
        if isinstance(exc.os_error, ForbiddenAddress):
            return AttemptResult("connect_error", _short(exc.os_error), elapsed_ms(started))
        return AttemptResult(
            "connect_error", f"cannot connect: {_short(exc.os_error)}", elapsed_ms(started)
        )
    except (aiohttp.ClientError, OSError) as exc:
        return AttemptResult(
            "connect_error", f"connection failed: {_short(exc)}", elapsed_ms(started)
        )
    duration = elapsed_ms(started)
    if 200 <= status < 300:
        return AttemptResult("success", str(status), duration, status)
    # Headers stay readable after the response is released; only failures need them.
    if 300 <= status < 400:
        location = response.headers.get("Location")
        where = f" to {location[:200]}" if location else ""
        return AttemptResult("redirect", f"{status} redirect{where} not followed", duration, status)
    if status == 401:
        return AttemptResult("unauthorized", "401 token refused by the receiver", duration, status)
    wait = parse_retry_after(response.headers.get("Retry-After")) if status in (429, 503) else None
    return AttemptResult("http_error", f"HTTP {status}", duration, status, retry_after=wait)


async def deliver(
    session: aiohttp.ClientSession,
    oauth: OAuthClient,
    url: str,
    body: bytes,
    *,
    event_id: str,
    timeout: float,
) -> AttemptResult:
    """Token, POST; on a 401 drop the token, fetch a new one and POST once more.

    Token errors arrive already scrubbed of the secret (``OAuthClient`` scrubs where it words them).

    ``body`` is the notification as encoded once by the caller (see :func:`encode`).
    """
    started = time.perf_counter()
    try:
        token = oauth.cached() or await oauth.token()
    except TokenFetchError as exc:
        return AttemptResult("token_error", str(exc), elapsed_ms(started))
    result = await post_once(session, url, body, token=token, event_id=event_id, timeout=timeout)
    if result.outcome != "unauthorized":
        return result
    oauth.invalidate(token)
    try:
        token = await oauth.token()
    except TokenFetchError as exc:
        return AttemptResult("token_error", str(exc), elapsed_ms(started))
    retried = await post_once(session, url, body, token=token, event_id=event_id, timeout=timeout)
    return AttemptResult(
        retried.outcome,
        retried.reason + ("" if retried.ok else " (after a token refresh)"),
        elapsed_ms(started),
        retried.http_status,
        retried.retry_after,
        token_refreshed=True,
    )


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or HTTP-date), else ``None``."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - time.time())


def _cert_reason(exc: aiohttp.ClientConnectorCertificateError) -> str:
    cert_error = exc.certificate_error
    reason = getattr(cert_error, "verify_message", None) or str(cert_error)
    return _short(reason)


def _short(value: object) -> str:
    text = str(value) or type(value).__name__
    return text[:200]
