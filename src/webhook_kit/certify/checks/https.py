"""https: handshake, chain (system store, or --ca: development only), hostname, TLS >= 1.2,
certificate lifetime."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from typing import Any
from urllib.parse import urlsplit

from webhook_kit.certify.context import Context, Timer, skipped
from webhook_kit.certify.model import EXPIRY_WARN_DAYS, CheckResult
from webhook_kit.tls import client_context

CHECK_IDS = (
    "https.handshake",
    "https.chain",
    "https.hostname",
    "https.tls_version",
    "https.expiry",
)
HOSTNAME_MISMATCH = 62  # X509_V_ERR_HOSTNAME_MISMATCH
IP_MISMATCH = 64  # X509_V_ERR_IP_ADDRESS_MISMATCH


async def _handshake(
    host: str, port: int, context: ssl.SSLContext, timeout: float
) -> dict[str, Any]:
    _, writer = await asyncio.wait_for(
        asyncio.open_connection(host, port, ssl=context, server_hostname=host), timeout
    )
    try:
        tls = writer.get_extra_info("ssl_object")
        return {"version": tls.version(), "cipher": tls.cipher()[0], "cert": tls.getpeercert()}
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(writer.wait_closed(), 2)


def _chain_only(context: ssl.SSLContext) -> ssl.SSLContext:
    context.check_hostname = False
    return context


async def run(ctx: Context) -> list[CheckResult]:
    s = ctx.settings
    parts = urlsplit(s.url)
    if parts.scheme != "https" or not parts.hostname:
        why = "the URL is not https:// (plain HTTP has no TLS at all)"
        return [
            Timer().result(
                "https.handshake", "https", "fail", f"{why}; the documented requirement is HTTPS"
            )
        ] + [skipped(i, "https", why) for i in CHECK_IDS[1:]]
    host, port = parts.hostname, parts.port or 443
    ca_file = s.ca_file
    out: list[CheckResult] = []

    timer = Timer()
    facts: dict[str, Any] | None = None
    chain_error: str | None = None
    hostname_error: str | None = None
    try:
        facts = await _handshake(host, port, client_context(ca_file), s.timeout)
    except ssl.SSLCertVerificationError as exc:
        if exc.verify_code in (HOSTNAME_MISMATCH, IP_MISMATCH):
            hostname_error = exc.verify_message
        else:
            chain_error = exc.verify_message or str(exc)
    except ssl.SSLError as exc:
        out.append(
            timer.result(
                "https.handshake",
                "https",
                "fail",
                f"TLS handshake with {host}:{port} failed ({exc.reason or exc}); is the "
                "endpoint serving TLS (>= 1.2) on this port?",
            )
        )
        out.extend(skipped(i, "https", "no TLS handshake") for i in CHECK_IDS[1:])
        return out
    except (OSError, TimeoutError) as exc:
        reason = "timed out" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc))
        out.append(
            timer.result(
                "https.handshake",
                "https",
                "fail",
                f"cannot connect to {host}:{port} ({reason}); is the endpoint up and "
                "reachable from here?",
            )
        )
        out.extend(skipped(i, "https", "no connection") for i in CHECK_IDS[1:])
        return out

    if facts is None and hostname_error is not None:
        # The chain verified (only the name did not match): look at the certificate anyway.
        with contextlib.suppress(ssl.SSLError, OSError, TimeoutError):
            facts = await _handshake(host, port, _chain_only(client_context(ca_file)), s.timeout)
    out.append(
        timer.result(
            "https.handshake",
            "https",
            "pass" if chain_error is None else "fail",
            f"{facts['version']}, {facts['cipher']}"
            if facts
            else f"handshake refused: {chain_error}",
        )
    )

    timer = Timer()
    if chain_error is not None:
        where = f"the system trust store or {ca_file}" if ca_file else "the system trust store"
        out.append(
            timer.result(
                "https.chain",
                "https",
                "fail",
                f"certificate chain not trusted by {where}: {chain_error}. Use a "
                "certificate from a public CA (for local testing, pass --ca)",
            )
        )
        out.extend(skipped(i, "https", "certificate not trusted") for i in CHECK_IDS[2:])
        return out
    dev_only = False
    if ca_file is not None:
        try:
            await _handshake(host, port, _chain_only(client_context(None)), s.timeout)
        except ssl.SSLCertVerificationError:
            dev_only = True
        except (ssl.SSLError, OSError, TimeoutError):
            dev_only = True
    if dev_only:
        out.append(
            timer.result(
                "https.chain",
                "https",
                "pass",
                f"development-only pass: the chain verifies only against --ca {ca_file}, "
                "not the system trust store; a real sender will refuse it",
            )
        )
    else:
        out.append(
            timer.result("https.chain", "https", "pass", "verified against the system trust store")
        )

    timer = Timer()
    if hostname_error is not None:
        out.append(
            timer.result(
                "https.hostname",
                "https",
                "fail",
                f"the certificate does not name {host} ({hostname_error}); issue it for "
                "the host in the URL",
            )
        )
    else:
        out.append(timer.result("https.hostname", "https", "pass", f"certificate valid for {host}"))

    timer = Timer()
    version = facts.get("version") if facts else None
    if version in ("TLSv1.2", "TLSv1.3"):
        out.append(timer.result("https.tls_version", "https", "pass", str(version)))
    else:
        out.append(
            timer.result(
                "https.tls_version",
                "https",
                "fail",
                f"negotiated {version}; TLS 1.2 or later is required",
            )
        )

    timer = Timer()
    not_after = facts["cert"].get("notAfter") if facts and facts.get("cert") else None
    if not_after is None:
        out.append(
            timer.result("https.expiry", "https", "warn", "could not read the certificate's expiry")
        )
    else:
        days = (ssl.cert_time_to_seconds(not_after) - time.time()) / 86400
        if days < EXPIRY_WARN_DAYS:
            out.append(
                timer.result(
                    "https.expiry",
                    "https",
                    "warn",
                    f"the certificate expires in {days:.1f} days ({not_after}); renew it "
                    f"(warning below {EXPIRY_WARN_DAYS} days)",
                )
            )
        else:
            out.append(
                timer.result("https.expiry", "https", "pass", f"valid for {days:.0f} more days")
            )
    ctx.reachable = hostname_error is None and version in ("TLSv1.2", "TLSv1.3")
    return out
