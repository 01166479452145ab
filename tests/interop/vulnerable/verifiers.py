"""A correct JWT bearer verifier and six copies of it, each with exactly one classic flaw.

The correct one trusts only the issuer's JWKS, only RS256, and checks ``iss``, ``aud`` and
``exp``. Each flawed subclass overrides one decision (which key, or whether to check the
signature at all) and nothing else, so a failing certify check can be pinned on that flaw.
Signatures are always checked by joserfc or cryptography; nothing here does its own crypto.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, hmac, serialization
from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, KeySet, OctKey, OKPKey, RSAKey
from joserfc.jws import JWSRegistry
from joserfc.jwt import JWTClaimsRegistry

from tests.interop.python_stacks import Rejected, fetch_json

#: A key, or ``None``: the flawed verifiers' way of saying "do not check the signature".
Key = OctKey | RSAKey | ECKey | OKPKey | KeySet | None


def _registry() -> JWSRegistry:
    """joserfc's registry with room for a key or a certificate chain in the header (its default
    512 bytes would refuse those tokens before any flaw could show)."""
    registry = JWSRegistry()
    registry.max_header_length = 16 * 1024
    return registry


def _b64(text: str | bytes) -> bytes:
    data = text.encode() if isinstance(text, str) else text
    return base64.urlsafe_b64decode(data + b"=" * (-len(data) % 4))


class Verifier:
    """The correct verifier (the control row of the matrix)."""

    flaw = "none"

    def __init__(self, jwks: dict[str, Any], issuer: str, audience: str) -> None:
        self.keys = KeySet.import_key_set(jwks)  # type: ignore[arg-type]
        self.registry = _registry()
        self.claims = JWTClaimsRegistry(
            iss={"essential": True, "value": issuer},
            aud={"essential": True, "value": audience},
            exp={"essential": True},
        )

    def __call__(self, token: str) -> dict[str, Any]:
        try:
            parsed = jws.extract_compact(token.encode(), registry=self.registry)
            header = parsed.headers()
            claims = self.signed_claims(token, parsed, header)
            self.claims.validate(claims)
        except (JoseError, ValueError, TypeError, KeyError) as exc:
            raise Rejected(f"{type(exc).__name__}: {exc}") from exc
        return claims

    def signed_claims(
        self, token: str, parsed: jws.CompactSignature, header: dict[str, Any]
    ) -> dict[str, Any]:
        key = self.key_for(header)
        if key is None:
            claims = json.loads(parsed.payload)
            if not isinstance(claims, dict):
                raise ValueError("the payload is not a JSON object")
            return claims
        return jwt.decode(token, key, algorithms=["RS256"], registry=self.registry).claims

    def key_for(self, header: dict[str, Any]) -> Key:
        """The issuer's key named by ``kid``; without a kid, the issuer's only key."""
        kid = header.get("kid")
        for key in self.keys.keys:
            if kid is not None and key.kid == kid:
                return key
        if kid is None and len(self.keys.keys) == 1:
            return self.keys.keys[0]
        raise ValueError(f"no issuer key with kid {kid!r}")


class SkipsSignatureForUnknownKid(Verifier):
    """A kid it does not know is taken as "some other issuer key": the signature goes unchecked."""

    flaw = "unknown_kid"

    def key_for(self, header: dict[str, Any]) -> Key:
        kid = header.get("kid")
        if kid is not None and all(key.kid != kid for key in self.keys.keys):
            return None
        return super().key_for(header)


class TrustsJwkHeader(Verifier):
    """Verifies with the key the token carries in its ``jwk`` header."""

    flaw = "embedded_jwk"

    def key_for(self, header: dict[str, Any]) -> Key:
        if "jwk" in header:
            return RSAKey.import_key(header["jwk"])
        return super().key_for(header)


class TrustsX5cHeader(Verifier):
    """Verifies with the first certificate of the token's ``x5c``, never checking who issued it."""

    flaw = "embedded_x5c"

    def key_for(self, header: dict[str, Any]) -> Key:
        if "x5c" in header:
            cert = x509.load_der_x509_certificate(base64.b64decode(header["x5c"][0]))
            pem = cert.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            return RSAKey.import_key(pem)
        return super().key_for(header)


