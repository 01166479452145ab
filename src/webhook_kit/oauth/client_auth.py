"""The registry of OAuth client-authentication methods, and the credentials each one needs.

Every part of the kit that names a method (the sender's token client, ``emit``, the provider's
settings and their schema, certify, the pytest plugin, the receiver's issuer and its metadata)
reads it from here, so the list is spelled out once.

=============================== ============ ===================================================
method                          RFC          the client proves itself with
=============================== ============ ===================================================
``client_secret_basic``         6749 2.3.1   a shared secret in ``Authorization: Basic``
``client_secret_post``          6749 2.3.1   a shared secret in the form body
``private_key_jwt``             7523 2.2     an assertion signed with its private key
``tls_client_auth``             8705 2.1     a CA-issued client certificate (subject matched)
``self_signed_tls_client_auth`` 8705 2.2     a registered self-signed certificate
=============================== ============ ===================================================
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Final, Literal, get_args

from webhook_kit.errors import ConfigError

if TYPE_CHECKING:
    from webhook_kit.oauth.mtls import ClientIdentity

AuthMethod = Literal[
    "client_secret_basic",
    "client_secret_post",
    "private_key_jwt",
    "tls_client_auth",
    "self_signed_tls_client_auth",
]
#: Every method, the default first.
METHODS: Final[tuple[AuthMethod, ...]] = get_args(AuthMethod)
DEFAULT_METHOD: Final[AuthMethod] = "client_secret_basic"

SigningAlgorithm = Literal["RS256", "PS256", "ES256"]
#: The client assertion algorithms FAPI 2.0 allows (PS256, ES256) plus RS256, which most
#: authorization servers still default to. Never ``none`` nor an HMAC.
ALGORITHMS: Final[tuple[SigningAlgorithm, ...]] = get_args(SigningAlgorithm)
DEFAULT_ALGORITHM: Final[SigningAlgorithm] = "RS256"

AssertionAudience = Literal["token_endpoint", "issuer"]
ASSERTION_AUDIENCES: Final[tuple[AssertionAudience, ...]] = get_args(AssertionAudience)

#: RSA keys shorter than this are refused (FAPI 2.0 and NIST SP 800-131A).
MIN_RSA_BITS: Final[int] = 2048


class Credential(Enum):
    """What a method needs from the client."""

    SECRET = "secret"
    PRIVATE_KEY = "private key"
    CLIENT_CERTIFICATE = "client certificate"


@dataclass(frozen=True)
class MethodInfo:
    name: AuthMethod
    credential: Credential
    rfc: str
    summary: str


REGISTRY: Final[dict[AuthMethod, MethodInfo]] = {
    "client_secret_basic": MethodInfo(
        "client_secret_basic",
        Credential.SECRET,
        "RFC 6749 section 2.3.1",
        "a shared secret in an Authorization: Basic header",
    ),
    "client_secret_post": MethodInfo(
        "client_secret_post",
        Credential.SECRET,
        "RFC 6749 section 2.3.1",
        "a shared secret in the form body",
    ),
    "private_key_jwt": MethodInfo(
        "private_key_jwt",
        Credential.PRIVATE_KEY,
        "RFC 7523 section 2.2",
        "a JWT assertion signed with the client's private key",
    ),
    "tls_client_auth": MethodInfo(
        "tls_client_auth",
        Credential.CLIENT_CERTIFICATE,
        "RFC 8705 section 2.1",
        "a CA-issued client certificate whose subject is registered",
    ),
    "self_signed_tls_client_auth": MethodInfo(
        "self_signed_tls_client_auth",
        Credential.CLIENT_CERTIFICATE,
        "RFC 8705 section 2.2",
        "a self-signed client certificate registered by its thumbprint",
    ),
}

SECRET_METHODS: Final[frozenset[AuthMethod]] = frozenset(
    m for m, i in REGISTRY.items() if i.credential is Credential.SECRET
)
TLS_METHODS: Final[frozenset[AuthMethod]] = frozenset(
    m for m, i in REGISTRY.items() if i.credential is Credential.CLIENT_CERTIFICATE
)


def parse_method(value: str, *, name: str = "client_auth_method") -> AuthMethod:
    """``value`` as a method; :class:`ConfigError` naming ``name`` and the valid methods."""
    for method in METHODS:
        if value == method:
            return method
    raise ConfigError(f"{name}: unknown method {value!r}; use one of {', '.join(METHODS)}")


def parse_algorithm(value: str, *, name: str = "algorithm") -> SigningAlgorithm:
    for algorithm in ALGORITHMS:
        if value == algorithm:
            return algorithm
    raise ConfigError(
        f"{name}: unsupported algorithm {value!r}; use one of {', '.join(ALGORITHMS)}"
    )


def needs(method: AuthMethod) -> Credential:
    return REGISTRY[method].credential


def describe_methods() -> str:
    """One line per method, for ``--help`` texts and error messages."""
    return "\n".join(f"{m}: {REGISTRY[m].summary} ({REGISTRY[m].rfc})" for m in METHODS)


def check_private_key(pem: str | bytes, algorithm: SigningAlgorithm, *, name: str) -> None:
    """Raise :class:`ConfigError` naming ``name`` unless ``pem`` is a private key for
    ``algorithm``: RSA of at least 2048 bits for RS256/PS256, EC P-256 for ES256."""
    # Imported here: the CLI reads METHODS at start-up, which must stay cheap.
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    data = pem.encode() if isinstance(pem, str) else pem
    if b"-----BEGIN" not in data:
        raise ConfigError(f"{name}: not a PEM private key (expected '-----BEGIN PRIVATE KEY-----')")
    if b"PRIVATE KEY-----" not in data:
        raise ConfigError(f"{name}: this is a public key or certificate; give the private key")
    try:
        key = load_pem_private_key(data, password=None)
    except TypeError as exc:
        raise ConfigError(f"{name}: the private key is encrypted; give it unencrypted") from exc
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise ConfigError(f"{name}: not a readable PEM private key") from exc
    if algorithm == "ES256":
        if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
            raise ConfigError(f"{name}: ES256 needs an EC P-256 private key")
    elif not isinstance(key, rsa.RSAPrivateKey):
        raise ConfigError(f"{name}: {algorithm} needs an RSA private key")
    elif key.key_size < MIN_RSA_BITS:
        raise ConfigError(
            f"{name}: the RSA key has {key.key_size} bits; at least {MIN_RSA_BITS} are needed"
        )


def check_thumbprint(value: str, *, name: str = "x5t_s256") -> None:
    """A ``x5t#S256`` value is base64url (no padding) of a 32-byte SHA-256 digest."""
    try:
        digest = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (ValueError, binascii.Error) as exc:
        raise ConfigError(f"{name}: not base64url") from exc
    if len(digest) != 32 or "=" in value or "+" in value or "/" in value:
        raise ConfigError(f"{name}: not the base64url SHA-256 thumbprint of a certificate")


