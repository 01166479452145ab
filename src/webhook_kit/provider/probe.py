"""``POST /webhook/test``: one real delivery, step by step (token, TLS, POST), for people."""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from typing import Any
from urllib.parse import urlsplit

from webhook_kit import notifications
from webhook_kit.delivery import transport
from webhook_kit.delivery.dispatcher import Dispatcher, Target
from webhook_kit.errors import TokenFetchError
from webhook_kit.guard import ForbiddenAddress, why_not_public
from webhook_kit.ids import new_id
from webhook_kit.oauth.client import OAuthClient
from webhook_kit.redact import scrub
from webhook_kit.timing import elapsed_ms


def _step(name: str, ok: bool, detail: str, started: float) -> dict[str, Any]:
    return {
        "step": name,
        "ok": ok,
        "detail": detail,
        "duration_ms": elapsed_ms(started),
    }


async def _tls_facts(url: str, context: ssl.SSLContext, timeout: float, public_only: bool) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or 443
    address = host
    if public_only:
        # Resolve once, vet the address, and connect to exactly that address.
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        allowed = [i[4][0] for i in infos if why_not_public(str(i[4][0])) is None]
        if not allowed:
            reason = why_not_public(str(infos[0][4][0])) if infos else "no address"
            raise ForbiddenAddress(f"refused by --public-only: {reason}")
        address = str(allowed[0])
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(address, port, ssl=context, server_hostname=host), timeout
    )
    try:
        ssl_object = writer.get_extra_info("ssl_object")
        peer = ssl_object.getpeercert() if ssl_object else {}
        subject = dict(item[0] for item in peer.get("subject", ()))
        version = ssl_object.version() if ssl_object else "?"
        cipher = ssl_object.cipher()[0] if ssl_object else "?"
        return (
            f"{version}, {cipher}, certificate for {subject.get('commonName', '?')} "
            f"valid until {peer.get('notAfter', '?')}, verified"
        )
    finally:
        writer.close()


async def run_test(dispatcher: Dispatcher, target: Target) -> dict[str, Any]:
    """Fetch a fresh token, check TLS, deliver one ``test: true`` notification."""
    secret = target.oauth.client_secret
    steps: list[dict[str, Any]] = []
    body = notifications.build(
        "on-course", validation_id=f"test-{new_id()}", previous_status=None, test=True
    )
    timeout = dispatcher.settings.timeout

    started = time.perf_counter()
    oauth = OAuthClient(target.oauth, dispatcher.session)  # fresh: this tests the credentials
    try:
        token = await oauth.token()
    except TokenFetchError as exc:
        steps.append(_step("token", False, str(exc), started))  # scrubbed at the source
        return {"ok": False, "url": target.url, "steps": steps, "notification": body}
    steps.append(_step("token", True, f"token from {target.oauth.token_url}", started))

    started = time.perf_counter()
    try:
        facts = await _tls_facts(
            target.url, dispatcher.ssl_context, timeout, dispatcher.settings.public_only
        )
    except ssl.SSLCertVerificationError as exc:
        steps.append(_step("tls", False, f"certificate not trusted: {exc.verify_message}", started))
        return {"ok": False, "url": target.url, "steps": steps, "notification": body}
    except ForbiddenAddress as exc:
        steps.append(_step("tls", False, str(exc), started))
        return {"ok": False, "url": target.url, "steps": steps, "notification": body}
    except (OSError, TimeoutError) as exc:
        steps.append(_step("tls", False, f"cannot connect: {exc or type(exc).__name__}", started))
        return {"ok": False, "url": target.url, "steps": steps, "notification": body}
    steps.append(_step("tls", True, facts, started))

    started = time.perf_counter()
    result = await transport.post_once(
        dispatcher.session,
        target.url,
        transport.encode(body),
        token=token,
        event_id=body["event_id"],
        timeout=timeout,
    )
    detail = f"{result.outcome}: {scrub(result.reason, [secret])}"
    steps.append(_step("delivery", result.ok, detail, started))
    return {"ok": result.ok, "url": target.url, "steps": steps, "notification": body}
