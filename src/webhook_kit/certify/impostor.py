"""Credentials certify makes to impersonate the sender: the client's own identity with the one
thing that proves it replaced (another private key, another certificate under the same
subject), so that only checking that proof can refuse it.

Key material lives in memory and in a directory the caller owns for the length of a check;
nothing here is ever shown in a report.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from webhook_kit.oauth.client_auth import SigningAlgorithm


def private_key_pem(algorithm: SigningAlgorithm) -> str:
    """A fresh PEM private key for ``algorithm`` (what a thief without the real key has)."""
    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
    if algorithm == "ES256":
        key = ec.generate_private_key(ec.SECP256R1())
    else:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode("ascii")


@dataclass(frozen=True)
class CertificateFiles:
    cert_file: Path
    key_file: Path


def _subject_of(cert_file: Path | None) -> x509.Name:
    fallback = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "webhook-kit certify")])
    if cert_file is None:
        return fallback
    try:
        data = cert_file.read_bytes()
        cert = (
            x509.load_pem_x509_certificate(data)
            if b"-----BEGIN" in data
            else x509.load_der_x509_certificate(data)
        )
    except (OSError, ValueError):
        return fallback
    return cert.subject


def other_certificate(
    directory: Path, *, like: Path | None = None, now: dt.datetime | None = None
) -> CertificateFiles:
    """A self-signed client certificate with the subject of ``like`` (the real one), written to
    ``directory``: a receiver that matches subjects but not keys or issuers would take it."""
    now = now or dt.datetime.now(dt.UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = _subject_of(like)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    files = CertificateFiles(
        directory / "certify-other-cert.pem", directory / "certify-other-key.pem"
    )
    files.cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files.key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    files.key_file.chmod(0o600)
    return files
