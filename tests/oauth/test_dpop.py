"""DPoP proofs (RFC 9449) made with real keys, and every reason a verifier refuses one."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import string
from collections.abc import Callable
from typing import Any

import pytest
from joserfc import jws
from joserfc.jwk import ECKey, OctKey, RSAKey

from webhook_kit.errors import ConfigError, TokenError
from webhook_kit.oauth.assertion import ReplayCache
from webhook_kit.oauth.dpop import (
    INVALID_PROOF,
    USE_NONCE,
    DPoPKey,
    NonceSource,
    ProofKeys,
    ProofPolicy,
    RouteTargets,
    access_token_hash,
    jwk_thumbprint,
    make_proof,
    normalise_htu,
    verify_proof,
)

URL = "https://receiver.example:8443/webhook"
T0 = 1_800_000_000.0
TOKEN = "eyJhbGciOiJSUzI1NiJ9.e30.c2ln"


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def decode(segment: str) -> dict[str, Any]:
    return json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def key() -> DPoPKey:
    return DPoPKey.generate()


def check(proof: str, clock: Clock, **kwargs: Any) -> Any:
    options: dict[str, Any] = {"method": "POST", "url": URL, "replay": ReplayCache(clock=clock)}
    options.update(kwargs)
    return verify_proof(proof, clock=clock, **options)


def test_normalise_htu() -> None:
    assert normalise_htu("HTTPS://Example.COM:443/a/b?x=1#f") == "https://example.com/a/b"
    assert normalise_htu("http://example.com:80") == "http://example.com/"
    assert normalise_htu("https://example.com:8443/p") == "https://example.com:8443/p"
    assert normalise_htu("https://[::1]:9/p?q") == "https://[::1]:9/p"
    assert normalise_htu("https://h:notaport/p") == "https://h/p"


def test_ath_and_thumbprint_follow_the_rfcs() -> None:
    digest = hashlib.sha256(TOKEN.encode()).digest()
    assert access_token_hash(TOKEN) == base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    # RFC 7638 section 3.1's example key and thumbprint.
    example: dict[str, str | list[str]] = {
        "kty": "RSA",
        "n": (
            "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tS"
            "oc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65"
            "YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyr"
            "dkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzK"
            "nqDKgw"
        ),
        "e": "AQAB",
        "alg": "RS256",
        "kid": "2011-04-29",
    }
    assert jwk_thumbprint(example) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
    rsa = RSAKey.import_key(example)
    assert jwk_thumbprint(rsa) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


@pytest.mark.parametrize("algorithm", ["ES256", "RS256", "PS256"])
def test_a_proof_has_the_rfc_9449_shape_and_verifies(algorithm: str) -> None:
    key = DPoPKey.generate(algorithm)  # type: ignore[arg-type]
    clock = Clock()
    proof = make_proof(
        key, method="post", url=URL + "?a=1#frag", access_token=TOKEN, nonce="n-1", clock=clock
    )
    head, body, _ = proof.split(".")
    header, claims = decode(head), decode(body)
    assert header["typ"] == "dpop+jwt" and header["alg"] == algorithm
    assert "d" not in header["jwk"] and "p" not in header["jwk"]
    assert claims["htm"] == "POST" and claims["htu"] == URL
    assert claims["iat"] == T0 and claims["ath"] == access_token_hash(TOKEN)
    assert claims["nonce"] == "n-1" and len(claims["jti"]) >= 16
    verified = check(proof, clock, access_token=TOKEN, jkt=key.thumbprint)
    assert verified.jkt == key.thumbprint == jwk_thumbprint(header["jwk"])
    assert verified.nonce == "n-1" and verified.htu == URL
    assert str(key.key.as_dict(private=True)["d"]) not in repr(key)


def test_token_endpoint_proof_has_no_ath(key: DPoPKey) -> None:
    proof = make_proof(key, method="POST", url=URL)
    assert "ath" not in decode(proof.split(".")[1])


def test_each_proof_has_a_new_jti(key: DPoPKey) -> None:
    jtis = {decode(make_proof(key, method="POST", url=URL).split(".")[1])["jti"] for _ in range(20)}
    assert len(jtis) == 20


def refusal(proof: str, clock: Clock | None = None, **kwargs: Any) -> TokenError:
    with pytest.raises(TokenError) as caught:
        check(proof, clock or Clock(), **kwargs)
    return caught.value


def test_replayed_proof_is_refused(key: DPoPKey) -> None:
    clock = Clock()
    replay = ReplayCache(clock=clock)
    proof = make_proof(key, method="POST", url=URL, clock=clock)
    check(proof, clock, replay=replay)
    error = refusal(proof, clock, replay=replay)
    assert error.error == INVALID_PROOF and "replayed" in error.description


def test_proof_for_another_method_or_url(key: DPoPKey) -> None:
    clock = Clock()
    proof = make_proof(key, method="GET", url=URL, clock=clock)
    assert "htm does not match" in refusal(proof, clock).description
    other = make_proof(key, method="POST", url="https://receiver.example:8443/other", clock=clock)
    assert "htu does not match" in refusal(other, clock).description
    port = make_proof(key, method="POST", url="https://receiver.example/webhook", clock=clock)
    assert "htu does not match" in refusal(port, clock).description


def test_query_and_default_port_do_not_matter(key: DPoPKey) -> None:
    clock = Clock()
    proof = make_proof(key, method="POST", url="https://r.example:443/w?x=1", clock=clock)
    check(proof, clock, url="https://R.example/w?y=2")


def test_bound_key_ath_and_time(key: DPoPKey) -> None:
    clock = Clock()
    proof = make_proof(key, method="POST", url=URL, access_token=TOKEN, clock=clock)
    other = DPoPKey.generate()
    assert (
        "not the key the token is bound to"
        in refusal(proof, clock, jkt=other.thumbprint).description
    )
    assert "ath does not match" in refusal(proof, clock, access_token=TOKEN + "x").description
    bare = make_proof(key, method="POST", url=URL, clock=clock)
    assert "no ath" in refusal(bare, clock, access_token=TOKEN).description
    assert "not ASCII" in refusal(proof, clock, access_token="tökén").description
    old = make_proof(key, method="POST", url=URL, clock=Clock(T0 - 61))
    assert "older than 60 s" in refusal(old, clock).description
    check(make_proof(key, method="POST", url=URL, clock=Clock(T0 - 60)), clock)
    future = make_proof(key, method="POST", url=URL, clock=Clock(T0 + 6))
    assert "in the future" in refusal(future, clock).description
    check(make_proof(key, method="POST", url=URL, clock=Clock(T0 + 5)), clock)
    wide = ProofPolicy(max_age=300)
    check(old, clock, policy=wide)


def test_nonce_required(key: DPoPKey) -> None:
    clock = Clock()
    nonces = NonceSource(clock=clock)
    bare = make_proof(key, method="POST", url=URL, clock=clock)
    error = refusal(bare, clock, nonces=nonces)
    assert error.error == USE_NONCE
    wrong = make_proof(key, method="POST", url=URL, nonce="guess", clock=clock)
    assert refusal(wrong, clock, nonces=nonces).error == USE_NONCE
    good = make_proof(key, method="POST", url=URL, nonce=nonces.current(), clock=clock)
    assert check(good, clock, nonces=nonces).nonce == nonces.current()


def test_a_refused_nonce_does_not_burn_the_jti(key: DPoPKey) -> None:
    """Only otherwise valid proofs are remembered, so junk cannot fill the replay cache."""
    clock = Clock()
    replay = ReplayCache(clock=clock)
    bare = make_proof(key, method="POST", url=URL, clock=clock)
    refusal(bare, clock, replay=replay, nonces=NonceSource(clock=clock))
    assert len(replay) == 0


def test_nonce_source_rotates_and_keeps_the_previous() -> None:
    clock = Clock(0)
    nonces = NonceSource(100, clock=clock)
    first = nonces.current()
    assert nonces.valid(first) and not nonces.valid("x" * len(first))
    clock.now = 150
    assert nonces.current() != first and nonces.valid(first)
    clock.now = 250
    assert not nonces.valid(first)
    with pytest.raises(ValueError):
        NonceSource(0)
    assert NonceSource(clock=clock).current() != nonces.current()  # per-server secret


def sign(header: dict[str, Any], claims: Any, key: Any, alg: str) -> str:
    payload = claims if isinstance(claims, bytes) else json.dumps(claims).encode()
    return jws.serialize_compact({"alg": alg, **header}, payload, key, algorithms=[alg])


def good_claims(**overrides: Any) -> dict[str, Any]:
    claims: dict[str, Any] = {"jti": "j", "htm": "POST", "htu": URL, "iat": int(T0)}
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


EC = ECKey.generate_key("P-256")
EC_PUBLIC = EC.as_dict(private=False)


@pytest.mark.parametrize(
    ("header", "claims", "message"),
    [
        ({"typ": "JWT", "jwk": EC_PUBLIC}, good_claims(), "typ is not dpop\\+jwt"),
        ({"jwk": EC_PUBLIC}, good_claims(), "typ is not dpop\\+jwt"),
        ({"typ": "dpop+jwt"}, good_claims(), "no jwk header"),
        ({"typ": "dpop+jwt", "jwk": EC.as_dict(private=True)}, good_claims(), "not a public"),
        ({"typ": "dpop+jwt", "jwk": {"kty": "oct", "k": "AAAA"}}, good_claims(), "not a public"),
        ({"typ": "dpop+jwt", "jwk": {"kty": "EC", "crv": "P-256"}}, good_claims(), "unusable"),
        ({"typ": "dpop+jwt", "jwk": EC_PUBLIC}, good_claims(htm=None), "htm does not match"),
        ({"typ": "dpop+jwt", "jwk": EC_PUBLIC}, good_claims(htu=None), "htu does not match"),
        ({"typ": "dpop+jwt", "jwk": EC_PUBLIC}, good_claims(iat=None), "no numeric iat"),
        ({"typ": "dpop+jwt", "jwk": EC_PUBLIC}, good_claims(iat="now"), "no numeric iat"),
        ({"typ": "dpop+jwt", "jwk": EC_PUBLIC}, good_claims(iat=True), "no numeric iat"),
        ({"typ": "dpop+jwt", "jwk": EC_PUBLIC}, good_claims(jti=None), "no valid jti"),
        ({"typ": "dpop+jwt", "jwk": EC_PUBLIC}, good_claims(jti=""), "no valid jti"),
        ({"typ": "dpop+jwt", "jwk": EC_PUBLIC}, good_claims(jti="j" * 300), "no valid jti"),
        ({"typ": "dpop+jwt", "jwk": EC_PUBLIC}, good_claims(nonce=5), "nonce is not a string"),
        ({"typ": "dpop+jwt", "jwk": EC_PUBLIC}, [1, 2], "not a JSON object"),
        ({"typ": "dpop+jwt", "jwk": EC_PUBLIC}, b"\xff\xfe", "not JSON"),
    ],
)
def test_refusals(header: dict[str, Any], claims: Any, message: str) -> None:
    proof = sign(header, claims, EC, "ES256")
    error = refusal(proof)
    assert error.error == INVALID_PROOF
    assert re.search(message, error.description), error.description


def test_signature_by_another_key_than_the_jwk() -> None:
    other = ECKey.generate_key("P-256")
    proof = sign({"typ": "dpop+jwt", "jwk": EC_PUBLIC}, good_claims(), other, "ES256")
    assert "signature does not verify" in refusal(proof).description


def test_alg_allow_list_refuses_none_and_hmac() -> None:
    secret = OctKey.import_key(b"k" * 32)
    hs = sign({"typ": "dpop+jwt", "jwk": EC_PUBLIC}, good_claims(), secret, "HS256")
    assert "algorithm 'HS256' is not allowed" in refusal(hs).description
    head = (
        base64.urlsafe_b64encode(
            json.dumps({"typ": "dpop+jwt", "alg": "none", "jwk": EC_PUBLIC}).encode()
        )
        .rstrip(b"=")
        .decode()
    )
    body = base64.urlsafe_b64encode(json.dumps(good_claims()).encode()).rstrip(b"=").decode()
    assert "algorithm 'none' is not allowed" in refusal(f"{head}.{body}.").description
    rsa_only = ProofPolicy(algorithms=("RS256",))
    es = sign({"typ": "dpop+jwt", "jwk": EC_PUBLIC}, good_claims(), EC, "ES256")
    assert "not allowed" in refusal(es, policy=rsa_only).description
    with pytest.raises(ConfigError, match="HS256"):
        ProofPolicy(algorithms=("HS256",))  # type: ignore[arg-type]


def test_jwk_of_the_wrong_type_for_alg() -> None:
    rsa = RSAKey.generate_key(2048)
    proof = sign({"typ": "dpop+jwt", "jwk": EC_PUBLIC}, good_claims(), rsa, "RS256")
    assert "unusable" in refusal(proof).description


@pytest.mark.parametrize(
    ("proof", "message"),
    [
        ("a" * 5000, "too long"),
        ("abc", "not a signed JWT"),
        ("a.b.c", "malformed"),
        ("é.b.c", "malformed"),
    ],
)
def test_malformed(proof: str, message: str) -> None:
    assert message in refusal(proof).description


def test_generate_refuses_unknown_algorithms() -> None:
    with pytest.raises(ConfigError, match="'HS256' is not one of"):
        DPoPKey.generate("HS256")  # type: ignore[arg-type]


def test_proof_keys_remember_the_key_and_still_verify_every_signature(key: DPoPKey) -> None:
    clock = Clock()
    keys = ProofKeys(size=1)
    replay = ReplayCache(clock=clock)
    first = make_proof(key, method="POST", url=URL, clock=clock)
    assert check(first, clock, replay=replay, keys=keys).jkt == key.thumbprint
    # Same header, another payload, the first proof's signature: refused despite the cache hit.
    head, _, signature = first.split(".")
    body = base64.urlsafe_b64encode(json.dumps(good_claims(jti="new")).encode()).rstrip(b"=")
    forged = f"{head}.{body.decode()}.{signature}"
    assert (
        "signature does not verify" in refusal(forged, clock, replay=replay, keys=keys).description
    )
    second = make_proof(key, method="POST", url=URL, clock=clock)
    assert check(second, clock, replay=replay, keys=keys).jkt == key.thumbprint
    other = DPoPKey.generate()
    third = make_proof(other, method="POST", url=URL, clock=clock)
    assert check(third, clock, replay=replay, keys=keys).jkt == other.thumbprint  # evicts
    assert keys.get(first.split(".")[0]) is None
    assert keys.get(third.split(".")[0]) is not None


# The proof is parsed here, not by joserfc: every edge of that parsing is refused.


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def good_proof() -> str:
    return sign({"typ": "dpop+jwt", "jwk": EC_PUBLIC}, good_claims(), EC, "ES256")


def test_a_hand_made_proof_verifies() -> None:
    """The refusals below alter one part of this proof: unaltered, it is accepted."""
    assert check(good_proof(), Clock()).jkt == jwk_thumbprint(EC_PUBLIC)


def respell(proof: str, index: int, segment: str) -> str:
    parts = proof.split(".")
    parts[index] = segment
    return ".".join(parts)


@pytest.mark.parametrize("index", [0, 1, 2])
@pytest.mark.parametrize(
    "spoil",
    [
        lambda s: s + "=" * (-len(s) % 4 or 4),  # padded
        lambda s: s[:-1] + "+",  # the standard alphabet
        lambda s: s[:-1] + "/",
        lambda s: s[:5] + " " + s[5:],  # a character base64 would skip
        lambda s: s[:5] + "\n" + s[5:],
        lambda s: s + "A" * ((1 - len(s)) % 4 or 4),  # a length no bytes have (1 mod 4)
    ],
)
def test_bad_base64_in_any_segment_is_malformed(index: int, spoil: Callable[[str], str]) -> None:
    proof = good_proof()
    spoiled = respell(proof, index, spoil(proof.split(".")[index]))
    error = refusal(spoiled)
    assert error.error == INVALID_PROOF
    assert "malformed" in error.description, error.description


def test_stray_bits_are_a_second_spelling_and_refused() -> None:
    """A last character differing only in bits beyond the data decodes to the same bytes:
    refused, so a proof has one spelling."""
    proof = good_proof()
    signature = proof.split(".")[2]
    assert len(signature) % 4 == 2  # 64 bytes: the last character carries 2 bits of data
    alphabet = string.ascii_uppercase + string.ascii_lowercase + string.digits + "-_"
    stray = signature[:-1] + alphabet[alphabet.index(signature[-1]) ^ 1]
    assert base64.urlsafe_b64decode(stray + "==") == base64.urlsafe_b64decode(signature + "==")
    assert "malformed" in refusal(respell(proof, 2, stray)).description


@pytest.mark.parametrize("proof", ["a.b.c.d", "a.b.c.d.e", ".", "...", "a..b..", "abc.def"])
def test_any_other_number_of_segments_is_not_a_jwt(proof: str) -> None:
    assert "not a signed JWT" in refusal(proof).description


def test_three_empty_segments_are_malformed() -> None:
    assert "malformed" in refusal("..").description


def test_a_jwe_shaped_value_is_not_a_jwt() -> None:
    head, body, signature = good_proof().split(".")
    assert "not a signed JWT" in refusal(f"{head}..{body}.{signature}.tag").description


@pytest.mark.parametrize(
    "header",
    [b"not json", b"[1, 2]", b'"dpop+jwt"', b"\xff\xfe{}", b"", b"{"],
)
def test_a_header_that_is_not_a_json_object_is_malformed(header: bytes) -> None:
    proof = respell(good_proof(), 0, b64(header))
    assert "malformed" in refusal(proof).description


def test_signature_of_the_wrong_shape_does_not_verify() -> None:
    proof = good_proof()
    raw = base64.urlsafe_b64decode(proof.split(".")[2] + "==")
    for signature in (b"", raw[:63], raw + b"\0", raw[:32] + raw[:32]):
        message = refusal(respell(proof, 2, b64(signature))).description
        assert "signature does not verify" in message


def test_a_der_ecdsa_signature_is_refused() -> None:
    """JWS ES256 is r||s; the DER form cryptography makes must not pass for it."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    proof = good_proof()
    signing_input = proof.rsplit(".", 1)[0].encode()
    der = EC.private_key.sign(signing_input, ec.ECDSA(hashes.SHA256()))  # type: ignore[union-attr]
    assert "signature does not verify" in refusal(respell(proof, 2, b64(der))).description


