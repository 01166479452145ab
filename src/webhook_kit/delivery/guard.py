"""Where the kit may connect: the server-side request forgery guard, and URL sanity.

Three address policies, checked on the socket address actually being connected to (aiohttp's
``socket_factory`` hook), after DNS resolution:

``local`` (the default)
    public addresses and loopback. webhook-kit is a local test tool: the endpoint under test
    usually runs on the same machine, so loopback is the one internal destination it needs.
``private`` (``--allow-private``)
    also the private ranges (10/8, 172.16/12, 192.168/16, fc00::/7, 100.64/10), for an endpoint
    on another machine of the LAN. Off by default, because whoever can set a provider's webhook
    URL could otherwise reach (and probe) every machine of the provider's network.
``public`` (``--public-only``)
    public addresses only: for a provider that delivers to URLs its customers type in.

Under every policy, link-local addresses (169.254/16, fe80::/10, where clouds serve instance
credentials), the known cloud metadata addresses, multicast, broadcast, unspecified and reserved
addresses are refused. So a name that resolves to such an address, a DNS answer that changes
between a check and the connection (rebinding), a decimal or hex IPv4 literal, and an IPv4
address dressed as IPv6 (mapped, NAT64, 6to4, Teredo) are all refused the same way. Redirects are
never followed, so a redirect to an internal address goes nowhere either.

:func:`why_not_public` is the kit's one "is this address public" check.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from typing import Any, Literal
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
AddressPolicy = Literal["local", "private", "public"]
AddressKind = Literal["public", "loopback", "private", "forbidden"]

NAT64 = ipaddress.ip_network("64:ff9b::/96")
CGNAT = ipaddress.ip_network("100.64.0.0/10")
#: Instance metadata and platform services that hand out credentials or configuration:
#: AWS/GCP/Azure/OpenStack/Oracle (169.254.169.254), AWS ECS task credentials (169.254.170.2),
#: AWS over IPv6 (fd00:ec2::254), Alibaba Cloud (100.100.100.200), Azure's wire server
#: (168.63.129.16, a public-range address), and Oracle's (192.0.0.192).
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",
        "169.254.170.2",
        "fd00:ec2::254",
        "100.100.100.200",
        "168.63.129.16",
        "192.0.0.192",
    )
)
ALLOWED: dict[AddressPolicy, frozenset[AddressKind]] = {
    "public": frozenset({"public"}),
    "local": frozenset({"public", "loopback"}),
    "private": frozenset({"public", "loopback", "private"}),
}
FLAG: dict[AddressPolicy, str] = {
    "public": "--public-only",
    "local": "the default address policy",
    "private": "--allow-private",
}


class ForbiddenAddress(OSError):
    """A connection to an address the policy does not allow was refused."""


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if ip in NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if int(ip) >> 32 == 0 and int(ip) > 1:  # deprecated IPv4-compatible ::a.b.c.d
        return ipaddress.IPv4Address(int(ip))
    return None


def classify(address: str) -> tuple[AddressKind, str]:
    """What kind of destination ``address`` is, and a short phrase saying so."""
    try:
        ip: IPAddress = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return "forbidden", f"{address!r} is not an IP address"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            # The kernel connects an IPv4-mapped address to the IPv4 address itself.
            kind, what = classify(str(ip.ipv4_mapped))
            return kind, f"{ip} maps to {what}"
        inner = _embedded_ipv4(ip)
        if inner is not None:
            kind, what = classify(str(inner))
            # Routed through a translator: never a way to reach anything but a public address.
            return ("public", "") if kind == "public" else ("forbidden", f"{ip} embeds {what}")
    if ip in METADATA_ADDRESSES:
        return "forbidden", f"{ip} is a cloud metadata address"
    if ip.is_loopback:
        return "loopback", f"{ip} is loopback"
    for name in ("link_local", "multicast", "unspecified", "reserved"):
        if getattr(ip, f"is_{name}"):
            return "forbidden", f"{ip} is {name.replace('_', '-')}"
    if isinstance(ip, ipaddress.IPv4Address) and ip in CGNAT:
        return "private", f"{ip} is carrier-grade NAT (100.64.0.0/10)"
    if ip.is_private:
        return ("private", f"{ip} is private") if _lan(ip) else ("forbidden", f"{ip} is special")
    if not ip.is_global:
        return "forbidden", f"{ip} is not a global address"
    return "public", ""


_LAN = tuple(
    ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7")
)


def _lan(ip: IPAddress) -> bool:
    return any(ip.version == net.version and ip in net for net in _LAN)


def why_not_public(address: str) -> str | None:
    """``None`` if ``address`` is a public unicast address, else the reason it is not.

    The kit's one "is this address public" check (``--public-only``, certify's url.public)."""
    kind, what = classify(address)
    return None if kind == "public" else what


def why_refused(address: str, policy: AddressPolicy) -> str | None:
    """``None`` if ``policy`` allows connecting to ``address``, else why not (one line)."""
    kind, what = classify(address)
    if kind in ALLOWED[policy]:
        return None
    if policy == "public":
        return f"refused by --public-only: {what}"
    if kind == "private":
        return f"refused: {what}; allow private addresses with --allow-private"
    return f"refused: {what} (never allowed)"


def socket_factory(policy: AddressPolicy) -> Callable[[tuple[Any, ...]], socket.socket]:
    """An aiohttp ``socket_factory`` that refuses to even create a socket the policy forbids."""

    def factory(addr_info: tuple[Any, ...]) -> socket.socket:
        family, kind, proto, _, sockaddr = addr_info
        reason = why_refused(str(sockaddr[0]), policy)
        if reason is not None:
            raise ForbiddenAddress(reason)
        sock = socket.socket(family=family, type=kind, proto=proto)
        sock.setblocking(False)
        return sock

    return factory


def public_only_socket(addr_info: tuple[Any, ...]) -> socket.socket:
    """aiohttp ``socket_factory`` for ``--public-only``."""
    return _PUBLIC_FACTORY(addr_info)


_PUBLIC_FACTORY = socket_factory("public")


def policy_of(*, public_only: bool = False, allow_private: bool = False) -> AddressPolicy:
    if public_only:
        return "public"
    return "private" if allow_private else "local"


def host_problem(host: str) -> str | None:
    """Why ``host`` (a URL's host, brackets removed) cannot be connected to, or ``None``.

    An IP literal, or a DNS name of 1..63-character labels, 253 characters at most, that IDNA
    can encode: ``a..b`` or a 64-character label would otherwise fail deep inside a connection.
    """
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
        return None
    except ValueError:
        pass
    name = host[:-1] if host.endswith(".") else host
    try:
        encoded = name.encode("idna")
    except UnicodeError:
        return f"{host!r} is not a valid host name"
    if not name or len(encoded) > 253:
        return f"{host!r} is not a valid host name"
    for label in encoded.split(b"."):
        if not 1 <= len(label) <= 63 or label.startswith(b"-") or label.endswith(b"-"):
            return f"{host!r} is not a valid host name"
        if not all(c in _HOST_BYTES for c in label):
            return f"{host!r} is not a valid host name"
    return None


_HOST_BYTES = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_")


def url_problem(url: str, *, schemes: tuple[str, ...] = ("https",)) -> str | None:
    """Why ``url`` cannot be a webhook or token URL, or ``None`` when it can (one line).

    Absolute, one of ``schemes``, a valid host and port, no user name or password (credentials
    in a URL end up in logs, and collide with the Authorization header), no whitespace or
    control characters.
    """
    if any(c.isspace() or ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in url):
        return "must not contain spaces or control characters"
    try:
        url.encode("utf-8")
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in range
    except (ValueError, UnicodeError) as exc:
        return f"not a valid URL ({exc})"
    wanted = " or ".join(f"{s}://" for s in schemes)
    if parts.scheme.lower() not in schemes or not parts.hostname:
        return f"must be an absolute {wanted} URL with a host"
    if parts.username is not None or parts.password is not None:
        return "must not contain a user name or password (give credentials as options)"
    return host_problem(parts.hostname)
