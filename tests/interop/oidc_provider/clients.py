"""The sender's clients at oidc-provider, one per client authentication method, with real keys
and certificates: the registrations oidc-provider gets (RFC 7591 metadata) and the kit's own
:class:`ClientCredentials` for each."""

from __future__ import annotations

import base64
import datetime as dt
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from cryptography.x509.oid import NameOID
from joserfc.jwk import ECKey, RSAKey

from tests.interop.oidc_provider.stack import ServerFiles
from webhook_kit.oauth.client_auth import ClientCredentials, SigningAlgorithm
from webhook_kit.oauth.mtls import certificate_thumbprint

#: The DNS name in the CA-issued client certificate, registered as tls_client_auth_san_dns.
CLIENT_DNS = "sender.example"


def pem_of(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()).decode()


def public_jwk(pem: str, *, kid: str, algorithm: SigningAlgorithm) -> dict[str, Any]:
    key = ECKey.import_key(pem) if algorithm == "ES256" else RSAKey.import_key(pem)
    return {**key.as_dict(private=False), "kid": kid, "alg": algorithm, "use": "sig"}


def self_signed(
    directory: Path,
    name: str,
    *,
    not_before: dt.datetime | None = None,
    not_after: dt.datetime | None = None,
) -> tuple[Path, Path, x509.Certificate]:
    """A self-signed EC certificate (``name.pem``, ``name-key.pem``)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{name}.sender.example")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or now - dt.timedelta(minutes=5))
        .not_valid_after(not_after or now + dt.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName(f"{name}.sender.example")]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / f"{name}.pem", directory / f"{name}-key.pem"
    cert_file.write_bytes(cert.public_bytes(Encoding.PEM))
    key_file.write_text(pem_of(key))
    return cert_file, key_file, cert


@dataclass(frozen=True)
class Pki:
    """Every key and certificate of the tests, on disk under one directory."""

    server: ServerFiles
    #: CA-issued client certificate (tls_client_auth) and its key.
    client_cert: Path
    client_key: Path
    #: A self-signed client certificate (self_signed_tls_client_auth) and its key.
    self_signed_cert: Path
    self_signed_key: Path
    self_signed_x5c: str
    rsa_pem: str = field(repr=False)
    ec_pem: str = field(repr=False)
    secret: str = field(repr=False)

    @property
    def client_thumbprint(self) -> str:
        cert = x509.load_pem_x509_certificate(self.client_cert.read_bytes())
        return certificate_thumbprint(cert.public_bytes(Encoding.DER))

    @property
    def self_signed_thumbprint(self) -> str:
        return certificate_thumbprint(base64.b64decode(self.self_signed_x5c))


def make_pki(directory: Path) -> Pki:
    directory.mkdir(parents=True, exist_ok=True)
    server_ca, client_ca = trustme.CA(), trustme.CA(organization_name="Sender Bank CA")
    leaf = server_ca.issue_cert("127.0.0.1", "localhost")
    server = ServerFiles(
        cert=directory / "server.pem",
        key=directory / "server-key.pem",
        ca=directory / "ca.pem",
        client_ca=directory / "client-ca.pem",
    )
    leaf.cert_chain_pems[0].write_to_path(str(server.cert))
    for pem in leaf.cert_chain_pems[1:]:
        pem.write_to_path(str(server.cert), append=True)
    leaf.private_key_pem.write_to_path(str(server.key))
    server_ca.cert_pem.write_to_path(str(server.ca))
    client_ca.cert_pem.write_to_path(str(server.client_ca))
    client = client_ca.issue_cert(CLIENT_DNS, common_name=CLIENT_DNS)
    client_cert, client_key = directory / "client.pem", directory / "client-key.pem"
    client.cert_chain_pems[0].write_to_path(str(client_cert))
    client.private_key_pem.write_to_path(str(client_key))
    ss_cert, ss_key, ss = self_signed(directory, "self-signed")
    return Pki(
        server=server,
        client_cert=client_cert,
        client_key=client_key,
        self_signed_cert=ss_cert,
        self_signed_key=ss_key,
        self_signed_x5c=base64.b64encode(ss.public_bytes(Encoding.DER)).decode(),
        rsa_pem=pem_of(rsa.generate_private_key(public_exponent=65537, key_size=2048)),
        ec_pem=pem_of(ec.generate_private_key(ec.SECP256R1())),
        secret=secrets.token_urlsafe(24) + "+/:%",
    )


def registrations(pki: Pki) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """oidc-provider's clients (and their secrets, apart): one per method, named after it."""
    ss_jwk = public_jwk(pki.self_signed_key.read_text(), kid="ss-1", algorithm="ES256")
    ss_jwk = {**ss_jwk, "x5c": [pki.self_signed_x5c]}
    del ss_jwk["alg"]
    keys = [
        public_jwk(pki.rsa_pem, kid="rsa-1", algorithm="PS256") | {"alg": "PS256"},
        public_jwk(pki.rsa_pem, kid="rsa-1r", algorithm="RS256"),
        public_jwk(pki.ec_pem, kid="ec-1", algorithm="ES256"),
    ]
    bound = {"tls_client_certificate_bound_access_tokens": True}
    clients: list[dict[str, Any]] = [
        {"client_id": "client_secret_basic", "token_endpoint_auth_method": "client_secret_basic"},
        {"client_id": "client_secret_post", "token_endpoint_auth_method": "client_secret_post"},
        {
            "client_id": "private_key_jwt",
            "token_endpoint_auth_method": "private_key_jwt",
            "jwks": {"keys": keys},
        },
        {
            "client_id": "tls_client_auth",
            "token_endpoint_auth_method": "tls_client_auth",
            "tls_client_auth_san_dns": CLIENT_DNS,
            **bound,
        },
        {
            "client_id": "self_signed_tls_client_auth",
            "token_endpoint_auth_method": "self_signed_tls_client_auth",
            "jwks": {"keys": [ss_jwk]},
            **bound,
        },
        {
            # A secret for the token, and a certificate the token is bound to (a bank that
            # wants mTLS on the webhook URL itself).
            "client_id": "secret_and_certificate",
            "token_endpoint_auth_method": "client_secret_basic",
            **bound,
        },
        {
            # Refuses any token that is not DPoP-bound.
            "client_id": "dpop_bound",
            "token_endpoint_auth_method": "private_key_jwt",
            "jwks": {"keys": keys},
            "dpop_bound_access_tokens": True,
        },
    ]
    secrets_by_id = {
        "client_secret_basic": pki.secret,
        "client_secret_post": pki.secret,
        "secret_and_certificate": pki.secret,
    }
    return clients, secrets_by_id