@pytest.mark.parametrize("alg", ["none", "HS256", "ES384", "RS512", "EdDSA", None, 5, ["ES256"]])
def test_every_alg_outside_the_allow_list_is_refused(alg: Any) -> None:
    header: dict[str, Any] = {"typ": "dpop+jwt", "jwk": EC_PUBLIC}
    if alg is not None:
        header["alg"] = alg
    proof = respell(good_proof(), 0, b64(json.dumps(header).encode()))
    assert "is not allowed" in refusal(proof).description


def test_hs256_signed_with_the_public_jwk_as_secret_is_refused() -> None:
    """The classic key confusion: an HMAC keyed by the public key's bytes."""
    secret = OctKey.import_key(json.dumps(EC_PUBLIC).encode())
    proof = sign({"typ": "dpop+jwt", "jwk": EC_PUBLIC}, good_claims(), secret, "HS256")
    assert "'HS256' is not allowed" in refusal(proof).description


RSA = RSAKey.generate_key(2048)


@pytest.mark.parametrize("member", ["d", "p", "q", "dp", "dq", "qi", "oth"])
def test_an_rsa_jwk_with_any_private_member_is_refused(member: str) -> None:
    private = RSA.as_dict(private=True)
    jwk = {**RSA.as_dict(private=False), member: private.get(member, [])}
    proof = sign({"typ": "dpop+jwt", "jwk": jwk}, good_claims(), RSA, "RS256")
    assert "not a public EC or RSA key" in refusal(proof).description


