"""One delivery attempt over HTTPS: token, POST, classification. No retries here (beyond the
one-time answers to a 401: a fresh token, or a receiver's DPoP nonce).

aiohttp, not httpx: on this machine aiohttp sustained ~7.7k TLS POSTs/s with 16 connections where
httpx 0.28's pool collapsed under concurrency (0.43k/s at 16 connections, a p99 over 2 s at 64;
encode/httpx#3215). Redirects are never followed and TLS is always verified (the session's
connector carries the SSL context; a client with a certificate brings its own, per target, which
trusts the same CAs).

A DPoP-bound token goes as ``Authorization: DPoP`` with a proof per request (RFC 9449 section 7:
``htm``, ``htu``, ``ath`` and the receiver's latest nonce); a receiver's ``use_dpop_nonce`` 401 is
answered once with a proof carrying the nonce it sent.
"""

from __future__ import annotations

import email.utils
import functools
import logging
import re
import socket
import ssl
import time
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple
from urllib.parse import urlsplit

import aiohttp

from webhook_kit._version import __version__
from webhook_kit.delivery.guard import AddressPolicy, ForbiddenAddress, socket_factory
from webhook_kit.delivery.outcome import AttemptResult, Outcome
from webhook_kit.display import visible
from webhook_kit.errors import TokenFetchError
from webhook_kit.oauth.client import OAuthClient, error_code
from webhook_kit.oauth.dpop import USE_NONCE
from webhook_kit.storage.rows import encode_body
from webhook_kit.timing import elapsed_ms

log = logging.getLogger("webhook_kit.transport")

#: At most this much of a receiver's answer is read (a huge body must not exhaust memory).
MAX_RESPONSE_BYTES = 64 * 1024
USER_AGENT = f"webhook-kit/{__version__}"


def make_session(
    ssl_context: ssl.SSLContext,
    *,
    limit: int = 64,
    limit_per_host: int = 0,
    policy: AddressPolicy | None = None,
) -> aiohttp.ClientSession:
    """A session for deliveries: verifying TLS, keep-alive, no cookies, no env proxies.

    ``policy`` says which addresses it may connect to, checked on the address actually connected
    to (see :mod:`guard`); ``None`` checks nothing (the caller's user chose the URL).
    """
    extra: dict[str, Any] = {} if policy is None else {"socket_factory": socket_factory(policy)}
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
    ssl_context: ssl.SSLContext | None = None,
) -> AttemptResult:
    """One POST; ``token=None`` sends no Authorization header (certify's negative checks).

    ``extra_headers`` may replace the ``Authorization`` header (a DPoP-bound token's, from
    :meth:`OAuthClient.resource_headers`); ``ssl_context`` presents a client certificate.
    """
    auth = None if token is None else {"Authorization": f"Bearer {token}"}
    sent = await _post(
        session,
        url,
        body,
        auth=auth,
        event_id=event_id,
        timeout=timeout,
        content_type=content_type,
        extra_headers=extra_headers,
        ssl_context=ssl_context,
    )
    return sent.result


class _Sent(NamedTuple):
    result: AttemptResult
    #: The receiver's ``DPoP-Nonce`` header, whatever the status.
    nonce: str | None = None
    #: The ``error`` of a 401's ``WWW-Authenticate`` (``use_dpop_nonce``, ``invalid_token``...).
    challenge: str | None = None