def credentials(pki: Pki, method: str, **options: Any) -> ClientCredentials:
    """The kit's credentials for the client registered as ``method``."""
    if method in ("client_secret_basic", "client_secret_post"):
        return ClientCredentials(method, method, secret=pki.secret, **options)  # type: ignore[arg-type]
    if method == "secret_and_certificate":
        return ClientCredentials(
            method,
            secret=pki.secret,
            cert_file=pki.client_cert,
            key_file=pki.client_key,
            **options,
        )
    if method in ("private_key_jwt", "dpop_bound"):
        algorithm = options.pop("algorithm", "ES256")
        pem, kid = (pki.ec_pem, "ec-1") if algorithm == "ES256" else (pki.rsa_pem, "rsa-1")
        if algorithm == "RS256":
            kid = "rsa-1r"
        return ClientCredentials(
            method,
            "private_key_jwt",
            private_key=pem,
            key_id=kid,
            algorithm=algorithm,
            **options,
        )
    if method == "tls_client_auth":
        return ClientCredentials(
            method, "tls_client_auth", cert_file=pki.client_cert, key_file=pki.client_key, **options
        )
    if method == "self_signed_tls_client_auth":
        return ClientCredentials(
            method,
            "self_signed_tls_client_auth",
            cert_file=pki.self_signed_cert,
            key_file=pki.self_signed_key,
            **options,
        )
    raise AssertionError(f"no client {method}")