def test_rsa_proofs_with_a_public_jwk_verify() -> None:
    for alg in ("RS256", "PS256"):
        jwk = RSA.as_dict(private=False)
        proof = sign({"typ": "dpop+jwt", "jwk": jwk}, good_claims(jti=alg), RSA, alg)
        assert check(proof, Clock()).jkt == RSA.thumbprint()
        # The same bytes under the other RSA scheme: refused.
        other = "PS256" if alg == "RS256" else "RS256"
        head = b64(json.dumps({"typ": "dpop+jwt", "alg": other, "jwk": jwk}).encode())
        resigned = respell(proof, 0, head)
        assert "signature does not verify" in refusal(resigned).description


@pytest.mark.parametrize(
    ("jwk", "key", "alg"),
    [
        ({**EC_PUBLIC, "use": "enc"}, EC, "ES256"),
        ({**EC_PUBLIC, "alg": "ES384"}, EC, "ES256"),
        ({**EC_PUBLIC, "key_ops": ["sign"]}, EC, "ES256"),
        (ECKey.generate_key("P-384").as_dict(private=False), None, "ES256"),
        (RSA.as_dict(private=False), EC, "ES256"),
    ],
)
def test_a_jwk_unfit_for_the_alg_is_unusable(jwk: dict[str, Any], key: Any, alg: str) -> None:
    if key is None:  # sign with the jwk's own curve but claim ES256
        head = b64(json.dumps({"typ": "dpop+jwt", "alg": alg, "jwk": jwk}).encode())
        proof = f"{head}.{b64(json.dumps(good_claims()).encode())}.{b64(bytes(96))}"
    else:
        proof = sign({"typ": "dpop+jwt", "jwk": jwk}, good_claims(), key, alg)
    assert "unusable" in refusal(proof).description


