"""``POST /webhook/test``: one real delivery, step by step (token, TLS, POST), for people."""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from typing import Any
from urllib.parse import urlsplit

from webhook_kit.contract import notifications
from webhook_kit.delivery import transport
from webhook_kit.delivery.dispatcher import Dispatcher, Target
from webhook_kit.delivery.guard import AddressPolicy, ForbiddenAddress, why_refused
from webhook_kit.display import visible
from webhook_kit.errors import TokenFetchError
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


async def _tls_facts(
    url: str, context: ssl.SSLContext, timeout: float, policy: AddressPolicy | None
) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or 443
    address = host
    if policy is not None:
        # Resolve once, vet the address, and connect to exactly that address.
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        reasons = [why_refused(str(i[4][0]), policy) for i in infos]
        allowed = [str(i[4][0]) for i, r in zip(infos, reasons, strict=True) if r is None]
        if not allowed:
            raise ForbiddenAddress(reasons[0] if reasons else "no address")
        address = allowed[0]
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(address, port, ssl=context, server_hostname=host), timeout
    )
    try:
        ssl_object = writer.get_extra_info("ssl_object")
        peer = ssl_object.getpeercert() if ssl_object else {}
        subject = dict(item[0] for item in peer.get("subject", ()))
        version = ssl_object.version() if ssl_object else "?"
        cipher = ssl_object.cipher()[0] if ssl_object else "?"
        return visible(
            f"{version}, {cipher}, certificate for {subject.get('commonName', '?')} "
            f"valid until {peer.get('notAfter', '?')}, verified"
        )
    finally:
        writer.close()


async def run_test(dispatcher: Dispatcher, target: Target) -> dict[str, Any]:
    """Fetch a fresh token, check TLS, deliver one ``test: true`` notification.

    Failure details say what the sender needs and no more (see ``transport.network_failure``):
    whoever may set the webhook URL reads them.
    """
    secrets = list(target.oauth.secrets)
    steps: list[dict[str, Any]] = []
    body = notifications.build(
        "on-course", validation_id=f"test-{new_id()}", previous_status=None, test=True
    )
    timeout = dispatcher.settings.timeout

    def failed(step: str, detail: str, started: float) -> dict[str, Any]:
        steps.append(_step(step, False, scrub(detail, secrets), started))
        return {"ok": False, "url": target.url, "steps": steps, "notification": body}

    started = time.perf_counter()
    # Fresh: this tests the credentials.
    oauth = OAuthClient(target.oauth, dispatcher.session, ca_file=dispatcher.settings.ca_file)
    try:
        token = await oauth.token()
    except TokenFetchError as exc:
        return failed("token", transport.token_failure(exc, oauth), started)
    except (ValueError, UnicodeError) as exc:  # credentials the token request cannot carry
        return failed(
            "token", f"the client credentials cannot be sent ({type(exc).__name__})", started
        )
    steps.append(_step("token", True, f"token from {visible(target.oauth.token_url)}", started))

    started = time.perf_counter()
    try:
        facts = await _tls_facts(
            target.url,
            oauth.tls_context or dispatcher.ssl_context,
            timeout,
            dispatcher.settings.address_policy,
        )
    except ssl.SSLCertVerificationError as exc:
        return failed("tls", f"certificate not trusted: {visible(exc.verify_message)}", started)
    except ForbiddenAddress as exc:
        return failed("tls", visible(str(exc)), started)
    except TimeoutError:
        return failed("tls", f"no TLS connection within {timeout:g}s", started)
    except (OSError, ValueError) as exc:
        return failed("tls", transport.network_failure(exc, target.url)[1], started)
    steps.append(_step("tls", True, facts, started))

    started = time.perf_counter()
    result = await transport.post_once(
        dispatcher.session,
        target.url,
        transport.encode(body),
        token=token,
        event_id=body["event_id"],
        timeout=timeout,
        extra_headers=oauth.resource_headers(token, "POST", target.url),
        ssl_context=oauth.tls_context,
    )
    detail = f"{result.outcome}: {scrub(result.reason, secrets)}"  # made visible at the source
    steps.append(_step("delivery", result.ok, detail, started))
    return {"ok": result.ok, "url": target.url, "steps": steps, "notification": body}
