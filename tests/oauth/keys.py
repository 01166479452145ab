"""Real key material for the OAuth tests: keys from cryptography, certificates from trustme."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import trustme
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import (
    BestAvailableEncryption,
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

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
        not_before=not_before or now - dt.timedelta(minutes=5),
        not_after=not_after or now + dt.timedelta(days=30),
    )
    cert_file, key_file = directory / f"{name}.pem", directory / f"{name}-key.pem"
    leaf.cert_chain_pems[0].write_to_path(str(cert_file))
    leaf.private_key_pem.write_to_path(str(key_file))
    return cert_file, key_file, leaf
