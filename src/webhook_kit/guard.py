"""Server-side request forgery guard: with ``--public-only``, connect only to public addresses.

The check runs on the socket address actually being connected to (aiohttp's ``socket_factory``
hook), after DNS resolution. So a name that resolves to a private address, a DNS answer that
changes between a check and the connection (rebinding), a decimal or hex IPv4 literal, and an
IPv4 address dressed as IPv6 (mapped, NAT64, 6to4, Teredo) are all refused the same way.
Redirects are never followed, so a redirect to an internal address goes nowhere either.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
NAT64 = ipaddress.ip_network("64:ff9b::/96")


class ForbiddenAddress(OSError):
    """A connection to a non-public address was refused (``--public-only``)."""


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if ip in NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if int(ip) >> 32 == 0 and int(ip) > 1:  # deprecated IPv4-compatible ::a.b.c.d
        return ipaddress.IPv4Address(int(ip))
    return None


def why_not_public(address: str) -> str | None:
    """``None`` if ``address`` is a public unicast address, else the reason it is not."""
    try:
        ip: IPAddress = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return f"{address!r} is not an IP address"
    if isinstance(ip, ipaddress.IPv6Address):
        inner = _embedded_ipv4(ip)
        if inner is not None:
            reason = why_not_public(str(inner))
            return None if reason is None else f"{ip} embeds {reason}"
    for name in ("loopback", "private", "link_local", "multicast", "reserved", "unspecified"):
        if getattr(ip, f"is_{name}"):
            return f"{ip} is {name.replace('_', '-')}"
    if isinstance(ip, ipaddress.IPv4Address) and ip in ipaddress.ip_network("100.64.0.0/10"):
        return f"{ip} is carrier-grade NAT (100.64.0.0/10)"
    if not ip.is_global:
        return f"{ip} is not a global address"
    return None


def public_only_socket(addr_info: tuple[Any, ...]) -> socket.socket:
    """aiohttp ``socket_factory``: refuse to even create a socket for a non-public address."""
    family, kind, proto, _, sockaddr = addr_info
    reason = why_not_public(str(sockaddr[0]))
    if reason is not None:
        raise ForbiddenAddress(f"refused by --public-only: {reason}")
    sock = socket.socket(family=family, type=kind, proto=proto)
    sock.setblocking(False)
    return sock
