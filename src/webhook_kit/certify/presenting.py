"""How certify presents a token: as the sender does (``Bearer``, or ``DPoP`` with a proof for
this request, over a connection with the client's certificate), or with one part of that
changed, for the checks that a receiver refuses a token away from its sender.

A receiver's ``use_dpop_nonce`` refusal is answered once with the nonce it sent (RFC 9449
section 8), so that a nonce-requiring receiver is judged on the request itself.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from webhook_kit.certify.checks.oauth_judges import Answer, challenge_params
from webhook_kit.certify.context import Context
from webhook_kit.delivery import transport
from webhook_kit.display import visible
from webhook_kit.oauth.client import OAuthClient
from webhook_kit.oauth.dpop import USE_NONCE


@dataclass(frozen=True)
class Presentation:
    """The headers that carry a token (``Authorization``, ``DPoP``) and the TLS context of the
    connection (``None``: the session's own, which presents no client certificate)."""

    headers: Mapping[str, str] = field(default_factory=dict)
    tls: ssl.SSLContext | None = None
    #: ``tls`` presents a certificate the receiver was never told of: a connection it closes
    #: before answering is its TLS refusing the certificate (TLS 1.3 refuses a client
    #: certificate after the client's side of the handshake is done: an alert, or a close).
    foreign_certificate: bool = False


#: Made again for a retry with the receiver's nonce: a proof is good once.
Build = Callable[[], Presentation]


def as_sender(client: OAuthClient | None, token: str | None, url: str) -> Presentation:
    """``token`` as the sender presents it (no ``Authorization`` for ``None``); the client's
    certificate is presented either way, so only the token differs between checks."""
    if client is None:
        return Presentation({} if token is None else {"Authorization": f"Bearer {token}"})
    headers = {} if token is None else client.resource_headers(token, "POST", url)
    return Presentation(headers, client.tls_context)


async def send(ctx: Context, build: Build, url: str | None = None) -> Answer:
    """One valid notification presented as ``build`` says; once more with a fresh
    presentation when the receiver asks for a DPoP nonce certify's client did not have."""
    target = url or ctx.settings.url
    answer = await post(ctx, build(), target)
    client = ctx.oauth_client
    retry = (
        client is not None
        and client.dpop_key is not None
        and answer.status in (400, 401)
        and challenge_params(answer.challenge).get("error") == USE_NONCE
        and client.note_nonce(target, answer.nonce)
    )
    return await post(ctx, build(), target) if retry else answer


async def post(ctx: Context, presentation: Presentation, url: str) -> Answer:
    """One valid notification; keeps the challenge, the nonce and how a refusal came."""
    body = ctx.notification()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": transport.USER_AGENT,
        "Webhook-Id": str(body["event_id"]),
        "Webhook-Timestamp": str(int(time.time())),
        **presentation.headers,
    }
    options: dict[str, Any] = {} if presentation.tls is None else {"ssl": presentation.tls}
    try:
        async with ctx.session.post(
            url,
            data=transport.encode(body),
            headers=headers,
            allow_redirects=False,
            timeout=transport.deadline(ctx.settings.timeout),
            **options,
        ) as response:
            await response.content.read(transport.MAX_RESPONSE_BYTES)
            return Answer(
                response.status,
                challenge=", ".join(response.headers.getall("WWW-Authenticate", ())) or None,
                nonce=response.headers.get("DPoP-Nonce"),
            )
    except TimeoutError:
        return Answer(None, f"timeout: no answer within {ctx.settings.timeout:g}s")
    except (aiohttp.ClientError, OSError, ValueError) as exc:
        # aiohttp puts the request URL in some messages, and the query-token check's URL
        # carries the token: say what failed without repeating the URL.
        text = str(exc).replace(url, "<the URL>")
        closed = isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientOSError)
        refused = _tls_refusal(exc) or (presentation.foreign_certificate and closed)
        return Answer(None, f"connect_error: {visible(text[:200])}", handshake_refused=refused)


def _tls_refusal(exc: BaseException) -> bool:
    """Whether the server ended the TLS handshake with an alert: with TLS 1.3 a refused client
    certificate shows only then, as an error reading the answer."""
    seen: BaseException | None = exc
    for _ in range(5):
        if seen is None:
            break
        if isinstance(seen, ssl.SSLError) or isinstance(seen, aiohttp.ClientSSLError):
            return True
        if "alert" in str(seen).lower() and "ssl" in str(seen).lower():
            return True
        seen = seen.__cause__ or seen.__context__
    return False
