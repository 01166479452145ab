"""The receiver's registration of its sender client, by method; secrets never show in a repr.

A customer registers the sender as an authorization server would:

- ``client_secret_basic`` / ``client_secret_post``: a shared secret;
- ``private_key_jwt``: the sender's public key (a PEM key, a certificate or a JWKS file), or the
  URL where the sender publishes its JWKS (fetched when needed, see :class:`JwksSource`);
- ``tls_client_auth``: the CA that issues the sender's certificates, and the subject DN or a SAN
  the certificate must carry;
- ``self_signed_tls_client_auth``: the sender's self-signed certificate itself.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import secrets
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding, load_pem_public_key
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, KeySet, RSAKey

from webhook_kit.errors import CertificateError, ConfigError, DiscoveryError
from webhook_kit.oauth.client_auth import (
    DEFAULT_METHOD,
    SECRET_METHODS,
    AuthMethod,
    Credential,
    needs,
    parse_method,
)
from webhook_kit.oauth.mtls import certificate_thumbprint, check_validity, load_certificate

#: A JWKS document larger than this is refused (a handful of keys is a few KiB).
MAX_JWKS_BYTES = 64 * 1024


@dataclass(frozen=True)
class ClientCredentials:
    client_id: str
    client_secret: str = field(repr=False)

    @classmethod
    def generate(cls) -> ClientCredentials:
        return cls(f"kit-{secrets.token_hex(6)}", secrets.token_urlsafe(32))


def mask(secret: str | None) -> str | None:
    """The form in which a secret may be shown: never any of its characters."""
    return None if secret is None else "********"


@dataclass(frozen=True)
class ClientRegistration:
    """How the issuer recognises its one client. Each method takes exactly what it needs;
    anything else is refused, naming the field, so a mistyped registration fails at start."""

    client_id: str
    method: AuthMethod = DEFAULT_METHOD
    secret: str | None = field(default=None, repr=False)
    #: private_key_jwt: a PEM public key, a PEM certificate or a JWKS (JSON) file.
    public_key_file: Path | None = None
    #: private_key_jwt: the HTTPS URL of the sender's JWKS.
    jwks_url: str | None = None
    #: An extra CA to trust when fetching ``jwks_url`` (the system store is always trusted).
    jwks_ca_file: Path | None = None
    #: The CA that issues the client's certificates (required by tls_client_auth).
    client_ca_file: Path | None = None
    #: tls_client_auth: the certificate's subject DN (RFC 4514), or one of its SAN values.
    subject_dn: str | None = None
    san: str | None = None
    #: The client's self-signed certificate (required by self_signed_tls_client_auth).
    client_cert_file: Path | None = None

    def __post_init__(self) -> None:
        if not self.client_id:
            raise ConfigError("client_id: must not be empty")
        parse_method(self.method)
        credential = needs(self.method)
        # A client certificate's trust (its CA, or the self-signed certificate itself) may come
        # with any method: a certificate-bound token needs it whatever authenticated the client.
        allowed = {"client_ca_file", "client_cert_file"} | {
            Credential.SECRET: {"secret"},
            Credential.PRIVATE_KEY: {"public_key_file", "jwks_url", "jwks_ca_file"},
            Credential.CLIENT_CERTIFICATE: (
                {"subject_dn", "san"} if self.method == "tls_client_auth" else set()
            ),
        }[credential]
        for name in (
            "secret",
            "public_key_file",
            "jwks_url",
            "jwks_ca_file",
            "client_ca_file",
            "subject_dn",
            "san",
            "client_cert_file",
        ):
            if getattr(self, name) is not None and name not in allowed:
                raise ConfigError(f"{name}: not used by {self.method}")
        self._check_complete()

    def _check_complete(self) -> None:
        if self.method in SECRET_METHODS and not self.secret:
            raise ConfigError(f"secret: {self.method} needs a client secret")
        if self.method == "private_key_jwt":
            if (self.public_key_file is None) == (self.jwks_url is None):
                raise ConfigError(
                    "public_key_file: private_key_jwt needs the client's public key file "
                    "or its JWKS URL (one of the two)"
                )
            if self.jwks_url is not None:
                parts = urlsplit(self.jwks_url)
                if parts.scheme != "https" or not parts.hostname:
                    raise ConfigError(f"jwks_url: must be an https:// URL, got {self.jwks_url!r}")
            if self.jwks_ca_file is not None and self.jwks_url is None:
                raise ConfigError("jwks_ca_file: only used with jwks_url")
        if self.method == "tls_client_auth":
            if self.client_ca_file is None:
                raise ConfigError("client_ca_file: tls_client_auth needs the CA of the client")
            if (self.subject_dn is None) == (self.san is None):
                raise ConfigError(
                    "subject_dn: tls_client_auth needs the certificate's subject DN "
                    "or one SAN value (one of the two)"
                )
            if self.subject_dn is not None:
                try:
                    x509.Name.from_rfc4514_string(self.subject_dn)
                except ValueError as exc:
                    raise ConfigError(
                        f"subject_dn: not an RFC 4514 name: {self.subject_dn!r}"
                    ) from exc
        if self.client_ca_file is not None and self.client_cert_file is not None:
            raise ConfigError(
                "client_cert_file: give the client's CA or its self-signed certificate, not both"
            )
        if self.method == "self_signed_tls_client_auth" and self.client_cert_file is None:
            raise ConfigError(
                "client_cert_file: self_signed_tls_client_auth needs the client's certificate"
            )

    @classmethod
    def generate(cls) -> ClientRegistration:
        credentials = ClientCredentials.generate()
        return cls(credentials.client_id, secret=credentials.client_secret)

    @classmethod
    def of(cls, credentials: ClientCredentials | ClientRegistration) -> ClientRegistration:
        if isinstance(credentials, ClientRegistration):
            return credentials
        return cls(credentials.client_id, secret=credentials.client_secret)

    @property
    def client_trust_file(self) -> Path | None:
        """What the server trusts for client certificates: the client CA, or the registered
        self-signed certificate itself (its own trust anchor); ``None`` for other methods."""
        return self.client_ca_file or self.client_cert_file

    def check_files(self, *, now: dt.datetime | None = None) -> None:
        """Read every file the registration names and check it can be used (a key in the
        right format, a certificate still valid); :class:`ConfigError` naming the field."""
        if self.public_key_file is not None:
            load_public_keys(self.public_key_file)
        for name in ("client_ca_file", "jwks_ca_file", "client_cert_file"):
            path: Path | None = getattr(self, name)
            if path is None:
                continue
            try:
                data = path.read_bytes()
            except OSError as exc:
                raise CertificateError(f"{name}: cannot read {path}: {exc.strerror}") from exc
            cert = load_certificate(data, name=f"{name} {path}")
            check_validity(cert, now or dt.datetime.now(dt.UTC), name=f"{name} {path}")

    def registered_thumbprint(self) -> str | None:
        """``x5t#S256`` of the registered self-signed certificate; :class:`CertificateError`."""
        if self.client_cert_file is None:
            return None
        try:
            data = self.client_cert_file.read_bytes()
        except OSError as exc:
            raise CertificateError(
                f"client_cert_file: cannot read {self.client_cert_file}: {exc.strerror}"
            ) from exc
        cert = load_certificate(data, name=f"client_cert_file {self.client_cert_file}")
        return certificate_thumbprint(cert.public_bytes(Encoding.DER))


