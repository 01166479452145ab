"""Mutual TLS client identities (RFC 8705): a client certificate with its key, checked before use.

A bank's token endpoint refuses a certificate that does not match its key, or one that has
expired, with a bare TLS alert; checking both here turns that into a message naming the file.
The thumbprint (``x5t#S256``) is what a certificate-bound token's ``cnf`` claim carries.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_pem_private_key,
)
from cryptography.x509.oid import ExtensionOID

from webhook_kit.errors import CertificateError
from webhook_kit.tls import client_context


def certificate_thumbprint(der: bytes) -> str:
    """The RFC 8705 ``x5t#S256`` of a DER certificate: base64url(SHA-256), no padding."""
    return b64url(hashlib.sha256(der).digest())


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def subject_dn(cert: x509.Certificate) -> str:
    """The subject as an RFC 4514 string, the form RFC 8705 ``tls_client_auth_subject_dn`` uses."""
    return cert.subject.rfc4514_string()


def subject_alt_names(cert: x509.Certificate) -> tuple[str, ...]:
    """DNS names, URIs, IP addresses and e-mail addresses in the certificate's SAN."""
    try:
        san = cert.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME).value
    except x509.ExtensionNotFound:
        return ()
    if not isinstance(san, x509.SubjectAlternativeName):
        return ()
    names: list[str] = []
    names.extend(san.get_values_for_type(x509.DNSName))
    names.extend(san.get_values_for_type(x509.UniformResourceIdentifier))
    names.extend(str(ip) for ip in san.get_values_for_type(x509.IPAddress))
    names.extend(san.get_values_for_type(x509.RFC822Name))
    return tuple(names)


def check_validity(cert: x509.Certificate, now: dt.datetime, *, name: str) -> None:
    """Raise :class:`CertificateError` naming ``name`` unless ``now`` is within the validity."""
    if now < cert.not_valid_before_utc:
        raise CertificateError(
            f"{name}: the certificate is not valid before {cert.not_valid_before_utc.isoformat()}"
        )
    if now >= cert.not_valid_after_utc:
        raise CertificateError(
            f"{name}: the certificate expired on {cert.not_valid_after_utc.isoformat()}"
        )


def load_certificate(data: bytes, *, name: str) -> x509.Certificate:
    """The first certificate of a PEM (or DER) file's content; the error names ``name``."""
    try:
        if b"-----BEGIN" in data:
            return x509.load_pem_x509_certificate(data)
        return x509.load_der_x509_certificate(data)
    except ValueError as exc:
        raise CertificateError(f"{name}: not a PEM or DER X.509 certificate") from exc


@dataclass(frozen=True)
class ClientIdentity:
    """A client certificate and its key, known to match and to be valid when loaded."""

    cert_file: Path
    key_file: Path
    certificate: x509.Certificate = field(repr=False, compare=False)

    @property
    def thumbprint(self) -> str:
        return certificate_thumbprint(self.certificate.public_bytes(Encoding.DER))

    @property
    def subject(self) -> str:
        return subject_dn(self.certificate)

    @property
    def not_after(self) -> dt.datetime:
        return self.certificate.not_valid_after_utc

    def ssl_context(self, ca_file: Path | None = None) -> ssl.SSLContext:
        """A verifying client context (system store plus ``ca_file``) presenting this identity."""
        ctx = client_context(ca_file)
        try:
            ctx.load_cert_chain(str(self.cert_file), str(self.key_file))
        except (OSError, ssl.SSLError) as exc:
            raise CertificateError(
                f"cannot use client certificate {self.cert_file} with key {self.key_file}: {exc}"
            ) from exc
        return ctx


def load_client_identity(
    cert_file: Path,
    key_file: Path,
    *,
    now: dt.datetime | None = None,
    cert_field: str = "cert_file",
    key_field: str = "key_file",
) -> ClientIdentity:
    """Read and check a client certificate and key; errors name the field (``cert_field``...)."""
    now = now or dt.datetime.now(dt.UTC)
    try:
        cert_bytes = Path(cert_file).read_bytes()
    except OSError as exc:
        raise CertificateError(f"{cert_field}: cannot read {cert_file}: {exc.strerror}") from exc
    try:
        key_bytes = Path(key_file).read_bytes()
    except OSError as exc:
        raise CertificateError(f"{key_field}: cannot read {key_file}: {exc.strerror}") from exc
    cert = load_certificate(cert_bytes, name=f"{cert_field} {cert_file}")
    try:
        key = load_pem_private_key(key_bytes, password=None)
    except TypeError as exc:
        raise CertificateError(
            f"{key_field}: {key_file} is encrypted; give an unencrypted PEM private key"
        ) from exc
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise CertificateError(f"{key_field}: {key_file} is not a PEM private key") from exc
    spki = (Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    if key.public_key().public_bytes(*spki) != cert.public_key().public_bytes(*spki):
        raise CertificateError(
            f"{cert_field}: the certificate in {cert_file} does not match the key in {key_file}"
        )
    check_validity(cert, now, name=f"{cert_field} {cert_file}")
    return ClientIdentity(Path(cert_file), Path(key_file), cert)


def peer_certificate(scope: Mapping[str, Any]) -> x509.Certificate | None:
    """The client certificate of an ASGI request, from the ASGI TLS extension
    (``client_cert_chain[0]``, verified during the handshake), or ``None``."""
    extensions = scope.get("extensions") or {}
    tls = extensions.get("tls") if isinstance(extensions, Mapping) else None
    chain = tls.get("client_cert_chain") if isinstance(tls, Mapping) else None
    if not chain:
        return None
    leaf = chain[0]
    try:
        return x509.load_pem_x509_certificate(leaf.encode() if isinstance(leaf, str) else leaf)
    except (ValueError, TypeError):
        return None


def peer_thumbprint(scope: Mapping[str, Any]) -> str | None:
    """``x5t#S256`` of the request's client certificate, or ``None`` without one."""
    cert = peer_certificate(scope)
    return None if cert is None else certificate_thumbprint(cert.public_bytes(Encoding.DER))
