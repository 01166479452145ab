"""The one registry of client-authentication methods and the credentials each one needs."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import trustme
from cryptography.hazmat.primitives.asymmetric import ec

from tests.oauth.keys import client_cert, ec_key, private_pem, public_pem, rsa_key
from webhook_kit.errors import CertificateError, ConfigError
from webhook_kit.oauth.client_auth import (
    ALGORITHMS,
    DEFAULT_METHOD,
    METHODS,
    REGISTRY,
    SECRET_METHODS,
    TLS_METHODS,
    ClientCredentials,
    Credential,
    describe_methods,
    needs,
    parse_algorithm,
    parse_method,
)

RSA_PEM = private_pem(rsa_key())
EC_PEM = private_pem(ec_key())
THUMB = "A" * 43


def test_the_registry_lists_every_method_once_default_first() -> None:
    assert METHODS == (
        "client_secret_basic",
        "client_secret_post",
        "private_key_jwt",
        "tls_client_auth",
        "self_signed_tls_client_auth",
    )
    assert DEFAULT_METHOD == METHODS[0]
    assert set(REGISTRY) == set(METHODS)
    assert SECRET_METHODS == {"client_secret_basic", "client_secret_post"}
    assert TLS_METHODS == {"tls_client_auth", "self_signed_tls_client_auth"}
    assert needs("private_key_jwt") is Credential.PRIVATE_KEY
    assert ALGORITHMS == ("RS256", "PS256", "ES256")
    text = describe_methods()
    assert all(m in text for m in METHODS) and "RFC 8705" in text and "RFC 7523" in text


def test_parse_method_and_algorithm_name_the_field_and_the_choices() -> None:
    assert parse_method("private_key_jwt") == "private_key_jwt"
    with pytest.raises(ConfigError, match=r"^auth: unknown method 'client_secret_jwt'; use one of"):
        parse_method("client_secret_jwt", name="auth")
    assert parse_algorithm("PS256") == "PS256"
    for bad in ("none", "HS256", "rs256", "EdDSA"):
        with pytest.raises(ConfigError, match=r"^algorithm: unsupported algorithm"):
            parse_algorithm(bad)


@pytest.mark.parametrize("method", sorted(SECRET_METHODS))
def test_secret_methods_need_a_secret(method: str) -> None:
    credentials = ClientCredentials("c", method, secret="s3cret")  # type: ignore[arg-type]
    assert "s3cret" not in repr(credentials)
    assert credentials.client_identity() is None
    for missing in (None, ""):
        with pytest.raises(ConfigError, match=f"^secret: {method} needs a client secret"):
            ClientCredentials("c", method, secret=missing)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="^private_key: .* does not sign"):
        ClientCredentials("c", method, secret="s", private_key=RSA_PEM)  # type: ignore[arg-type]


def test_default_method_is_client_secret_basic() -> None:
    assert ClientCredentials("c", secret="s").method == "client_secret_basic"


@pytest.mark.parametrize(
    ("algorithm", "pem"), [("RS256", RSA_PEM), ("PS256", RSA_PEM), ("ES256", EC_PEM)]
)
def test_private_key_jwt_accepts_matching_keys(algorithm: str, pem: str) -> None:
    credentials = ClientCredentials(
        "c",
        "private_key_jwt",
        private_key=pem,
        key_id="k1",
        algorithm=algorithm,  # type: ignore[arg-type]
        x5t_s256=THUMB,
    )
    assert "PRIVATE" not in repr(credentials) and "k1" in repr(credentials)
    assert credentials.info.credential is Credential.PRIVATE_KEY


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "^private_key: private_key_jwt needs a private key"),
        ({"private_key": "not a pem"}, "^private_key: not a PEM private key"),
        ({"private_key": public_pem(rsa_key())}, "^private_key: this is a public key"),
        (
            {"private_key": private_pem(rsa_key(), password=b"pw")},
            "^private_key: the private key is encrypted",
        ),
        (
            {"private_key": "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"},
            "^private_key: not a readable PEM private key",
        ),
        ({"private_key": EC_PEM, "algorithm": "RS256"}, "^private_key: RS256 needs an RSA"),
        ({"private_key": EC_PEM, "algorithm": "PS256"}, "^private_key: PS256 needs an RSA"),
        ({"private_key": RSA_PEM, "algorithm": "ES256"}, "^private_key: ES256 needs an EC P-256"),
        (
            {"private_key": private_pem(ec_key(ec.SECP384R1())), "algorithm": "ES256"},
            "^private_key: ES256 needs an EC P-256",
        ),
        ({"private_key": private_pem(rsa_key(1024))}, "^private_key: the RSA key has 1024 bits"),
        (
            {"private_key": RSA_PEM, "algorithm": "HS256"},
            "^algorithm: unsupported algorithm 'HS256'",
        ),
        ({"private_key": RSA_PEM, "algorithm": "none"}, "^algorithm: unsupported algorithm 'none'"),
        ({"private_key": RSA_PEM, "secret": "s"}, "^secret: private_key_jwt does not use"),
        ({"private_key": RSA_PEM, "x5t_s256": "abc"}, "^x5t_s256: not the base64url SHA-256"),
        ({"private_key": RSA_PEM, "x5t_s256": "A" * 42 + "="}, "^x5t_s256: "),
        ({"private_key": RSA_PEM, "x5t_s256": "*" * 43}, "^x5t_s256: "),
        ({"private_key": RSA_PEM, "assertion_audience": "resource"}, "^assertion_audience: "),
    ],
)
def test_private_key_jwt_refusals_name_the_field(kwargs: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        ClientCredentials("c", "private_key_jwt", **kwargs)  # type: ignore[arg-type]


def test_unknown_method_and_empty_client_id() -> None:
    with pytest.raises(ConfigError, match="^method: unknown method 'basic'"):
        ClientCredentials("c", "basic", secret="s")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="^client_id: must not be empty"):
        ClientCredentials("", secret="s")


def test_assertion_audience() -> None:
    to_endpoint = ClientCredentials("c", "private_key_jwt", private_key=RSA_PEM)
    assert to_endpoint.audience_for(token_endpoint="https://as/token", issuer="https://as") == (
        "https://as/token"
    )
    to_issuer = ClientCredentials(
        "c", "private_key_jwt", private_key=RSA_PEM, assertion_audience="issuer"
    )
    assert to_issuer.audience_for(token_endpoint="https://as/token", issuer="https://as") == (
        "https://as"
    )
    with pytest.raises(ConfigError, match="^assertion_audience: 'issuer' needs"):
        to_issuer.audience_for(token_endpoint="https://as/token", issuer=None)


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.mark.parametrize("method", sorted(TLS_METHODS))
def test_tls_methods_need_a_certificate_and_check_it(
    method: str, ca: trustme.CA, tmp_path: Path
) -> None:
    cert_file, key_file, _ = client_cert(ca, tmp_path)
    credentials = ClientCredentials("c", method, cert_file=cert_file, key_file=key_file)  # type: ignore[arg-type]
    identity = credentials.client_identity()
    assert identity is not None and identity.cert_file == cert_file
    with pytest.raises(ConfigError, match=f"^cert_file: {method} needs a client certificate"):
        ClientCredentials("c", method)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="^key_file: a client certificate needs both"):
        ClientCredentials("c", method, cert_file=cert_file)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="^cert_file: a client certificate needs both"):
        ClientCredentials("c", method, key_file=key_file)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=f"^secret: {method} does not use"):
        ClientCredentials("c", method, secret="s", cert_file=cert_file, key_file=key_file)  # type: ignore[arg-type]


def test_client_identity_refuses_expired_and_mismatched(ca: trustme.CA, tmp_path: Path) -> None:
    now = dt.datetime.now(dt.UTC)
    cert_file, key_file, _ = client_cert(
        ca, tmp_path, not_before=now - dt.timedelta(days=3), not_after=now - dt.timedelta(days=1)
    )
    expired = ClientCredentials("c", "tls_client_auth", cert_file=cert_file, key_file=key_file)
    with pytest.raises(CertificateError, match="^cert_file .* expired"):
        expired.client_identity()
    assert expired.client_identity(now=now - dt.timedelta(days=2)) is not None
    other = tmp_path / "other-key.pem"
    other.write_text(EC_PEM)
    mismatched = ClientCredentials("c", "tls_client_auth", cert_file=cert_file, key_file=other)
    with pytest.raises(CertificateError, match="^cert_file: .* does not match"):
        mismatched.client_identity(now=now - dt.timedelta(days=2))


def test_a_certificate_may_accompany_any_method(ca: trustme.CA, tmp_path: Path) -> None:
    """A certificate-bound token or a webhook URL behind mTLS needs the certificate whatever
    the token endpoint's method."""
    cert_file, key_file, _ = client_cert(ca, tmp_path)
    credentials = ClientCredentials(
        "c",
        "private_key_jwt",
        private_key=EC_PEM,
        algorithm="ES256",
        cert_file=cert_file,
        key_file=key_file,
    )
    assert credentials.client_identity() is not None
