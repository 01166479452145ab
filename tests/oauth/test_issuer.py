"""The endpoint's own authorization server, over real HTTPS."""

from __future__ import annotations

import base64

import pytest
import requests
from joserfc import jwt
from joserfc.jwk import KeySet

from tests.helpers import KitClient
from webhook_kit.oauth.credentials import ClientCredentials
from webhook_kit.oauth.issuer import IssuerSettings, OAuthError, TokenIssuer, TokenSettings


def token_request(client: KitClient, **kwargs: object) -> requests.Response:
    return client.http.post(client.info.token_url, timeout=10, **kwargs)  # type: ignore[arg-type]


def test_client_secret_basic(client: KitClient) -> None:
    response = token_request(
        client,
        data={"grant_type": "client_credentials"},
        auth=(client.info.client_id, client.info.client_secret),
    )
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 3600
    assert response.headers["Cache-Control"] == "no-store"


def test_client_secret_post(client: KitClient) -> None:
    response = token_request(
        client,
        data={
            "grant_type": "client_credentials",
            "client_id": client.info.client_id,
            "client_secret": client.info.client_secret,
        },
    )
    assert response.status_code == 200


def test_token_is_a_signed_at_jwt_verifiable_with_the_jwks(client: KitClient) -> None:
    token = client.token()
    jwks = client.http.get(client.info.jwks_url, timeout=10).json()
    decoded = jwt.decode(token, KeySet.import_key_set(jwks), algorithms=["RS256"])
    assert decoded.header["typ"] == "at+jwt"
    claims = decoded.claims
    for name in ("iss", "aud", "sub", "exp", "iat", "jti", "scope"):
        assert name in claims
    assert claims["iss"] == client.sink.urls.base
    assert claims["sub"] == client.info.client_id
    assert claims["exp"] - claims["iat"] == 3600


def test_each_token_has_its_own_jti(client: KitClient) -> None:
    def jti(token: str) -> str:
        import json

        payload = token.split(".")[1]
        value: str = json.loads(base64.urlsafe_b64decode(payload + "=="))["jti"]
        return value

    assert jti(client.token()) != jti(client.token())


def test_metadata_rfc8414(client: KitClient) -> None:
    metadata = client.http.get(client.sink.urls.metadata, timeout=10).json()
    assert metadata["issuer"] == client.sink.urls.base
    assert metadata["token_endpoint"] == client.info.token_url
    assert metadata["jwks_uri"] == client.info.jwks_url
    assert metadata["grant_types_supported"] == ["client_credentials"]
    assert set(metadata["token_endpoint_auth_methods_supported"]) == {
        "client_secret_basic",
        "client_secret_post",
    }


def test_wrong_secret_is_invalid_client_401(client: KitClient) -> None:
    response = token_request(
        client, data={"grant_type": "client_credentials"}, auth=(client.info.client_id, "wrong")
    )
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert "WWW-Authenticate" in response.headers
    assert client.info.client_secret not in response.text


def test_unknown_client_is_invalid_client(client: KitClient) -> None:
    response = token_request(
        client,
        data={"grant_type": "client_credentials"},
        auth=("someone", client.info.client_secret),
    )
    assert response.status_code == 401 and response.json()["error"] == "invalid_client"


def test_no_client_authentication_is_401(client: KitClient) -> None:
    response = token_request(client, data={"grant_type": "client_credentials"})
    assert response.status_code == 401 and response.json()["error"] == "invalid_client"


def test_unsupported_grant_type_400(client: KitClient) -> None:
    response = token_request(
        client,
        data={"grant_type": "password"},
        auth=(client.info.client_id, client.info.client_secret),
    )
    assert response.status_code == 400
    assert response.json()["error"] == "unsupported_grant_type"


def test_missing_grant_type_is_invalid_request(client: KitClient) -> None:
    response = token_request(
        client, data={"scope": "webhook"}, auth=(client.info.client_id, client.info.client_secret)
    )
    assert response.status_code == 400 and response.json()["error"] == "invalid_request"


def test_json_body_is_invalid_request(client: KitClient) -> None:
    response = token_request(
        client,
        json={"grant_type": "client_credentials"},
        auth=(client.info.client_id, client.info.client_secret),
    )
    assert response.status_code == 400 and response.json()["error"] == "invalid_request"


def test_two_authentication_methods_is_invalid_request(client: KitClient) -> None:
    response = token_request(
        client,
        data={
            "grant_type": "client_credentials",
            "client_id": client.info.client_id,
            "client_secret": client.info.client_secret,
        },
        auth=(client.info.client_id, client.info.client_secret),
    )
    assert response.status_code == 400 and response.json()["error"] == "invalid_request"


def test_repeated_parameter_is_invalid_request(client: KitClient) -> None:
    response = token_request(
        client,
        data="grant_type=client_credentials&grant_type=client_credentials",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        auth=(client.info.client_id, client.info.client_secret),
    )
    assert response.status_code == 400 and response.json()["error"] == "invalid_request"


def test_unknown_scope_and_audience(client: KitClient) -> None:
    auth = (client.info.client_id, client.info.client_secret)
    scope = token_request(
        client, data={"grant_type": "client_credentials", "scope": "admin"}, auth=auth
    )
    assert scope.status_code == 400 and scope.json()["error"] == "invalid_scope"
    audience = token_request(
        client, data={"grant_type": "client_credentials", "audience": "x"}, auth=auth
    )
    assert audience.status_code == 400 and audience.json()["error"] == "invalid_target"
    ok = token_request(
        client,
        data={"grant_type": "client_credentials", "scope": "webhook", "audience": "webhook-kit"},
        auth=auth,
    )
    assert ok.status_code == 200


def test_configured_credentials_are_used(start_endpoint: object) -> None:
    sink = start_endpoint(client_id="my-client", client_secret="my-secret-value")  # type: ignore[operator]
    kit = KitClient(sink)
    assert sink.info.client_id == "my-client"
    assert kit.post(token=kit.token()).status_code == 200


def test_malformed_basic_header() -> None:
    settings = IssuerSettings("https://i", ClientCredentials("c", "s"), TokenSettings(audience="a"))
    issuer = TokenIssuer(settings)
    with pytest.raises(OAuthError) as caught:
        issuer.authenticate_client("Basic !!!", {})
    assert caught.value.error == "invalid_client"


def test_credentials_repr_hides_the_secret() -> None:
    credentials = ClientCredentials.generate()
    assert credentials.client_secret not in repr(credentials)
