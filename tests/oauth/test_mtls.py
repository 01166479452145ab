"""Client certificates for mutual TLS: loading, matching, validity, thumbprints and contexts."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import ssl
from pathlib import Path

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from tests.oauth.keys import client_cert, ec_key, private_pem
from webhook_kit.errors import CertificateError
from webhook_kit.oauth.mtls import (
    certificate_thumbprint,
    check_validity,
    load_certificate,
    load_client_identity,
    subject_alt_names,
    subject_dn,
)

#: An hour ahead of collection: certificates the fixtures make later (a long run collects its
#: tests minutes before they run) are already valid then, and valid for years after.
NOW = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def test_loads_a_matching_valid_pair(ca: trustme.CA, tmp_path: Path) -> None:
    cert_file, key_file, leaf = client_cert(ca, tmp_path)
    identity = load_client_identity(cert_file, key_file, now=NOW)
    der = x509.load_pem_x509_certificate(leaf.cert_chain_pems[0].bytes()).public_bytes(Encoding.DER)
    expected = base64.urlsafe_b64encode(hashlib.sha256(der).digest()).rstrip(b"=").decode()
    assert identity.thumbprint == expected == certificate_thumbprint(der)
    assert len(identity.thumbprint) == 43 and "=" not in identity.thumbprint
    assert "CN=sender.example" in identity.subject and "O=Sender Bank" in identity.subject
    assert subject_alt_names(identity.certificate) == ("sender.example",)
    assert identity.not_after > NOW
    assert "BEGIN" not in repr(identity)


def test_mismatched_key_names_the_certificate(ca: trustme.CA, tmp_path: Path) -> None:
    cert_file, _, _ = client_cert(ca, tmp_path, name="a")
    other = tmp_path / "other-key.pem"
    other.write_text(private_pem(ec_key()))
    with pytest.raises(CertificateError, match=r"cert_file: .* does not match the key"):
        load_client_identity(cert_file, other, now=NOW)


def test_expired_certificate_is_refused(ca: trustme.CA, tmp_path: Path) -> None:
    cert_file, key_file, _ = client_cert(
        ca,
        tmp_path,
        not_before=NOW - dt.timedelta(days=10),
        not_after=NOW - dt.timedelta(days=1),
    )
    with pytest.raises(CertificateError, match=r"cert_file .* expired on"):
        load_client_identity(cert_file, key_file, now=NOW)
    # The same pair was fine while it was valid: the clock decides, not the files.
    load_client_identity(cert_file, key_file, now=NOW - dt.timedelta(days=5))


def test_not_yet_valid_certificate_is_refused(ca: trustme.CA, tmp_path: Path) -> None:
    cert_file, key_file, _ = client_cert(
        ca, tmp_path, not_before=NOW + dt.timedelta(days=1), not_after=NOW + dt.timedelta(days=9)
    )
    with pytest.raises(CertificateError, match="not valid before"):
        load_client_identity(cert_file, key_file, now=NOW)


def test_unreadable_files_name_their_field(ca: trustme.CA, tmp_path: Path) -> None:
    cert_file, key_file, _ = client_cert(ca, tmp_path)
    with pytest.raises(CertificateError, match="^cert_file: cannot read"):
        load_client_identity(tmp_path / "missing.pem", key_file, now=NOW)
    with pytest.raises(CertificateError, match="^key_file: cannot read"):
        load_client_identity(cert_file, tmp_path / "missing.pem", now=NOW)
    with pytest.raises(CertificateError, match="^client_cert: cannot read"):
        load_client_identity(tmp_path / "x", key_file, now=NOW, cert_field="client_cert")


def test_wrong_formats_are_named(ca: trustme.CA, tmp_path: Path) -> None:
    cert_file, key_file, _ = client_cert(ca, tmp_path)
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
    with pytest.raises(CertificateError, match="cert_file .* not a PEM or DER"):
        load_client_identity(garbage, key_file, now=NOW)
    # A certificate where the key should be.
    with pytest.raises(CertificateError, match="key_file: .* is not a PEM private key"):
        load_client_identity(cert_file, cert_file, now=NOW)
    encrypted = tmp_path / "encrypted-key.pem"
    encrypted.write_text(private_pem(ec_key(), password=b"pw"))
    with pytest.raises(CertificateError, match="key_file: .* is encrypted"):
        load_client_identity(cert_file, encrypted, now=NOW)


def test_der_certificates_are_read(ca: trustme.CA, tmp_path: Path) -> None:
    _, _, leaf = client_cert(ca, tmp_path)
    pem = leaf.cert_chain_pems[0].bytes()
    der = x509.load_pem_x509_certificate(pem).public_bytes(Encoding.DER)
    assert load_certificate(der, name="x").public_bytes(Encoding.DER) == der


def test_check_validity_boundaries(ca: trustme.CA) -> None:
    cert = x509.load_pem_x509_certificate(ca.cert_pem.bytes())
    check_validity(cert, cert.not_valid_before_utc, name="ca")
    with pytest.raises(CertificateError, match="^ca: the certificate expired"):
        check_validity(cert, cert.not_valid_after_utc, name="ca")
    assert "O=" in subject_dn(cert)
    assert subject_alt_names(cert) == ()


def test_ssl_context_presents_the_certificate_and_verifies(ca: trustme.CA, tmp_path: Path) -> None:
    cert_file, key_file, _ = client_cert(ca, tmp_path)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    ctx = load_client_identity(cert_file, key_file, now=NOW).ssl_context(ca_file)
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
    assert ctx.minimum_version >= ssl.TLSVersion.TLSv1_2
    ca_subject = x509.load_pem_x509_certificate(ca.cert_pem.bytes()).subject.rfc4514_string()
    trusted = [dict(rdn[0] for rdn in c["subject"]) for c in ctx.get_ca_certs()]  # type: ignore[misc]
    assert any(
        t.get("organizationName") and f"O={t['organizationName']}" in ca_subject for t in trusted
    )
    # The key file vanishing after the check is reported, not crashed on.
    identity = load_client_identity(cert_file, key_file, now=NOW)
    key_file.unlink()
    with pytest.raises(CertificateError, match="cannot use client certificate"):
        identity.ssl_context(ca_file)