def load_public_keys(path: Path, *, name: str = "public_key_file") -> RSAKey | ECKey | KeySet:
    """The verification keys in ``path``: a PEM public key, a PEM certificate, or a JWKS.

    A PEM key is returned alone, not in a set: registered without an id, it is the client's
    only key whatever ``kid`` its assertions carry (a set would give it a thumbprint ``kid``).

    Only RSA and EC public keys are taken; a private key in the file is refused (it should not
    have left the sender)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{name}: cannot read {path}: {exc.strerror}") from exc
    if b"PRIVATE KEY" in data:
        raise ConfigError(f"{name}: {path} holds a private key; register the public key only")
    if data.lstrip().startswith(b"{"):
        return parse_jwks(data, name=f"{name} {path}")
    if b"-----BEGIN CERTIFICATE" in data:
        public: object = load_certificate(data, name=f"{name} {path}").public_key()
    else:
        try:
            public = load_pem_public_key(data)
        except ValueError as exc:
            raise ConfigError(
                f"{name}: {path} is not a PEM public key, certificate or JWKS"
            ) from exc
    key: RSAKey | ECKey
    if isinstance(public, rsa.RSAPublicKey):
        key = RSAKey.import_key(public)
    elif isinstance(public, ec.EllipticCurvePublicKey):
        key = ECKey.import_key(public)
    else:
        raise ConfigError(f"{name}: {path} is neither an RSA nor an EC key")
    return key


def parse_jwks(data: bytes, *, name: str) -> KeySet:
    """A JWKS document's RSA and EC public keys; :class:`ConfigError` naming ``name``."""
    try:
        document = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{name}: not JSON") from exc
    keys = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(keys, list) or not keys:
        raise ConfigError(f"{name}: not a JWKS (no 'keys' list)")
    usable = []
    for entry in keys:
        if not isinstance(entry, dict) or entry.get("kty") not in ("RSA", "EC"):
            continue
        if "d" in entry:
            raise ConfigError(f"{name}: a key in the JWKS is private; publish public keys only")
        if entry.get("use", "sig") != "sig":
            continue
        try:
            usable.append(
                RSAKey.import_key(entry) if entry["kty"] == "RSA" else ECKey.import_key(entry)
            )
        except (JoseError, ValueError, TypeError, KeyError) as exc:
            raise ConfigError(f"{name}: a key in the JWKS is unusable") from exc
    if not usable:
        raise ConfigError(f"{name}: the JWKS has no RSA or EC signing key")
    return KeySet(usable)  # type: ignore[arg-type]