@pytest.mark.parametrize(
    "extra",
    [
        {"crit": ["exp"]},  # a critical member nobody here understands
        {"crit": ["kid"]},  # listed as critical but absent
        {"b64": False, "crit": ["b64"]},  # RFC 7797: an unencoded payload is no JWT
        {"x-custom": 1},  # a member outside the JWS registry
        {"kid": 5},  # a registered member of the wrong type
    ],
)
def test_header_members_joserfc_would_refuse_are_refused(extra: dict[str, Any]) -> None:
    header = {"typ": "dpop+jwt", "alg": "ES256", "jwk": EC_PUBLIC, **extra}
    head = b64(json.dumps(header).encode())
    body = b64(json.dumps(good_claims()).encode())
    signing_input = f"{head}.{body}".encode()
    signature = jws.JWSRegistry.algorithms["ES256"].sign(signing_input, EC)
    assert "malformed" in refusal(f"{head}.{body}.{b64(signature)}").description


def test_an_oversized_header_is_malformed() -> None:
    header = {"typ": "dpop+jwt", "alg": "ES256", "jwk": EC_PUBLIC, "kid": "k" * 1600}
    proof = respell(good_proof(), 0, b64(json.dumps(header).encode()))
    assert len(proof) <= 4096
    assert "too long" in refusal(proof).description


