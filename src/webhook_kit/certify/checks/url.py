"""url: absolute, https scheme, host resolves; warn when only loopback/private addresses.

``judge`` is pure over the URL and what resolving it gave; ``run`` only resolves."""

from __future__ import annotations

import asyncio
import socket
from urllib.parse import urlsplit

from webhook_kit.certify.context import Context, blocked
from webhook_kit.certify.model import CheckResult
from webhook_kit.delivery.guard import why_not_public

CHECK_IDS = ("url.absolute", "url.scheme", "url.resolves", "url.public")


def parse(url: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of an absolute URL, or None."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    if not parts.scheme or not parts.hostname:
        return None
    return parts.scheme, parts.hostname, port or 443


def judge(
    url: str, addresses: tuple[str, ...] | None, resolve_error: str | None = None
) -> list[CheckResult]:
    """Pure. ``addresses`` is what the host resolved to (None when it was not resolved)."""
    parsed = parse(url)
    if parsed is None:
        return [
            CheckResult(
                "url.absolute",
                "url",
                "fail",
                f"{url!r} is not an absolute URL; give scheme, host and path, "
                "e.g. https://hooks.example.com/webhook",
            ),
            *(blocked(i, "url", "url.absolute") for i in CHECK_IDS[1:]),
        ]
    scheme, host, _ = parsed
    out = [
        CheckResult("url.absolute", "url", "pass", f"host {host}, path {urlsplit(url).path or '/'}")
    ]
    if scheme != "https":
        out.append(
            CheckResult(
                "url.scheme",
                "url",
                "fail",
                f"scheme is {scheme}: the documented requirement is HTTPS; serve the endpoint "
                "over TLS and give an https:// URL",
            )
        )
    else:
        out.append(CheckResult("url.scheme", "url", "pass", "https"))
    if resolve_error is not None or not addresses:
        out.append(
            CheckResult(
                "url.resolves",
                "url",
                "fail",
                f"{host} does not resolve ({resolve_error or 'no address'}); check the DNS name",
            )
        )
        out.append(blocked("url.public", "url", "url.resolves"))
        return out
    out.append(CheckResult("url.resolves", "url", "pass", ", ".join(addresses)))
    reasons = [why_not_public(a) for a in addresses]
    if all(reasons):
        out.append(
            CheckResult(
                "url.public",
                "url",
                "warn",
                f"{host} resolves only to {', '.join(addresses)}, which a sender in the cloud "
                f"cannot reach ({'; '.join(str(r) for r in dict.fromkeys(reasons))}). Fine for "
                "local testing; production needs a public address",
            )
        )
    else:
        out.append(
            CheckResult("url.public", "url", "pass", "reachable from the internet by address")
        )
    return out


async def run(ctx: Context) -> list[CheckResult]:
    url = ctx.settings.url
    parsed = parse(url)
    addresses: tuple[str, ...] | None = None
    error: str | None = None
    if parsed is not None:
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                parsed[1], parsed[2], type=socket.SOCK_STREAM
            )
            addresses = tuple(sorted({str(info[4][0]) for info in infos}))
        except (socket.gaierror, UnicodeError) as exc:
            error = getattr(exc, "strerror", None) or str(exc)
    results = judge(url, addresses, error)
    ctx.connection_blocker = next((r.id for r in results if r.verdict == "fail"), None)
    return results