class FetchesJku(Verifier):
    """Fetches the JWKS the token's ``jku`` names and verifies with it. Only loopback URLs are
    fetched: a test must not send traffic anywhere else."""

    flaw = "jku"

    def __init__(self, jwks: dict[str, Any], issuer: str, audience: str, ca_file: Path) -> None:
        super().__init__(jwks, issuer, audience)
        self.ca_file = ca_file
        self.fetched: list[str] = []

    def key_for(self, header: dict[str, Any]) -> Key:
        url = header.get("jku")
        if not isinstance(url, str):
            return super().key_for(header)
        host = urllib.parse.urlsplit(url).hostname or ""
        if not ipaddress.ip_address(host).is_loopback:
            raise ValueError(f"refusing to fetch a non-loopback jku: {url!r}")
        self.fetched.append(url)
        if url.startswith("https:"):
            return KeySet.import_key_set(fetch_json(url, self.ca_file))
        with urllib.request.urlopen(url, timeout=10) as answer:
            return KeySet.import_key_set(json.load(answer))


class AcceptsAlgNone(Verifier):
    """Treats ``alg: none`` (in any letter case) as "nothing to verify"."""

    flaw = "alg_none"

    def key_for(self, header: dict[str, Any]) -> Key:
        if str(header.get("alg", "")).lower() == "none":
            return None
        return super().key_for(header)


class HmacWithPublicKey(Verifier):
    """Lets the header pick the algorithm and hands the issuer's public key (as its SPKI PEM
    file) to whatever algorithm that is: an HS* token is checked as an HMAC keyed with the PEM."""

    flaw = "alg_confusion"
    HASHES: dict[str, hashes.HashAlgorithm] = {
        "HS256": hashes.SHA256(),
        "HS384": hashes.SHA384(),
        "HS512": hashes.SHA512(),
    }

    def __init__(self, jwks: dict[str, Any], issuer: str, audience: str) -> None:
        super().__init__(jwks, issuer, audience)
        public = RSAKey.import_key(jwks["keys"][0]).public_key
        self.pem = public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def signed_claims(
        self, token: str, parsed: jws.CompactSignature, header: dict[str, Any]
    ) -> dict[str, Any]:
        algorithm = self.HASHES.get(str(header.get("alg")))
        if algorithm is None:
            return super().signed_claims(token, parsed, header)
        signing_input, _, signature = token.rpartition(".")
        mac = hmac.HMAC(self.pem, algorithm)
        mac.update(signing_input.encode())
        try:
            mac.verify(_b64(signature))
        except InvalidSignature as exc:
            raise ValueError("bad HMAC signature") from exc
        claims = json.loads(parsed.payload)
        if not isinstance(claims, dict):
            raise ValueError("the payload is not a JSON object")
        return claims


FLAWED: tuple[type[Verifier], ...] = (
    SkipsSignatureForUnknownKid,
    TrustsJwkHeader,
    TrustsX5cHeader,
    FetchesJku,
    AcceptsAlgNone,
    HmacWithPublicKey,
)


def build(flaw: str, jwks_url: str, issuer: str, audience: str, ca_file: Path) -> Verifier:
    """The verifier with ``flaw`` (``"none"``: the correct one), keys from the issuer's JWKS."""
    jwks = fetch_json(jwks_url, ca_file)
    if flaw == FetchesJku.flaw:
        return FetchesJku(jwks, issuer, audience, ca_file)
    candidates: tuple[type[Verifier], ...] = (Verifier, *FLAWED)
    for cls in candidates:
        if cls.flaw == flaw:
            return cls(jwks, issuer, audience)
    raise ValueError(f"unknown flaw {flaw!r}")
