"""https: the handshake a verifying sender would make (TLS >= 1.2, system trust store, no AIA
fetching), and, when it fails, the one precise cause: a protocol below TLS 1.2, a self-signed
certificate, an incomplete chain, an unknown CA, an expired certificate or a hostname mismatch.

``gather`` does the I/O and returns :class:`TlsFacts`; ``judge`` is pure and table-tested.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
import warnings
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509

from webhook_kit.certify.context import Context, Timer, blocked
from webhook_kit.certify.model import EXPIRY_WARN_DAYS, CheckResult, Verdict
from webhook_kit.tls import client_context

CHECK_IDS = (
    "https.handshake",
    "https.tls_version",
    "https.chain",
    "https.hostname",
    "https.expiry",
)
# OpenSSL X509_V_ERR_* codes that name a cause.
CERT_NOT_YET_VALID = 9
CERT_HAS_EXPIRED = 10
DEPTH_ZERO_SELF_SIGNED = 18
SELF_SIGNED_IN_CHAIN = 19
UNABLE_TO_GET_ISSUER_LOCALLY = 20
UNABLE_TO_VERIFY_LEAF_SIGNATURE = 21
HOSTNAME_MISMATCH = 62
IP_MISMATCH = 64
MODERN = ("TLSv1.2", "TLSv1.3")


@dataclass(frozen=True)
class TlsFacts:
    """What the handshakes showed. Pure data, so ``judge`` can be tested without a server."""

    host: str
    port: int
    #: Could not even open a TCP connection (or it timed out): the reason.
    connect_error: str | None = None
    #: A TLS failure that is not about the certificate (the alert or reason).
    handshake_error: str | None = None
    #: The protocol a permissive client got when a TLS >= 1.2 client could not connect.
    legacy_version: str | None = None
    verify_code: int | None = None
    verify_message: str | None = None
    version: str | None = None
    cipher: str | None = None
    #: The certificates the server sent, leaf first (DER), read without verifying them.
    chain: tuple[bytes, ...] = ()
    #: Seconds until the leaf's notAfter (negative: expired).
    seconds_left: float | None = None
    not_after: str | None = None
    #: The chain verifies only with --ca, not with the system store.
    dev_only: bool = False
    ca_file: str | None = None


def _permissive(*, legacy: bool) -> ssl.SSLContext:
    """A context that accepts any certificate, to look at what the server sends. Only used to
    explain a failure that the verifying context already reported; nothing is sent over it."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if legacy:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            ctx.minimum_version = ssl.TLSVersion.TLSv1
        # OpenSSL 3 refuses TLS 1.0/1.1 at the default security level.
        ctx.set_ciphers("ALL:@SECLEVEL=0")
    return ctx


async def _handshake(
    host: str, port: int, context: ssl.SSLContext, timeout: float
) -> dict[str, Any]:
    _, writer = await asyncio.wait_for(
        asyncio.open_connection(host, port, ssl=context, server_hostname=host), timeout
    )
    try:
        tls = writer.get_extra_info("ssl_object")
        chain: tuple[bytes, ...] = ()
        # Public as SSLSocket.get_unverified_chain() from Python 3.13; present since 3.10.
        raw = getattr(getattr(tls, "_sslobj", None), "get_unverified_chain", None)
        if raw is not None:
            with contextlib.suppress(Exception):
                chain = tuple(c.public_bytes(ssl._ssl.ENCODING_DER) for c in raw() or ())  # type: ignore[attr-defined]
        if not chain:
            leaf = tls.getpeercert(binary_form=True)
            chain = (leaf,) if leaf else ()
        return {"version": tls.version(), "cipher": tls.cipher()[0], "chain": chain}
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(writer.wait_closed(), 2)


def _lifetime(chain: tuple[bytes, ...], now: float) -> tuple[float | None, str | None]:
    if not chain:
        return None, None
    try:
        leaf = x509.load_der_x509_certificate(chain[0])
    except ValueError:
        return None, None
    not_after = leaf.not_valid_after_utc
    return not_after.timestamp() - now, not_after.strftime("%Y-%m-%d %H:%M UTC")


