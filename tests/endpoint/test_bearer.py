"""Every bad token is refused with 401 and a WWW-Authenticate challenge, on both servers."""

from __future__ import annotations

import time

import pytest
from joserfc.jwk import RSAKey

from tests.helpers import KitClient, claims_for, hs256_with_public_key, notification, sign, unsigned


def assert_refused(
    client: KitClient, response_token: str | None, reason: str, **kw: object
) -> None:
    response = client.post(notification(), token=response_token, **kw)  # type: ignore[arg-type]
    assert response.status_code == 401, response.text
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith("Bearer ")
    body = response.json()
    assert reason in body["error_message"]
    recorded = client.sink.recorder.query(accepted=False)[-1]
    assert recorded["http_status"] == 401
    assert reason in recorded["reason"]


def test_valid_token_is_accepted(client: KitClient) -> None:
    response = client.post(notification())
    assert response.status_code == 200
    assert response.json()["received"] is True


def test_missing_token(client: KitClient) -> None:
    response = client.post(notification(), token=None)
    assert response.status_code == 401
    # RFC 6750 section 3.1: no error code when the request carried no credentials at all.
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="webhook-kit"'
    assert response.json()["error_message"] == "missing token"


def test_malformed_authorization_header(client: KitClient) -> None:
    assert_refused(client, None, "malformed", headers={"Authorization": "Bearer a b"})


def test_non_bearer_scheme(client: KitClient) -> None:
    assert_refused(client, None, "not Bearer", headers={"Authorization": "Basic Zm9vOmJhcg=="})


def test_garbage_token(client: KitClient) -> None:
    assert_refused(client, "not-a-jwt", "malformed token")


def test_expired_token(client: KitClient) -> None:
    now = int(time.time())
    claims = claims_for(client.sink, iat=now - 600, nbf=now - 600, exp=now - 60)
    assert_refused(client, sign(claims, client.sink.issuer.key), "expired token")


def test_not_yet_valid_token(client: KitClient) -> None:
    now = int(time.time())
    claims = claims_for(client.sink, nbf=now + 600, exp=now + 1200)
    assert_refused(client, sign(claims, client.sink.issuer.key), "not yet valid")


def test_wrongly_signed_token(client: KitClient) -> None:
    foreign = RSAKey.generate_key(2048, auto_kid=True)
    assert_refused(client, sign(claims_for(client.sink), foreign), "bad signature")


def test_tampered_signature(client: KitClient) -> None:
    token = client.token()
    head, payload, signature = token.split(".")
    flipped = "A" if signature[5] != "A" else "B"
    tampered = f"{head}.{payload}.{signature[:5]}{flipped}{signature[6:]}"
    assert_refused(client, tampered, "bad signature")


def test_tampered_claims(client: KitClient) -> None:
    import base64
    import json

    head, payload, signature = client.token().split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["sub"] = "someone-else"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    assert_refused(client, f"{head}.{forged}.{signature}", "bad signature")


def test_wrong_audience(client: KitClient) -> None:
    claims = claims_for(client.sink, aud="https://someone-else.example")
    assert_refused(client, sign(claims, client.sink.issuer.key), "wrong audience")


def test_wrong_issuer(client: KitClient) -> None:
    claims = claims_for(client.sink, iss="https://evil.example")
    assert_refused(client, sign(claims, client.sink.issuer.key), "wrong issuer")


def test_missing_expiry(client: KitClient) -> None:
    claims = claims_for(client.sink, exp=None)
    assert_refused(client, sign(claims, client.sink.issuer.key), "exp")


def test_alg_none(client: KitClient) -> None:
    assert_refused(client, unsigned(claims_for(client.sink)), "algorithm 'none' not allowed")


def test_hs256_signed_with_the_public_key(client: KitClient) -> None:
    public_pem = client.sink.issuer.public_key.as_pem()
    token = hs256_with_public_key(claims_for(client.sink), public_pem)
    assert_refused(client, token, "algorithm 'HS256' not allowed")


def test_wrong_token_type(client: KitClient) -> None:
    token = sign(claims_for(client.sink), client.sink.issuer.key, typ="JWT")
    assert_refused(client, token, "not at+jwt")


def test_token_in_query_string_is_refused(client: KitClient) -> None:
    token = client.token()
    response = client.post(
        notification(), token=None, url=f"{client.info.url}?access_token={token}"
    )
    assert response.status_code == 401
    assert 'error="invalid_request"' in response.headers["WWW-Authenticate"]
    assert "query string" in response.json()["error_message"]


def test_query_string_token_refused_even_with_a_valid_header(client: KitClient) -> None:
    token = client.token()
    response = client.post(
        notification(), token=token, url=f"{client.info.url}?access_token={token}"
    )
    assert response.status_code == 401


@pytest.mark.parametrize("header", ["Bearer", "Bearer ", "bearer    "])
def test_empty_bearer_value(client: KitClient, header: str) -> None:
    response = client.post(notification(), token=None, headers={"Authorization": header})
    assert response.status_code == 401
    assert "WWW-Authenticate" in response.headers


def test_invalid_token_challenge_names_the_error(client: KitClient) -> None:
    response = client.post(notification(), token="a.b.c")
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]
