"""Development certificates (a trustme CA and a leaf) and the SSL contexts built from them.

The CA's private key lives only in memory while the leaf is issued and is never written, so the
files in ``certs/`` cannot be used to sign anything else. Verification is never switched off:
clients trust the system store plus, when given, one explicit CA file.

The kit replaces only files it made: a ``ca.pem``, ``server.pem`` or ``server-key.pem`` that is
someone else's (their own CA, their server's private key) is never overwritten. The kit's files
are known by the SHA-256 it notes in MARKER_FILE when it writes them, or, for files made before
that, by their content (the CA's organization name, and a key that matches such a leaf).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import json
import os
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_pem_private_key,
)
from cryptography.x509.oid import ExtensionOID, NameOID

from webhook_kit.errors import CertificateError

#: The names a development leaf covers.
LEAF_IDENTITIES: Final[tuple[str, ...]] = ("localhost", "127.0.0.1", "::1")
#: Certificates are renewed once they have fewer days left than this.
RENEW_DAYS: Final[int] = 30
LEAF_LIFETIME_DAYS: Final[int] = 365

CA_FILE: Final[str] = "ca.pem"
CERT_FILE: Final[str] = "server.pem"
KEY_FILE: Final[str] = "server-key.pem"
#: Notes the SHA-256 of each file the kit wrote, so it knows which it may replace.
MARKER_FILE: Final[str] = ".webhook-kit-certs.json"
CA_ORGANIZATION: Final[str] = "webhook-kit development CA"


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


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _noted(directory: Path) -> dict[str, str]:
    try:
        noted = json.loads((directory / MARKER_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(noted, dict):
        return {}
    return {k: v for k, v in noted.items() if isinstance(k, str) and isinstance(v, str)}


def _kit_certificate(path: Path, *, issuer: bool) -> x509.Certificate | None:
    """The certificate in ``path`` if the kit's CA is its subject (or its issuer), else None."""
    try:
        cert = x509.load_pem_x509_certificate(path.read_bytes())
    except (OSError, ValueError):
        return None
    name = cert.issuer if issuer else cert.subject
    organizations = [a.value for a in name.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
    return cert if organizations == [CA_ORGANIZATION] else None


def _made_by_kit(directory: Path, name: str, noted: dict[str, str]) -> bool:
    path = directory / name
    try:
        if noted.get(name) == _sha256(path):
            return True
    except OSError:
        return False
    if name == CA_FILE:
        return _kit_certificate(path, issuer=False) is not None
    if name == CERT_FILE:
        return _kit_certificate(path, issuer=True) is not None
    # A key is the kit's when it belongs to the kit's leaf next to it.
    leaf = _kit_certificate(directory / CERT_FILE, issuer=True)
    if leaf is None:
        return False
    try:
        key = load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError, UnsupportedAlgorithm):
        return False
    spki = (Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return bool(key.public_key().public_bytes(*spki) == leaf.public_key().public_bytes(*spki))


def _check_replaceable(directory: Path, option: str) -> None:
    """Raise :class:`CertificateError` when a file the kit would write is someone else's."""
    noted = _noted(directory)
    for name in (CA_FILE, CERT_FILE, KEY_FILE):
        path = directory / name
        if not (path.exists() or path.is_symlink()):
            continue
        if path.is_symlink() or not path.is_file() or not _made_by_kit(directory, name, noted):
            raise CertificateError(
                f"{path} exists and was not made by webhook-kit; refusing to overwrite it. "
                f"Move it away, or choose another folder with {option}."
            )


def ensure_dev_certs(
    directory: Path,
    *,
    now: dt.datetime | None = None,
    force: bool = False,
    option: str = "--certs-dir",
) -> tuple[CertFiles, bool]:
    """Reuse the certificates in ``directory`` while usable, else make new ones.

    Returns the files and whether they were (re)made. Raises :class:`CertificateError` rather
    than replace a file the kit did not make (``option`` names the folder option in the message).
    """
    import trustme  # deferred: only needed when certificates are actually made

    now = now or dt.datetime.now(dt.UTC)
    directory = directory.resolve()
    files = CertFiles(directory / CERT_FILE, directory / KEY_FILE, directory / CA_FILE)
    if not force and _usable(directory, now):
        return files, False
    _check_replaceable(directory, option)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        ca = trustme.CA(organization_name=CA_ORGANIZATION)
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
        noted = {name: _sha256(directory / name) for name in (CA_FILE, CERT_FILE, KEY_FILE)}
        _write_atomic(directory / MARKER_FILE, json.dumps(noted, indent=2).encode(), mode=0o644)
    except OSError as exc:
        raise CertificateError(f"cannot write certificates to {directory}: {exc}") from exc
    return files, True


def _write_atomic(path: Path, data: bytes, *, mode: int) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    # O_EXCL: a planted symlink at the temporary name must not redirect the write.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
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
