"""certify's forged tokens, checked with independent tools: each forgery must be exactly the
attack it is named after, or a receiver that refuses it proves nothing.

HMAC forgeries are verified with cryptography's HMAC over ``header.payload`` keyed with exactly
the bytes the label names; RS256 forgeries are verified with joserfc against the forging key.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, hmac, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from joserfc import jws
from joserfc.errors import BadSignatureError
from joserfc.jwk import ECKey, RSAKey
from joserfc.jws import JWSRegistry

from webhook_kit.certify import forge
from webhook_kit.certify.forge import Forgery, ForgingKey, Parsed

CLAIMS = {
    "iss": "https://auth.example.com/",
    "aud": "webhook-kit",
    "sub": "sender",
    "scope": "webhook",
    "exp": 1_900_000_000,
}
HASHES: dict[str, Callable[[], hashes.HashAlgorithm]] = {
    "HS256": hashes.SHA256,
    "HS384": hashes.SHA384,
    "HS512": hashes.SHA512,
}
JKU = "http://127.0.0.1:40001/jwks.json"
X5U = "http://127.0.0.1:40001/cert.pem"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def header_of(token: str) -> dict[str, Any]:
    value: dict[str, Any] = json.loads(unb64(token.split(".")[0]))
    return value


def hmac_verifies(token: str, key: bytes) -> bool:
    head, payload, signature = token.split(".")
    mac = hmac.HMAC(key, HASHES[header_of(token)["alg"]]())
    mac.update(f"{head}.{payload}".encode())
    try:
        mac.verify(unb64(signature))
    except InvalidSignature:
        return False
    return True


def rs256_verifies(token: str, public_jwk: dict[str, Any]) -> bool:
    # joserfc caps headers at 512 bytes by default; an embedded JWK or certificate is larger.
    registry = JWSRegistry(algorithms=["RS256"])
    registry.max_header_length = 16 * 1024
    try:
        jws.deserialize_compact(token, RSAKey.import_key(public_jwk), registry=registry)
    except BadSignatureError:
        return False
    return True


@pytest.fixture(scope="module")
def issuer_key() -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": "issuer-key-1"})


@pytest.fixture(scope="module")
def real_token(issuer_key: RSAKey) -> str:
    header = {"alg": "RS256", "typ": "JWT", "kid": "issuer-key-1"}
    return jws.serialize_compact(header, json.dumps(CLAIMS).encode(), issuer_key)


@pytest.fixture(scope="module")
def real(real_token: str) -> Parsed:
    parsed = forge.parse(real_token)
    assert parsed is not None
    return parsed


@pytest.fixture(scope="module")
def forging_key() -> ForgingKey:
    return ForgingKey()


# --- parse ----------------------------------------------------------------------------------


def _token(header: bytes, claims: bytes, signature: str = "c2ln") -> str:
    return f"{b64(header)}.{b64(claims)}.{signature}"


@pytest.mark.parametrize(
    "token",
    [
        pytest.param(None, id="none"),
        pytest.param("", id="empty"),
        pytest.param("2YotnFZFEjr1zCsicMWpAA", id="opaque"),
        pytest.param("not-a-valid-token", id="garbage"),
        pytest.param("a.b", id="two-parts"),
        pytest.param("a.b.c.d.e", id="five-parts-jwe"),
        pytest.param("..", id="empty-parts"),
        pytest.param("!!!.!!!.sig", id="not-base64"),
        pytest.param(_token(b"[1]", b"{}"), id="header-not-an-object"),
        pytest.param(_token(b"{}", b'"claims"'), id="claims-not-an-object"),
        pytest.param(_token(b"\xff\xfe{", b"{}"), id="header-not-utf8"),
        pytest.param(_token(b'{"alg":"RS256"', b"{}"), id="header-truncated"),
    ],
)
def test_parse_refuses_what_is_not_a_compact_jws(token: str | None) -> None:
    assert forge.parse(token) is None


def test_parse_reads_header_and_claims_unverified(real_token: str) -> None:
    parsed = forge.parse(real_token)
    assert parsed is not None
    head, payload, signature = real_token.split(".")
    assert parsed.header == {"alg": "RS256", "typ": "JWT", "kid": "issuer-key-1"}
    assert parsed.claims == CLAIMS
    assert (parsed.payload_b64, parsed.signature_b64) == (payload, signature)
    # A token with an empty signature still parses: it is what alg none looks like.
    assert forge.parse(f"{head}.{payload}.") == Parsed(parsed.header, CLAIMS, payload, "")


def test_parse_survives_deeply_nested_json() -> None:
    assert forge.parse(_token(b"[" * 3000, b"{}")) is None


# --- alg none -------------------------------------------------------------------------------


def test_alg_none_gives_every_spelling_with_and_without_the_signature(real: Parsed) -> None:
    variants = forge.alg_none(real)
    assert len(variants) == 8
    seen = set()
    for variant in variants:
        head, payload, signature = variant.token.split(".")
        header = header_of(variant.token)
        assert payload == real.payload_b64
        assert {k: v for k, v in header.items() if k != "alg"} == {
            "typ": "JWT",
            "kid": "issuer-key-1",
        }
        assert signature in ("", real.signature_b64)
        assert f"alg '{header['alg']}'" in variant.label
        seen.add((header["alg"], signature == ""))
    assert seen == {
        (alg, empty) for alg in ("none", "None", "NONE", "nOnE") for empty in (True, False)
    }


# --- alg confusion --------------------------------------------------------------------------


def rsa_forms(public: rsa.RSAPublicKey, jwk: dict[str, Any]) -> dict[str, bytes]:
    spki = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return {
        "PEM (SPKI)": spki,
        "PEM (SPKI) without the final newline": spki.rstrip(b"\n"),
        "PKCS#1 PEM": public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.PKCS1
        ),
        "DER (SPKI)": public.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        "JWK JSON": json.dumps(jwk).encode(),
        "JWK JSON, compact": json.dumps(jwk, separators=(",", ":")).encode(),
    }


def ec_forms(public: ec.EllipticCurvePublicKey, jwk: dict[str, Any]) -> dict[str, bytes]:
    spki = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return {
        "PEM (SPKI)": spki,
        "PEM (SPKI) without the final newline": spki.rstrip(b"\n"),
        "DER (SPKI)": public.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        "JWK JSON": json.dumps(jwk).encode(),
        "JWK JSON, compact": json.dumps(jwk, separators=(",", ":")).encode(),
    }


def form_of(forgery: Forgery) -> str:
    return forgery.label.split(" as ", 1)[1]


def assert_each_keyed_with_exactly(
    variants: list[Forgery], forms: dict[str, bytes], real: Parsed, kid: str
) -> None:
    assert len(variants) == len(forms) * 3
    grid = {(header_of(v.token)["alg"], form_of(v)) for v in variants}
    assert grid == {(alg, form) for alg in HASHES for form in forms}
    for variant in variants:
        head, payload, _ = variant.token.split(".")
        header = header_of(variant.token)
        assert payload == real.payload_b64
        assert header == dict(real.header, alg=header["alg"])
        assert variant.label.startswith(f"{header['alg']} keyed with the public key '{kid}'")
        # Verifies with its own key bytes, and with no other encoding's.
        assert [form for form, key in forms.items() if hmac_verifies(variant.token, key)] == [
            form_of(variant)
        ]


def test_alg_confusion_with_an_rsa_jwks(real: Parsed, issuer_key: RSAKey) -> None:
    jwk = issuer_key.as_dict(private=False)
    variants = forge.alg_confusion(real, {"keys": [jwk]})
    public = issuer_key.public_key
    assert isinstance(public, rsa.RSAPublicKey)
    assert_each_keyed_with_exactly(variants, rsa_forms(public, jwk), real, "issuer-key-1")


def test_alg_confusion_with_an_ec_jwks(real: Parsed) -> None:
    key = ECKey.generate_key("P-256", parameters={"kid": "ec-1"})
    jwk = key.as_dict(private=False)
    # The token's kid is not in this JWKS: the first keys are used.
    variants = forge.alg_confusion(real, {"keys": [jwk]})
    public = key.public_key
    assert isinstance(public, ec.EllipticCurvePublicKey)
    assert_each_keyed_with_exactly(variants, ec_forms(public, jwk), real, "ec-1")


def _ec_jwks(*kids: str) -> dict[str, Any]:
    return {
        "keys": [
            ECKey.generate_key("P-256", parameters={"kid": kid}).as_dict(private=False)
            for kid in kids
        ]
    }


def _kids(variants: list[Forgery]) -> set[str]:
    return {v.label.split("'")[1] for v in variants}


def test_alg_confusion_uses_the_key_the_token_names(real: Parsed) -> None:
    jwks = _ec_jwks("other-1", "issuer-key-1", "other-2")
    variants = forge.alg_confusion(real, jwks)
    assert _kids(variants) == {"issuer-key-1"}
    assert len(variants) == 15


def test_alg_confusion_without_a_matching_kid_uses_the_first_three_keys(real: Parsed) -> None:
    variants = forge.alg_confusion(real, _ec_jwks("k0", "k1", "k2", "k3"))
    assert _kids(variants) == {"k0", "k1", "k2"}
    assert len(variants) == 3 * 15


@pytest.mark.parametrize(
    "keys",
    [
        pytest.param([], id="empty"),
        pytest.param([{"kty": "oct", "k": "c2VjcmV0"}], id="symmetric"),
        pytest.param(
            [{"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}],
            id="okp",
        ),
        pytest.param(["not a key", 7, None], id="not-objects"),
        pytest.param([{"kty": "RSA", "n": "!!", "e": "AQAB"}], id="rsa-n-not-base64"),
        pytest.param([{"kty": "EC", "crv": "P-999", "x": "AA", "y": "AA"}], id="unknown-curve"),
    ],
)
def test_alg_confusion_without_a_usable_public_key_forges_nothing(keys: list[Any]) -> None:
    real = Parsed({"alg": "RS256"}, dict(CLAIMS), b64(json.dumps(CLAIMS).encode()), "c2ln")
    assert forge.alg_confusion(real, {"keys": keys}) == []


@pytest.mark.parametrize(
    "jwk",
    [
        pytest.param({"kty": "RSA", "kid": "half"}, id="rsa-without-n"),
        pytest.param({"kty": "EC", "crv": "P-256"}, id="ec-without-x-y"),
    ],
)
def test_alg_confusion_survives_an_incomplete_jwk(real: Parsed, jwk: dict[str, Any]) -> None:
    assert forge.alg_confusion(real, {"keys": [jwk]}) == []


def test_hmac_token_sets_the_alg_and_keeps_the_payload(real: Parsed) -> None:
    token = forge.hmac_token({"kid": "k", "alg": "RS256"}, real.payload_b64, b"key", "HS384")
    assert header_of(token) == {"kid": "k", "alg": "HS384"}
    assert token.split(".")[1] == real.payload_b64
    assert hmac_verifies(token, b"key")
    assert not hmac_verifies(token, b"other key")


# --- tokens signed by certify's own key -----------------------------------------------------


def test_forging_key_is_fresh_and_public(forging_key: ForgingKey, issuer_key: RSAKey) -> None:
    jwk = forging_key.public_jwk
    assert jwk["kid"] == forging_key.kid
    assert (jwk["kty"], jwk["alg"], jwk["use"]) == ("RSA", "RS256", "sig")
    assert "d" not in jwk and "p" not in jwk
    assert forging_key.jwks == {"keys": [jwk]}
    assert jwk["n"] != issuer_key.as_dict(private=False)["n"]
    cert = x509.load_pem_x509_certificate(forging_key.certificate_pem)
    assert cert.subject == cert.issuer
    assert cert.public_key() == forging_key.key.public_key
    der = base64.b64decode(forging_key.certificate_b64)
    assert x509.load_der_x509_certificate(der) == cert


@pytest.fixture(scope="module")
def keyed(real: Parsed, forging_key: ForgingKey) -> dict[str, list[Forgery]]:
    return forge.self_keyed(real, forging_key, JKU, X5U)


def only(keyed: dict[str, list[Forgery]], check_id: str) -> Forgery:
    (variant,) = keyed[check_id]
    return variant


def test_self_keyed_covers_the_checks(real: Parsed, forging_key: ForgingKey) -> None:
    with_urls = forge.self_keyed(real, forging_key, JKU, X5U)
    assert sorted(with_urls) == sorted(
        [
            "oauth.embedded_jwk",
            "oauth.embedded_x5c",
            "oauth.jku",
            "oauth.x5u",
            "oauth.unknown_kid",
            "oauth.no_kid",
            "oauth.kid_injection",
        ]
    )
    without = forge.self_keyed(real, forging_key, None, None)
    assert sorted(without) == sorted(set(with_urls) - {"oauth.jku", "oauth.x5u"})


@pytest.mark.parametrize(
    ("check_id", "expected"),
    [
        pytest.param("oauth.embedded_jwk", {"jwk": "public_jwk", "kid": "kid"}, id="jwk"),
        pytest.param("oauth.embedded_x5c", {"x5c": "x5c", "kid": "kid"}, id="x5c"),
        pytest.param("oauth.jku", {"jku": JKU, "kid": "kid"}, id="jku"),
        pytest.param("oauth.x5u", {"x5u": X5U, "kid": "kid"}, id="x5u"),
        pytest.param("oauth.no_kid", {}, id="no-kid"),
    ],
)
def test_self_keyed_headers_and_signature(
    keyed: dict[str, list[Forgery]],
    forging_key: ForgingKey,
    issuer_key: RSAKey,
    real: Parsed,
    check_id: str,
    expected: dict[str, str],
) -> None:
    token = only(keyed, check_id).token
    named = {
        "public_jwk": forging_key.public_jwk,
        "x5c": [forging_key.certificate_b64],
        "kid": forging_key.kid,
    }
    want = {name: named.get(value, value) for name, value in expected.items()}
    assert header_of(token) == {"typ": "JWT", "alg": "RS256", **want}
    assert token.split(".")[1] == real.payload_b64
    assert rs256_verifies(token, forging_key.public_jwk)
    assert not rs256_verifies(token, issuer_key.as_dict(private=False))


def test_embedded_keys_are_the_signing_key(
    keyed: dict[str, list[Forgery]], forging_key: ForgingKey
) -> None:
    """A verifier that trusts the header's key must find the one that signed the token."""
    jwk = header_of(only(keyed, "oauth.embedded_jwk").token)["jwk"]
    assert rs256_verifies(only(keyed, "oauth.embedded_jwk").token, jwk)
    (cert_b64,) = header_of(only(keyed, "oauth.embedded_x5c").token)["x5c"]
    cert = x509.load_der_x509_certificate(base64.b64decode(cert_b64))
    assert cert.public_key() == forging_key.key.public_key