async def gather(host: str, port: int, ctx: Context) -> TlsFacts:
    s = ctx.settings
    timeout = s.timeout
    ca = str(s.ca_file) if s.ca_file else None
    base: dict[str, Any] = {"host": host, "port": port, "ca_file": ca}
    try:
        facts = await _handshake(host, port, client_context(s.ca_file), timeout)
    except ssl.SSLCertVerificationError as exc:
        base.update(verify_code=exc.verify_code, verify_message=exc.verify_message or str(exc))
    except ssl.SSLError as exc:
        base["handshake_error"] = str(exc.reason or exc)
        with contextlib.suppress(ssl.SSLError, OSError, TimeoutError):
            legacy = await _handshake(host, port, _permissive(legacy=True), timeout)
            if legacy["version"] not in MODERN:
                base["legacy_version"] = legacy["version"]
        return TlsFacts(**base)
    except (OSError, TimeoutError) as exc:
        base["connect_error"] = (
            "timed out" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc))
        )
        return TlsFacts(**base)
    else:
        base.update(version=facts["version"], cipher=facts["cipher"], chain=facts["chain"])
        if s.ca_file is not None:
            try:
                await _handshake(host, port, client_context(None), timeout)
            except (ssl.SSLError, OSError, TimeoutError):
                base["dev_only"] = True
        left, not_after = _lifetime(base["chain"], time.time())
        return TlsFacts(**base, seconds_left=left, not_after=not_after)
    # The verifying handshake refused the certificate: look at what the server sent.
    with contextlib.suppress(ssl.SSLError, OSError, TimeoutError):
        seen = await _handshake(host, port, _permissive(legacy=False), timeout)
        base.update(version=seen["version"], cipher=seen["cipher"], chain=seen["chain"])
    left, not_after = _lifetime(base.get("chain", ()), time.time())
    return TlsFacts(**base, seconds_left=left, not_after=not_after)


def _name(cert: x509.Certificate, which: str) -> str:
    name = cert.subject if which == "subject" else cert.issuer
    try:
        common = name.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
        return str(common[0].value) if common else name.rfc4514_string()
    except ValueError:
        return "(unreadable name)"


def _chain_cause(facts: TlsFacts) -> str:
    """Why the chain did not verify, in words a customer can act on."""
    code = facts.verify_code
    store = "the system trust store" + (f" or {facts.ca_file}" if facts.ca_file else "")
    certs: list[x509.Certificate] = []
    for der in facts.chain:
        with contextlib.suppress(ValueError):
            certs.append(x509.load_der_x509_certificate(der))
    leaf = certs[0] if certs else None
    self_issued = leaf is not None and leaf.subject == leaf.issuer
    if code == DEPTH_ZERO_SELF_SIGNED or (len(certs) == 1 and self_issued):
        return (
            "the certificate is self-signed: no sender trusts it. Use a certificate from a "
            "public CA (for local testing, pass --ca with your own CA)"
        )
    if code == SELF_SIGNED_IN_CHAIN:
        root = _name(certs[-1], "subject") if certs else "a root"
        return (
            f"unknown CA: the chain ends at the root '{root}', which is not in {store}. Use a "
            "certificate from a public CA"
        )
    if code in (UNABLE_TO_GET_ISSUER_LOCALLY, UNABLE_TO_VERIFY_LEAF_SIGNATURE) and leaf:
        if len(certs) == 1:
            return (
                f"incomplete chain: the server sends only its leaf certificate, issued by "
                f"'{_name(leaf, 'issuer')}', without the intermediate certificate(s). Senders do "
                "not fetch missing intermediates (AIA): serve the full chain (leaf + "
                f"intermediates). If '{_name(leaf, 'issuer')}' is your own CA, it is not in {store}"
            )
        top = certs[-1]
        return (
            f"unknown CA: the chain's last certificate '{_name(top, 'subject')}' is issued by "
            f"'{_name(top, 'issuer')}', which is not in {store}. Use a certificate from a "
            "public CA, and serve the full chain"
        )
    return (
        f"the certificate chain does not verify against {store}: {facts.verify_message}. "
        "Use a certificate from a public CA"
    )


class _Verdicts:
    """The https verdicts being decided; the first failure is the one root cause."""

    def __init__(self) -> None:
        self.found: dict[str, tuple[Verdict, str]] = {}
        self.blocker: str | None = None

    def set(self, check: str, verdict: Verdict, detail: str) -> None:
        self.found[check] = (verdict, detail)
        if verdict == "fail":
            self.blocker = self.blocker or check

    def results(self) -> list[CheckResult]:
        out = []
        for check in CHECK_IDS:
            if check in self.found:
                verdict, detail = self.found[check]
                out.append(CheckResult(check, "https", verdict, detail))
            else:
                out.append(blocked(check, "https", self.blocker or "https.handshake"))
        return out