class JwksSource:
    """The sender's JWKS fetched from its URL: cached for ``ttl`` seconds, fetched again early
    when an assertion names an unknown ``kid`` (the sender rotated), but at most once every
    ``min_interval`` seconds, so forged ``kid`` values cannot make the issuer hammer the URL.
    A failed fetch is not retried within ``min_interval`` either; the last keys stay in use.

    ``fetch`` takes the URL and returns the document's bytes, or raises
    :class:`~webhook_kit.errors.DiscoveryError`; see :func:`https_fetcher`."""

    def __init__(
        self,
        url: str,
        fetch: Callable[[str], Awaitable[bytes]],
        *,
        ttl: float = 300.0,
        min_interval: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        self._fetch = fetch
        self._ttl = ttl
        self._min_interval = min_interval
        self._clock = clock
        self._keys: KeySet | None = None
        self._attempted_at: float | None = None
        self._error: DiscoveryError | None = None
        self._lock = asyncio.Lock()

    def _due(self, kid: str | None) -> bool:
        if self._attempted_at is None:
            return True
        age = self._clock() - self._attempted_at
        if age >= self._ttl:
            return True
        if age < self._min_interval:
            return False
        if self._keys is None:
            return True
        return kid is not None and all(k.kid != kid for k in self._keys.keys)

    async def keys(self, kid: str | None = None) -> KeySet:
        """The current keys; :class:`DiscoveryError` when there are none to be had."""
        # One fetch at a time: requests arriving meanwhile wait for it rather than find no keys.
        async with self._lock:
            if self._due(kid):
                self._attempted_at = self._clock()
                try:
                    data = await self._fetch(self.url)
                    self._keys = parse_jwks(data, name=f"the JWKS at {self.url}")
                    self._error = None
                except ConfigError as exc:
                    self._error = DiscoveryError(str(exc))
                except DiscoveryError as exc:
                    self._error = exc
        if self._keys is None:
            raise self._error or DiscoveryError(f"no JWKS from {self.url} yet")
        return self._keys


def https_fetcher(
    ca_file: Path | None = None, *, timeout: float = 5.0
) -> Callable[[str], Coroutine[Any, Any, bytes]]:
    """Fetch a small document over verified HTTPS (system store plus ``ca_file``), following
    no redirects and reading at most :data:`MAX_JWKS_BYTES`."""
    from webhook_kit.tls import client_context

    context = client_context(ca_file)

    async def fetch(url: str) -> bytes:
        import aiohttp

        try:
            async with (
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session,
                session.get(url, ssl=context, allow_redirects=False) as response,
            ):
                if response.status != 200:
                    raise DiscoveryError(f"the JWKS at {url} answered HTTP {response.status}")
                data = await response.content.read(MAX_JWKS_BYTES + 1)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise DiscoveryError(f"cannot fetch the JWKS at {url}: {type(exc).__name__}") from exc
        if len(data) > MAX_JWKS_BYTES:
            raise DiscoveryError(f"the JWKS at {url} is larger than {MAX_JWKS_BYTES} bytes")
        return data

    return fetch
