"""Real key material for the OAuth tests: keys from cryptography, certificates from trustme."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import (
    BestAvailableEncryption,
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


def rsa_key(bits: int = 2048) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def ec_key(curve: ec.EllipticCurve | None = None) -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(curve or ec.SECP256R1())


def private_pem(key: PrivateKey, password: bytes | None = None) -> str:
    encryption = BestAvailableEncryption(password) if password else NoEncryption()
    return key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, encryption).decode()


def public_pem(key: PrivateKey) -> str:
    return key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()


def client_cert(
    ca: trustme.CA,
    directory: Path,
    *,
    name: str = "client",
    identity: str = "sender.example",
    not_before: dt.datetime | None = None,
    not_after: dt.datetime | None = None,
) -> tuple[Path, Path, trustme.LeafCert]:
    """A client certificate issued by ``ca``, written as ``name.pem`` and ``name-key.pem``."""
    now = dt.datetime.now(dt.UTC)
    leaf = ca.issue_cert(
        identity,
        common_name=identity,
        organization_name="Sender Bank",
        organization_unit_name="Payments",
        not_before=not_before or now - dt.timedelta(minutes=5),
        not_after=not_after or now + dt.timedelta(days=30),
    )
    cert_file, key_file = directory / f"{name}.pem", directory / f"{name}-key.pem"
    leaf.cert_chain_pems[0].write_to_path(str(cert_file))
    leaf.private_key_pem.write_to_path(str(key_file))
    return cert_file, key_file, leaf


def self_signed_cert(
    directory: Path, *, name: str = "self", common_name: str = "sender.example"
) -> tuple[Path, Path]:
    """A self-signed client certificate (RFC 8705 section 2.2), as ``name.pem`` and its key."""
    key = ec_key()
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / f"{name}.pem", directory / f"{name}-key.pem"
    cert_file.write_bytes(cert.public_bytes(Encoding.PEM))
    key_file.write_text(private_pem(key))
    return cert_file, key_file


@dataclass(frozen=True)
class ClientPki:
    """A client CA and the certificates a test's senders present."""

    ca: trustme.CA
    ca_file: Path
    #: Issued by ``ca`` to sender.example, and to other.example.
    cert: tuple[Path, Path]
    other: tuple[Path, Path]
    #: Self-signed: the registered one, and a stranger's.
    self_signed: tuple[Path, Path]
    stranger: tuple[Path, Path]
    #: The sender's private_key_jwt key (EC P-256, PEM) and its public half.
    signing_pem: str
    public_key_file: Path


def make_client_pki(directory: Path) -> ClientPki:
    ca = trustme.CA(organization_name="Sender Bank client CA")
    ca_file = directory / "client-ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    cert_file, key_file, _ = client_cert(ca, directory)
    other_file, other_key, _ = client_cert(ca, directory, name="other", identity="other.example")
    signing = ec_key()
    public_key_file = directory / "sender-public.pem"
    public_key_file.write_text(public_pem(signing))
    return ClientPki(
        ca=ca,
        ca_file=ca_file,
        cert=(cert_file, key_file),
        other=(other_file, other_key),
        self_signed=self_signed_cert(directory),
        stranger=self_signed_cert(directory, name="stranger"),
        signing_pem=private_pem(signing),
        public_key_file=public_key_file,
    )
