"""What stands in front of ``/_kit``, which has no authentication by design (a local test tool).

Two attacks reach it through the developer's own browser:

- DNS rebinding: a page on ``evil.example`` re-resolves its name to 127.0.0.1 and then reads
  ``/_kit/deliveries`` as same-origin. The browser still sends ``Host: evil.example``, so only
  IP literals, ``localhost`` (and ``*.localhost``) and this machine's name are answered.
- Cross-site requests: any page can make the browser send a simple POST (``rotate-key``). A
  state-changing request is refused when the browser says it is cross-site (``Sec-Fetch-Site``),
  when its ``Origin`` is not this endpoint, and unless it carries ``Content-Type:
  application/json`` or an ``X-Webhook-Kit`` header, which no cross-site page can send without a
  CORS preflight that this endpoint never grants.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from starlette.datastructures import Headers

from webhook_kit.serving.http import error_response

PREFIX = "/_kit"
MARKER_HEADER = "x-webhook-kit"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

Scope = dict[str, Any]


def _hostname(host: str) -> str:
    """``host`` without its port, brackets or trailing dot, lowercased."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    if host.count(":") == 1:
        host = host.split(":", 1)[0]
    return host.rstrip(".")


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


class KitGuard:
    """ASGI middleware: Host and cross-site checks for ``/_kit``; everything else passes."""

    def __init__(self, app: Any, *, extra_hosts: Iterable[str] = ()) -> None:
        self.app = app
        names = {"localhost", *(h.lower().rstrip(".") for h in extra_hosts)}
        try:
            names.add(socket.gethostname().lower())
        except OSError:  # pragma: no cover - gethostname does not fail on Linux
            pass
        self.names = frozenset(n for n in names if n)

    def host_allowed(self, host: str) -> bool:
        name = _hostname(host)
        return _is_ip(name) or name in self.names or name.endswith(".localhost")

    def refusal(self, scope: Scope) -> tuple[str, str] | None:
        """``(error_type, message)`` when the request must be refused, else ``None``."""
        headers = Headers(scope=scope)
        host = headers.get("host")
        if host is not None and not self.host_allowed(host):
            return (
                "forbidden_host",
                f"Host {_quote(host)} is not an address of this endpoint; /_kit answers only to "
                "IP addresses, localhost and this machine's name (DNS-rebinding defence)",
            )
        if scope["method"] in SAFE_METHODS:
            return None
        site = headers.get("sec-fetch-site")
        if site is not None and site.lower() not in ("same-origin", "none"):
            return ("cross_site_refused", f"{scope['method']} from another site ({site}) refused")
        origin = headers.get("origin")
        if origin is not None and (host is None or urlsplit(origin).netloc.lower() != host.lower()):
            return ("cross_site_refused", f"{scope['method']} from origin {_quote(origin)} refused")
        media_type = headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if MARKER_HEADER not in headers and media_type != "application/json":
            return (
                "marker_required",
                f"{scope['method']} {scope['path']} needs an X-Webhook-Kit header or "
                "Content-Type: application/json (so that no other web page can send it)",
            )
        return None

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(PREFIX):
            await self.app(scope, receive, send)
            return
        refused = self.refusal(scope)
        if refused is None:
            await self.app(scope, receive, send)
            return
        response = error_response(403, *refused, headers={"Cache-Control": "no-store"})
        await response(scope, receive, send)


def _quote(text: str) -> str:
    # Echoed to whoever sent it, as JSON; the length bound keeps the answer small.
    return repr(text[:100])
