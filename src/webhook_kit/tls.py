"""Development certificates (a trustme CA and a leaf) and the SSL contexts built from them.

The CA's private key lives only in memory while the leaf is issued and is never written, so the
files in ``certs/`` cannot be used to sign anything else. Verification is never switched off:
clients trust the system store plus, when given, one explicit CA file.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.x509.oid import ExtensionOID

from webhook_kit.errors import CertificateError

#: The names a development leaf covers.
LEAF_IDENTITIES: Final[tuple[str, ...]] = ("localhost", "127.0.0.1", "::1")
#: Certificates are renewed once they have fewer days left than this.
RENEW_DAYS: Final[int] = 30
LEAF_LIFETIME_DAYS: Final[int] = 365

CA_FILE: Final[str] = "ca.pem"
CERT_FILE: Final[str] = "server.pem"
KEY_FILE: Final[str] = "server-key.pem"


@dataclass(frozen=True)
class CertFiles:
    """Where a server's certificate material is. ``ca_file`` is ``None`` for a user's own cert."""

    cert_file: Path
    key_file: Path
    ca_file: Path | None


@dataclass(frozen=True)
class CertInfo:
    subject: str
    identities: tuple[str, ...]
    not_after: dt.datetime
    days_left: float


def read_cert_info(path: Path, *, now: dt.datetime | None = None) -> CertInfo:
    """Facts about the first certificate in ``path``; raises :class:`CertificateError`."""
    try:
        cert = x509.load_pem_x509_certificate(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise CertificateError(f"cannot read certificate {path}: {exc}") from exc
    now = now or dt.datetime.now(dt.UTC)
    not_after = cert.not_valid_after_utc
    identities: list[str] = []
    try:
        san = cert.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME).value
    except x509.ExtensionNotFound:
        san = None
    if isinstance(san, x509.SubjectAlternativeName):
        identities.extend(san.get_values_for_type(x509.DNSName))
        identities.extend(str(ip) for ip in san.get_values_for_type(x509.IPAddress))
    return CertInfo(
        subject=cert.subject.rfc4514_string(),
        identities=tuple(identities),
        not_after=not_after,
        days_left=(not_after - now).total_seconds() / 86400,
    )


def _usable(directory: Path, now: dt.datetime) -> bool:
    files = [directory / CA_FILE, directory / CERT_FILE, directory / KEY_FILE]
    if not all(f.is_file() for f in files):
        return False
    try:
        leaf = read_cert_info(directory / CERT_FILE, now=now)
        ca = read_cert_info(directory / CA_FILE, now=now)
        server_context(CertFiles(directory / CERT_FILE, directory / KEY_FILE, None))
        _verify_chain(directory / CERT_FILE, directory / CA_FILE)
    except CertificateError:
        return False
    wanted = {str(ipaddress.ip_address(i)) if _is_ip(i) else i for i in LEAF_IDENTITIES}
    return min(leaf.days_left, ca.days_left) >= RENEW_DAYS and wanted <= set(leaf.identities)


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _verify_chain(cert_file: Path, ca_file: Path) -> None:
    leaf = x509.load_pem_x509_certificate(cert_file.read_bytes())
    ca = x509.load_pem_x509_certificate(ca_file.read_bytes())
    try:
        leaf.verify_directly_issued_by(ca)
    except (InvalidSignature, ValueError, TypeError) as exc:
        raise CertificateError(f"{cert_file} was not issued by {ca_file}") from exc


def ensure_dev_certs(
    directory: Path, *, now: dt.datetime | None = None, force: bool = False
) -> tuple[CertFiles, bool]:
    """Reuse the certificates in ``directory`` while usable, else make new ones.

    Returns the files and whether they were (re)made.
    """
    import trustme  # deferred: only needed when certificates are actually made

    now = now or dt.datetime.now(dt.UTC)
    directory = directory.resolve()
    files = CertFiles(directory / CERT_FILE, directory / KEY_FILE, directory / CA_FILE)
    if not force and _usable(directory, now):
        return files, False
    try:
        directory.mkdir(parents=True, exist_ok=True)
        ca = trustme.CA(organization_name="webhook-kit development CA")
        leaf = ca.issue_cert(
            *LEAF_IDENTITIES,
            common_name="localhost",
            organization_name="webhook-kit",
            not_before=now - dt.timedelta(minutes=5),
            not_after=now + dt.timedelta(days=LEAF_LIFETIME_DAYS),
        )
        _write_atomic(files.ca_file, ca.cert_pem.bytes(), mode=0o644)  # type: ignore[arg-type]
        _write_atomic(
            files.cert_file, b"".join(b.bytes() for b in leaf.cert_chain_pems), mode=0o644
        )
        _write_atomic(files.key_file, leaf.private_key_pem.bytes(), mode=0o600)
    except OSError as exc:
        raise CertificateError(f"cannot write certificates to {directory}: {exc}") from exc
    return files, True


def _write_atomic(path: Path, data: bytes, *, mode: int) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def server_context(files: CertFiles) -> ssl.SSLContext:
    """A TLS >= 1.2 server context; raises :class:`CertificateError` for unusable files."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(str(files.cert_file), str(files.key_file))
    except (OSError, ssl.SSLError) as exc:
        raise CertificateError(
            f"cannot use certificate {files.cert_file} with key {files.key_file}: {exc}"
        ) from exc
    return ctx


def client_context(ca_file: Path | None = None) -> ssl.SSLContext:
    """A verifying client context: the system store, plus ``ca_file`` when given."""
    ctx = ssl.create_default_context()
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if ca_file is not None:
        try:
            ctx.load_verify_locations(cafile=str(ca_file))
        except (OSError, ssl.SSLError) as exc:
            raise CertificateError(f"cannot read CA file {ca_file}: {exc}") from exc
    return ctx


def pinned_context(cert_file: Path) -> ssl.SSLContext:
    """A client context that trusts exactly the server certificate in ``cert_file``.

    Used by a server to probe itself for readiness when it runs a user's own certificate whose CA
    we do not know; the certificate is still verified, by pinning rather than by chain.
    """
    ctx = ssl.create_default_context(cafile=str(cert_file))
    ctx.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    ctx.check_hostname = False
    return ctx