def test_route_targets_give_the_same_answers_as_normalising_every_time(key: DPoPKey) -> None:
    """A proof's htu equal to the remembered htu skips normalising only where that changes
    nothing: ``https:////x`` normalises to ``https://x``, which is not its own normal form."""
    routes = RouteTargets()
    clock = Clock()
    for url, htu, accepted in [
        (URL, URL, True),
        ("HTTPS://Receiver.Example:8443/webhook?q=1", URL, True),
        (
            URL,
            "HTTPS://RECEIVER.EXAMPLE:8443/webhook",
            True,
        ),  # the proof's htu is still normalised when unequal
        (URL, URL + "/", False),
        ("https:////x", "https://x", False),
        ("https:////x", "https://x/", False),
    ]:
        body = b64(json.dumps(good_claims(htu=htu, jti=f"{url}{htu}")).encode())
        head = key._header_segment.decode()
        proof = f"{head}.{body}.{b64(key._signer(f'{head}.{body}'.encode()))}"
        for memo in (routes, None):
            replay = ReplayCache(clock=clock)
            if accepted:
                assert check(proof, clock, url=url, routes=memo, replay=replay).htu == htu
            else:
                assert (
                    "htu does not match" in refusal(proof, clock, url=url, routes=memo).description
                )
    assert routes.htu("https:////x") == ("https://x", False)
    assert routes.htu(URL) == (URL, True)


def test_route_targets_stay_bounded() -> None:
    routes = RouteTargets(size=2)
    for n in range(5):
        assert routes.htu(f"https://h/{n}?x") == (f"https://h/{n}", True)
    assert len(routes._targets) <= 2
    assert RouteTargets(size=0).htu("https://H/") == ("https://h/", True)
