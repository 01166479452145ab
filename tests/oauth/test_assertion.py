"""RFC 7523 client assertions: signed with real keys, verified against the registered key only."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet, OctKey, RSAKey

from tests.oauth.keys import ec_key, private_pem, rsa_key
from webhook_kit.errors import TokenError
from webhook_kit.oauth.assertion import (
    ASSERTION_TYPE,
    LIFETIME,
    ReplayCache,
    assertion_form,
    sign_client_assertion,
    signing_key,
    verify_client_assertion,
)
from webhook_kit.oauth.client_auth import ClientCredentials

AUD = "https://as.example/oauth/token"
T0 = 1_800_000_000.0
RSA_PEM = private_pem(rsa_key())
EC_PEM = private_pem(ec_key())


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def credentials(algorithm: str = "RS256", **kwargs: Any) -> ClientCredentials:
    pem = EC_PEM if algorithm == "ES256" else RSA_PEM
    return ClientCredentials(
        "sender-1",
        "private_key_jwt",
        private_key=pem,
        key_id="key-1",
        algorithm=algorithm,  # type: ignore[arg-type]
        **kwargs,
    )


def public(creds: ClientCredentials) -> RSAKey | ECKey:
    key = signing_key(creds)
    return type(key).import_key(key.as_dict(private=False))


def parts(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    def load(segment: str) -> dict[str, Any]:
        return json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))  # type: ignore[no-any-return]

    head, body, _ = token.split(".")
    return load(head), load(body)


def verify(token: str, creds: ClientCredentials, clock: Clock, **kwargs: Any) -> Any:
    options: dict[str, Any] = {
        "client_id": creds.client_id,
        "keys": public(creds),
        "audiences": [AUD],
        "replay": ReplayCache(clock=clock),
        "clock": clock,
    }
    options.update(kwargs)
    return verify_client_assertion(token, **options)


@pytest.mark.parametrize("algorithm", ["RS256", "PS256", "ES256"])
def test_signed_assertion_has_the_rfc_7523_claims(algorithm: str) -> None:
    clock = Clock()
    creds = credentials(algorithm, x5t_s256="B" * 43)
    token = sign_client_assertion(creds, audience=AUD, clock=clock)
    header, claims = parts(token)
    assert header == {"alg": algorithm, "typ": "JWT", "kid": "key-1", "x5t#S256": "B" * 43}
    assert claims["iss"] == claims["sub"] == "sender-1"
    assert claims["aud"] == AUD
    assert claims["iat"] == T0 and claims["exp"] == T0 + LIFETIME == T0 + 60
    assert len(claims["jti"]) >= 32
    assert verify(token, creds, clock)["jti"] == claims["jti"]


def test_each_assertion_has_a_new_jti() -> None:
    creds = credentials()
    jtis = {parts(sign_client_assertion(creds, audience=AUD))[1]["jti"] for _ in range(20)}
    assert len(jtis) == 20


def test_assertion_form() -> None:
    form = assertion_form(credentials(), "a.b.c")
    assert form == {
        "client_id": "sender-1",
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": "a.b.c",
    }
    assert ASSERTION_TYPE == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def test_without_kid_or_x5t_the_header_has_neither() -> None:
    creds = ClientCredentials("c", "private_key_jwt", private_key=RSA_PEM)
    header, _ = parts(sign_client_assertion(creds, audience=AUD))
    assert header == {"alg": "RS256", "typ": "JWT"}


def test_verifies_against_a_jwks_with_several_keys() -> None:
    clock = Clock()
    creds = credentials()
    other = RSAKey.generate_key(2048, parameters={"kid": "key-0"})
    keys = KeySet([RSAKey.import_key(other.as_dict(private=False)), public(creds)])
    token = sign_client_assertion(creds, audience=AUD, clock=clock)
    assert verify(token, creds, clock, keys=keys)["iss"] == "sender-1"


def test_replay_is_refused() -> None:
    clock = Clock()
    creds = credentials()
    replay = ReplayCache(clock=clock)
    token = sign_client_assertion(creds, audience=AUD, clock=clock)
    verify(token, creds, clock, replay=replay)
    with pytest.raises(TokenError, match="replayed") as caught:
        verify(token, creds, clock, replay=replay)
    assert caught.value.error == "invalid_client"


def forged(creds: ClientCredentials, header: dict[str, Any], claims: dict[str, Any]) -> str:
    return jwt.encode(header, claims, signing_key(creds), algorithms=[header["alg"]])


def good_claims(**overrides: Any) -> dict[str, Any]:
    claims: dict[str, Any] = {
        "iss": "sender-1",
        "sub": "sender-1",
        "aud": AUD,
        "iat": int(T0),
        "exp": int(T0) + 60,
        "jti": "j-1",
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


@pytest.mark.parametrize(
    ("claims", "message"),
    [
        (good_claims(iss="someone-else"), "iss is not the client_id"),
        (good_claims(sub="someone-else"), "sub is not the client_id"),
        (good_claims(aud=None), "has no aud"),
        (good_claims(aud="https://other.example/token"), "aud is not this server"),
        (good_claims(aud=["https://other.example", 7]), "aud is not this server"),
        (good_claims(exp=None), "has no exp"),
        (good_claims(exp="soon"), "exp is not a number"),
        (good_claims(exp=True), "exp is not a number"),
        (good_claims(iat=int(T0) - 400, exp=int(T0) - 31), "expired"),
        (good_claims(iat=int(T0) + 31, exp=int(T0) + 90), "issued in the future"),
        (good_claims(nbf=int(T0) + 31), "not yet valid"),
        (good_claims(exp=int(T0) + 3600), "lives longer than 300 s"),
        (good_claims(iat=None, exp=int(T0) + 301), "lives longer than 300 s"),
        (good_claims(jti=None), "has no jti"),
        (good_claims(jti=""), "has no jti"),
    ],
)
def test_claim_refusals(claims: dict[str, Any], message: str) -> None:
    creds = credentials()
    token = forged(creds, {"alg": "RS256", "kid": "key-1"}, claims)
    with pytest.raises(TokenError, match=message) as caught:
        verify(token, creds, Clock())
    assert caught.value.error == "invalid_client"


def test_aud_may_be_a_list_and_the_issuer_may_be_accepted() -> None:
    creds = credentials()
    token = forged(creds, {"alg": "RS256"}, good_claims(aud=["x", "https://as.example"]))
    verify(token, creds, Clock(), audiences=[AUD, "https://as.example"])


def test_leeway_accepts_small_skew() -> None:
    creds = credentials()
    token = forged(creds, {"alg": "RS256"}, good_claims(iat=int(T0) + 20, exp=int(T0) + 80))
    verify(token, creds, Clock())


def test_signature_by_another_key_is_refused() -> None:
    creds = credentials()
    impostor = ClientCredentials("sender-1", "private_key_jwt", private_key=private_pem(rsa_key()))
    token = sign_client_assertion(impostor, audience=AUD, clock=Clock())
    with pytest.raises(TokenError, match="signature does not verify"):
        verify(token, creds, Clock())


def test_header_keys_never_make_an_assertion_valid() -> None:
    """A jwk in the header signs nothing: only the registered key counts."""
    creds = credentials("ES256")
    attacker = ECKey.generate_key("P-256")
    token = jwt.encode(
        {"alg": "ES256", "jwk": attacker.as_dict(private=False)},
        good_claims(),
        attacker,
        algorithms=["ES256"],
    )
    with pytest.raises(TokenError, match="signature does not verify"):
        verify(token, creds, Clock())


def test_hmac_keyed_with_the_public_key_and_none_are_refused() -> None:
    creds = credentials()
    pub = public(creds)
    secret = OctKey.import_key(json.dumps(pub.as_dict()).encode())
    hs = jwt.encode({"alg": "HS256"}, good_claims(), secret, algorithms=["HS256"])
    with pytest.raises(TokenError, match="refused") as caught:
        verify(hs, creds, Clock())
    assert caught.value.error == "invalid_client"
    head = base64.urlsafe_b64encode(b'{"alg":"none"}').rstrip(b"=").decode()
    body = base64.urlsafe_b64encode(json.dumps(good_claims()).encode()).rstrip(b"=").decode()
    with pytest.raises(TokenError, match="refused"):
        verify(f"{head}.{body}.", creds, Clock())


def test_unknown_kid_is_refused() -> None:
    creds = credentials()
    token = forged(creds, {"alg": "RS256", "kid": "nope"}, good_claims())
    with pytest.raises(TokenError, match="refused"):
        verify(token, creds, Clock(), keys=KeySet([public(creds)]))


def test_algorithm_outside_the_allow_list_is_refused() -> None:
    creds = credentials()
    token = forged(creds, {"alg": "PS256"}, good_claims())
    with pytest.raises(TokenError, match="refused"):
        verify(token, creds, Clock(), algorithms=["RS256"])
    with pytest.raises(ValueError, match="cannot verify client assertions"):
        verify(token, creds, Clock(), algorithms=["HS256"])


@pytest.mark.parametrize(
    ("token", "message"),
    [
        ("x" * 9000, "too long"),
        ("not-a-jwt", "not a signed JWT"),
        ("a.b.c", "refused|malformed"),
        ("....", "not a signed JWT"),
    ],
)
def test_malformed_assertions(token: str, message: str) -> None:
    with pytest.raises(TokenError, match=message):
        verify(token, credentials(), Clock())


def test_signing_key_of_a_secret_client_is_refused() -> None:
    with pytest.raises(TokenError, match="does not sign"):
        signing_key(ClientCredentials("c", secret="s"))


class TestReplayCache:
    def test_remembers_until_expiry_then_forgets(self) -> None:
        clock = Clock()
        cache = ReplayCache(clock=clock)
        cache.use("a", T0 + 10)
        with pytest.raises(TokenError, match="replayed"):
            cache.use("a", T0 + 10)
        clock.now = T0 + 10
        cache.use("a", T0 + 20)  # expired entries no longer count

    def test_bounded_and_fails_closed_when_full(self) -> None:
        clock = Clock()
        cache = ReplayCache(2, clock=clock)
        cache.use("a", T0 + 10)
        cache.use("b", T0 + 20)
        with pytest.raises(TokenError, match="retry shortly") as caught:
            cache.use("c", T0 + 30)
        assert caught.value.error == "temporarily_unavailable"
        with pytest.raises(TokenError, match="replayed"):
            cache.use("a", T0 + 10)  # nothing was forgotten to make room
        clock.now = T0 + 10
        cache.use("c", T0 + 30)  # "a" expired and was purged
        assert len(cache) == 2

    def test_capacity_must_be_positive(self) -> None:
        with pytest.raises(ValueError):
            ReplayCache(0)

    def test_past_expiry_is_kept_at_least_until_now(self) -> None:
        clock = Clock()
        cache = ReplayCache(clock=clock)
        cache.use("a", T0 - 100)
        assert len(cache) == 1
