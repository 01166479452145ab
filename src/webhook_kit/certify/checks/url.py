"""url: absolute, https scheme, host resolves; warn when only loopback/private addresses."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

from webhook_kit.certify.context import Context, Timer, skipped
from webhook_kit.certify.model import CheckResult

CHECK_IDS = ("url.absolute", "url.scheme", "url.resolves", "url.public")


def _not_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%")[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not ip.is_global


async def run(ctx: Context) -> list[CheckResult]:
    out: list[CheckResult] = []
    url = ctx.settings.url
    timer = Timer()
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a bad port
        valid = bool(parts.scheme and parts.hostname)
    except ValueError:
        valid = False
    if not valid:
        out.append(
            timer.result(
                "url.absolute",
                "url",
                "fail",
                f"{url!r} is not an absolute URL; give scheme, host and path, "
                "e.g. https://hooks.example.com/webhook",
            )
        )
        out.extend(skipped(i, "url", "the URL is not absolute") for i in CHECK_IDS[1:])
        return out
    out.append(
        timer.result(
            "url.absolute", "url", "pass", f"host {parts.hostname}, path {parts.path or '/'}"
        )
    )

    timer = Timer()
    if parts.scheme != "https":
        out.append(
            timer.result(
                "url.scheme",
                "url",
                "fail",
                f"scheme is {parts.scheme}: the documented requirement is HTTPS; "
                "serve the endpoint over TLS and give an https:// URL",
            )
        )
    else:
        out.append(timer.result("url.scheme", "url", "pass", "https"))

    timer = Timer()
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(
            parts.hostname, parts.port or 443, type=socket.SOCK_STREAM
        )
    except socket.gaierror as exc:
        out.append(
            timer.result(
                "url.resolves",
                "url",
                "fail",
                f"{parts.hostname} does not resolve ({exc.strerror}); check the DNS name",
            )
        )
        out.append(skipped("url.public", "url", "the host does not resolve"))
        return out
    addresses = sorted({str(info[4][0]) for info in infos})
    out.append(timer.result("url.resolves", "url", "pass", ", ".join(addresses)))

    timer = Timer()
    if all(_not_public(a) for a in addresses):
        out.append(
            timer.result(
                "url.public",
                "url",
                "warn",
                f"{parts.hostname} resolves only to loopback or private addresses "
                f"({', '.join(addresses)}): a sender in the cloud cannot reach it. "
                "Fine for local testing; production needs a public address",
            )
        )
    else:
        out.append(
            timer.result("url.public", "url", "pass", "reachable from the internet by address")
        )
    ctx.reachable = parts.scheme == "https"
    return out