def test_unknown_kid(keyed: dict[str, list[Forgery]], forging_key: ForgingKey) -> None:
    token = only(keyed, "oauth.unknown_kid").token
    kid = header_of(token)["kid"]
    assert kid not in (forging_key.kid, "issuer-key-1")
    assert kid.startswith("webhook-kit-unknown-")
    assert rs256_verifies(token, forging_key.public_jwk)


def test_kid_injection(keyed: dict[str, list[Forgery]], forging_key: ForgingKey) -> None:
    variants = keyed["oauth.kid_injection"]
    assert len(variants) == 4
    hs256 = [v for v in variants if header_of(v.token)["alg"] == "HS256"]
    for variant, (kid, key) in zip(hs256, forge.KID_INJECTIONS, strict=True):
        assert header_of(variant.token)["kid"] == kid
        assert hmac_verifies(variant.token, key)
        assert repr(kid) in variant.label
    assert hs256[0].token.split(".")[2] != ""
    assert header_of(hs256[0].token)["kid"].endswith("../../../../../../dev/null")
    assert hmac_verifies(hs256[0].token, b"")
    (rs256,) = [v for v in variants if v not in hs256]
    assert header_of(rs256.token)["kid"] == forge.KID_INJECTIONS[1][0]
    assert "UNION SELECT" in header_of(rs256.token)["kid"]
    assert rs256_verifies(rs256.token, forging_key.public_jwk)


def test_every_forgery_keeps_the_real_claims(
    real: Parsed, issuer_key: RSAKey, keyed: dict[str, list[Forgery]]
) -> None:
    everything = [
        *forge.alg_none(real),
        *forge.alg_confusion(real, {"keys": [issuer_key.as_dict(private=False)]}),
        *(v for variants in keyed.values() for v in variants),
    ]
    for variant in everything:
        parsed = forge.parse(variant.token)
        assert parsed is not None, variant.label
        assert parsed.claims == CLAIMS
        # None of them carries the issuer's real signature except alg none's "kept" variants.
        if "original signature kept" not in variant.label:
            assert parsed.signature_b64 != real.signature_b64