def judge(facts: TlsFacts, *, warn_days: float = EXPIRY_WARN_DAYS) -> list[CheckResult]:
    """Pure: the five https verdicts from what the handshakes showed. One cause fails; the
    checks it makes impossible are skipped with ``blocked_by``."""
    v = _Verdicts()
    where = f"{facts.host}:{facts.port}"
    if facts.connect_error is not None:
        v.set(
            "https.handshake",
            "fail",
            f"cannot connect to {where} ({facts.connect_error}); is the endpoint up and "
            "reachable from here?",
        )
    elif facts.legacy_version is not None:
        v.set("https.handshake", "pass", f"a TLS server answers at {where}")
        v.set(
            "https.tls_version",
            "fail",
            f"the server offers only {facts.legacy_version}; senders require TLS 1.2 or later. "
            "Enable TLS 1.2 and 1.3 on the server",
        )
    elif facts.handshake_error is not None:
        v.set(
            "https.handshake",
            "fail",
            f"TLS handshake with {where} failed ({facts.handshake_error}); is the endpoint "
            "serving TLS 1.2 or later on this port?",
        )
    else:
        _protocol(facts, v)
        _certificate(facts, v)
        if "https.expiry" not in v.found:
            _expiry(facts, v, warn_days)
    return v.results()


def _protocol(facts: TlsFacts, v: _Verdicts) -> None:
    if facts.version is None:
        # Only a certificate error hides the version: the verifying handshake, which allows
        # TLS 1.2 and later only, got as far as the certificate.
        v.set("https.handshake", "pass", "TLS 1.2 or later, up to the certificate")
        v.set("https.tls_version", "pass", "TLS 1.2 or later")
        return
    v.set("https.handshake", "pass", f"{facts.version}, {facts.cipher}")
    if facts.version in MODERN:
        v.set("https.tls_version", "pass", str(facts.version))
    else:
        v.set(
            "https.tls_version", "fail", f"negotiated {facts.version}; TLS 1.2 or later is required"
        )


def _certificate(facts: TlsFacts, v: _Verdicts) -> None:
    code = facts.verify_code
    if code in (CERT_HAS_EXPIRED, CERT_NOT_YET_VALID):
        when = f" ({facts.not_after})" if facts.not_after else ""
        word = "expired" if code == CERT_HAS_EXPIRED else "is not valid yet"
        v.set("https.expiry", "fail", f"the certificate {word}{when}; renew it")
    elif code in (HOSTNAME_MISMATCH, IP_MISMATCH):
        v.set("https.chain", "pass", "the chain verifies (only the name does not match)")
        v.set(
            "https.hostname",
            "fail",
            f"the certificate does not name {facts.host} ({facts.verify_message}); issue it "
            "for the host in the URL",
        )
    elif code is not None:
        v.set("https.chain", "fail", _chain_cause(facts))
    else:
        if facts.dev_only:
            v.set(
                "https.chain",
                "pass",
                f"development-only pass: the chain verifies only against --ca "
                f"{facts.ca_file}, not the system trust store; a real sender will refuse it",
            )
        else:
            v.set("https.chain", "pass", "verified against the system trust store")
        v.set("https.hostname", "pass", f"certificate valid for {facts.host}")


def _expiry(facts: TlsFacts, v: _Verdicts, warn_days: float) -> None:
    if facts.seconds_left is None:
        v.set("https.expiry", "warn", "could not read the certificate's expiry")
        return
    days = facts.seconds_left / 86400
    if days < warn_days:
        v.set(
            "https.expiry",
            "warn",
            f"the certificate expires in {days:.1f} days ({facts.not_after}); "
            f"renew it (warning below {warn_days:g} days)",
        )
    else:
        v.set("https.expiry", "pass", f"valid for {days:.0f} more days")


def blocker_of(results: list[CheckResult]) -> str | None:
    return next((r.id for r in results if r.verdict == "fail"), None)


async def run(ctx: Context) -> list[CheckResult]:
    if ctx.connection_blocker is not None:
        return [blocked(i, "https", ctx.connection_blocker) for i in CHECK_IDS]
    parts = urlsplit(ctx.settings.url)
    assert parts.hostname is not None  # the url checks block anything else
    timer = Timer()
    facts = await gather(parts.hostname, parts.port or 443, ctx)
    spent = timer.result("https.handshake", "https", "pass", "").duration_ms
    results = judge(facts)
    results[0] = CheckResult(**{**results[0].__dict__, "duration_ms": spent})
    ctx.connection_blocker = blocker_of(results)
    return results