async def _post(
    session: aiohttp.ClientSession,
    url: str,
    body: bytes,
    *,
    auth: Mapping[str, str] | None,
    event_id: str,
    timeout: float,
    content_type: str = "application/json",
    extra_headers: Mapping[str, str] | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> _Sent:
    headers = {
        "Content-Type": content_type,
        "User-Agent": USER_AGENT,
        "Webhook-Id": event_id,
        "Webhook-Timestamp": str(int(time.time())),
    }
    if auth:
        headers.update(auth)
    if extra_headers:
        headers.update(extra_headers)
    # ssl= per request: a client certificate goes only to its own target's connections.
    options: dict[str, Any] = {} if ssl_context is None else {"ssl": ssl_context}
    started = time.perf_counter()
    try:
        async with session.post(
            url,
            data=body,
            headers=headers,
            allow_redirects=False,
            timeout=deadline(timeout),
            **options,
        ) as response:
            status = response.status
            await response.content.read(MAX_RESPONSE_BYTES)
    except TimeoutError:
        return _Sent(
            AttemptResult("timeout", f"no complete answer within {timeout:g}s", elapsed_ms(started))
        )
    except (aiohttp.ClientError, OSError, ValueError) as exc:
        outcome, reason = network_failure(exc, url)
        return _Sent(AttemptResult(outcome, reason, elapsed_ms(started)))
    duration = elapsed_ms(started)
    nonce = response.headers.get("DPoP-Nonce")
    if 200 <= status < 300:
        return _Sent(AttemptResult("success", str(status), duration, status), nonce)
    # Headers stay readable after the response is released; only failures need them.
    if 300 <= status < 400:
        # Remote text: escape sequences, lone surrogates (from a Location that is not UTF-8)
        # and newlines are shown, never acted on, stored or printed as they came.
        location = response.headers.get("Location")
        where = f" to {visible(location[:200])}" if location else ""
        return _Sent(
            AttemptResult("redirect", f"{status} redirect{where} not followed", duration, status)
        )
    if status == 401:
        challenge = _challenge_error(response.headers.getall("WWW-Authenticate", ()))
        # A DPoP refusal says which check failed; a bearer one keeps its one wording.
        shown = f" ({challenge})" if challenge and "DPoP" in headers else ""
        reason = f"401 token refused by the receiver{shown}"
        return _Sent(AttemptResult("unauthorized", reason, duration, status), nonce, challenge)
    wait = parse_retry_after(response.headers.get("Retry-After")) if status in (429, 503) else None
    return _Sent(AttemptResult("http_error", f"HTTP {status}", duration, status, retry_after=wait))


_ERROR_PARAM = re.compile(r'(?:^|[\s,])error\s*=\s*"?([^",\s]{1,64})', re.IGNORECASE)


def _challenge_error(values: Iterable[str]) -> str | None:
    """The ``error`` parameter of a ``WWW-Authenticate`` challenge, if it is a valid code."""
    for value in values:
        match = _ERROR_PARAM.search(value[:2000])
        if match:
            return error_code(match.group(1))
    return None


async def _authorized_post(
    session: aiohttp.ClientSession,
    oauth: OAuthClient,
    url: str,
    body: bytes,
    token: str,
    *,
    event_id: str,
    timeout: float,
) -> AttemptResult:
    """POST with ``token`` as the client presents it (Bearer, or DPoP with a proof) through its
    own TLS context; a ``use_dpop_nonce`` refusal is answered once with the nonce it brought."""
    tls = oauth.tls_context
    sent = await _post(
        session,
        url,
        body,
        auth=oauth.resource_headers(token, "POST", url),
        event_id=event_id,
        timeout=timeout,
        ssl_context=tls,
    )
    if oauth.token_scheme != "DPoP":
        return sent.result
    fresh = oauth.note_nonce(url, sent.nonce)
    if sent.challenge != USE_NONCE or not fresh:
        return sent.result
    retried = await _post(
        session,
        url,
        body,
        auth=oauth.resource_headers(token, "POST", url),
        event_id=event_id,
        timeout=timeout,
        ssl_context=tls,
    )
    oauth.note_nonce(url, retried.nonce)
    return retried.result


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

    ``body`` is the notification as encoded once by the caller (see :func:`encode`). The client's
    certificate (if any) and DPoP key (if any) come with ``oauth``.
    """
    started = time.perf_counter()
    try:
        token = oauth.cached() or await oauth.token()
    except TokenFetchError as exc:
        return AttemptResult("token_error", token_failure(exc, oauth), elapsed_ms(started))
    except ValueError as exc:  # e.g. a secret client_secret_basic cannot encode (not Latin-1)
        return AttemptResult("token_error", _unsendable(exc), elapsed_ms(started))
    result = await _authorized_post(
        session, oauth, url, body, token, event_id=event_id, timeout=timeout
    )
    if result.outcome != "unauthorized":
        return result
    oauth.invalidate(token)
    try:
        token = await oauth.token()
    except TokenFetchError as exc:
        return AttemptResult("token_error", token_failure(exc, oauth), elapsed_ms(started))
    except ValueError as exc:  # e.g. a secret client_secret_basic cannot encode (not Latin-1)
        return AttemptResult("token_error", _unsendable(exc), elapsed_ms(started))
    retried = await _authorized_post(
        session, oauth, url, body, token, event_id=event_id, timeout=timeout
    )
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


def token_failure(exc: TokenFetchError, oauth: OAuthClient) -> str:
    """A token fetch error as shown: a connection failure in :func:`network_failure`'s words
    (the token URL is as freely chosen as the webhook URL), anything else as the client worded
    it (already free of the secret)."""
    cause = exc.__cause__
    if isinstance(cause, (aiohttp.ClientError, OSError)) and not isinstance(cause, TimeoutError):
        outcome, reason = network_failure(cause, oauth.token_endpoint)
        where = "TLS error at the token URL" if outcome == "tls_error" else "token URL unreachable"
        return f"{where}: {reason}"
    return str(exc)


def _unsendable(exc: ValueError) -> str:
    return f"the client credentials cannot be sent ({type(exc).__name__})"


def network_failure(exc: BaseException, url: str) -> tuple[Outcome, str]:
    """The failure class and the reason for an error raised before a complete answer.

    Whoever can choose the URL reads the reason (the provider API shows it to its clients), so it
    says no more than a sender needs: a refused, reset, unreachable or non-TLS port all read the
    same, and no operating-system or remote text is passed on. Otherwise the answers would tell
    closed, open, TLS and plain-HTTP ports apart: a port scanner. An untrusted certificate keeps
    its own class and OpenSSL's (local) reason, because the endpoint's owner must fix it. The
    precise cause goes to the debug log of whoever runs the kit.
    """
    where = _host_port(url)
    log.debug("delivery to %s failed: %s", where, visible(f"{type(exc).__name__}: {exc}"[:300]))
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        cert_error = exc.certificate_error
        reason = getattr(cert_error, "verify_message", None) or type(cert_error).__name__
        return "tls_error", f"certificate not trusted: {visible(str(reason)[:200])}"
    if isinstance(exc, aiohttp.ClientConnectorError) and isinstance(exc.os_error, ForbiddenAddress):
        return "connect_error", visible(str(exc.os_error)[:300])
    if isinstance(exc, ForbiddenAddress):
        return "connect_error", visible(str(exc)[:300])
    if isinstance(exc, (aiohttp.ClientConnectorDNSError, socket.gaierror)):
        return "connect_error", f"cannot resolve {where}"
    if isinstance(exc, (aiohttp.ClientConnectorError, aiohttp.ClientSSLError)) or (
        isinstance(exc, OSError) and not isinstance(exc, aiohttp.ClientError)
    ):
        return "connect_error", f"{CONNECT_FAILED} {where}"
    return "connect_error", f"connection to {where} failed before a complete HTTP answer"


#: One reason for every way a connection can fail before TLS is up (see network_failure).
CONNECT_FAILED = "no TLS connection (refused, unreachable, reset or not TLS) to"


def _host_port(url: str) -> str:
    try:
        parts = urlsplit(url)
        host, port = parts.hostname or "?", parts.port or 443
    except ValueError:
        return "the receiver"
    return visible(f"[{host}]:{port}" if ":" in host else f"{host}:{port}")