@dataclass(frozen=True)
class ClientCredentials:
    """How a client authenticates at a token endpoint. Checked when made; secrets and private
    keys never show in a repr.

    ``cert_file``/``key_file`` are the client certificate for the TLS methods, and may be given
    with any method when the token or the webhook needs mutual TLS (a certificate-bound token).
    Call :meth:`client_identity` to read and check them (validity against a clock).
    """

    client_id: str
    method: AuthMethod = DEFAULT_METHOD
    secret: str | None = field(default=None, repr=False)
    #: PEM of the private key that signs ``private_key_jwt`` assertions.
    private_key: str | None = field(default=None, repr=False)
    key_id: str | None = None
    algorithm: SigningAlgorithm = DEFAULT_ALGORITHM
    #: The thumbprint of the certificate of ``private_key``, sent as ``x5t#S256`` when set.
    x5t_s256: str | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    assertion_audience: AssertionAudience = "token_endpoint"

    def __post_init__(self) -> None:
        if not self.client_id:
            raise ConfigError("client_id: must not be empty")
        parse_method(self.method, name="method")
        parse_algorithm(self.algorithm)
        if self.assertion_audience not in ASSERTION_AUDIENCES:
            raise ConfigError(
                f"assertion_audience: {self.assertion_audience!r} is not one of "
                f"{', '.join(ASSERTION_AUDIENCES)}"
            )
        credential = needs(self.method)
        if credential is Credential.SECRET:
            if not self.secret:
                raise ConfigError(f"secret: {self.method} needs a client secret")
        elif self.secret is not None:
            raise ConfigError(f"secret: {self.method} does not use a client secret")
        if credential is Credential.PRIVATE_KEY:
            if not self.private_key:
                raise ConfigError(f"private_key: {self.method} needs a private key")
            check_private_key(self.private_key, self.algorithm, name="private_key")
        elif self.private_key is not None:
            raise ConfigError(f"private_key: {self.method} does not sign assertions")
        if self.x5t_s256 is not None:
            check_thumbprint(self.x5t_s256)
        if (self.cert_file is None) != (self.key_file is None):
            missing = "key_file" if self.key_file is None else "cert_file"
            raise ConfigError(f"{missing}: a client certificate needs both cert_file and key_file")
        if credential is Credential.CLIENT_CERTIFICATE and self.cert_file is None:
            raise ConfigError(f"cert_file: {self.method} needs a client certificate and key")

    @property
    def info(self) -> MethodInfo:
        return REGISTRY[self.method]

    def client_identity(self, *, now: dt.datetime | None = None) -> ClientIdentity | None:
        """The checked client certificate, or ``None`` when there is none; raises
        :class:`~webhook_kit.errors.CertificateError` naming ``cert_file`` or ``key_file``."""
        from webhook_kit.oauth.mtls import load_client_identity

        if self.cert_file is None or self.key_file is None:
            return None
        return load_client_identity(self.cert_file, self.key_file, now=now)

    def audience_for(self, *, token_endpoint: str, issuer: str | None) -> str:
        """The ``aud`` of this client's assertions: the token endpoint, or the issuer when asked
        (FAPI 2.0 recommends the issuer); :class:`ConfigError` when the issuer is unknown."""
        if self.assertion_audience == "token_endpoint":
            return token_endpoint
        if not issuer:
            raise ConfigError(
                "assertion_audience: 'issuer' needs the authorization server's issuer "
                "(give the issuer URL, or use 'token_endpoint')"
            )
        return issuer
