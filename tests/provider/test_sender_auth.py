"""The provider as an enterprise sender: each client-authentication method from its webhook
settings, against the kit's own issuer (``serve``) configured the way a bank's would be.

- ``private_key_jwt``: the provider signs with the account's own key and publishes it; the
  receiver's issuer is registered with nothing but the provider's JWKS URL.
- ``tls_client_auth``: the client certificate and key come in the settings (PEM; the key is
  write-only and masked); the token is certificate-bound and ``/webhook`` requires the binding.
- DPoP: ``"dpop": true`` in the settings; ``/webhook`` requires DPoP-bound tokens.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import trustme

from harnesses.clients import ProviderClient
from webhook_kit.endpoint.service import Endpoint
from webhook_kit.oauth.credentials import ClientRegistration

pytestmark = pytest.mark.slow


def until(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def delivered(sink: Endpoint, validation_id: str) -> bool:
    return any(r["accepted"] for r in sink.recorder.query(validation_id=validation_id))


def test_private_key_jwt_with_the_providers_published_keys(
    start_provider: Any, start_endpoint: Any, certs_dir: Path
) -> None:
    provider = start_provider()
    api = ProviderClient(provider)
    jwks_url = provider.info.base_url + "/accounts/default/jwks.json"
    sink: Endpoint = start_endpoint(
        client=ClientRegistration(
            "bank-client",
            "private_key_jwt",
            jwks_url=jwks_url,
            jwks_ca_file=certs_dir / "ca.pem",
        )
    )
    settings = {
        "url": sink.info.url,
        "auth": {
            "token_url": sink.info.token_url,
            "client_id": "bank-client",
            "client_auth_method": "private_key_jwt",
        },
    }
    created = api.call("POST", "/webhook/settings", json=settings)
    assert created.status_code == 201, created.text
    read = api.call("GET", "/webhook/settings").json()["data"]
    assert read["auth"]["jwks_url"] == jwks_url
    keys = api.http.get(jwks_url, headers={"apikey": ""}, timeout=10).json()["keys"]
    assert len(keys) == 1 and keys[0]["alg"] == "RS256" and "d" not in keys[0]  # public only
    validation_id = api.new_validation()
    until(lambda: delivered(sink, validation_id))
    test = api.call("POST", "/webhook/test").json()["data"]
    assert test["ok"], test


def test_a_client_secret_for_a_key_method_is_refused_and_pems_are_checked(
    start_provider: Any, start_endpoint: Any, tmp_path: Path
) -> None:
    api = ProviderClient(start_provider())
    sink: Endpoint = start_endpoint()
    base = {"url": sink.info.url}

    def answer(auth: dict[str, Any]) -> tuple[int, list[str]]:
        document = {**base, "auth": {"token_url": sink.info.token_url, "client_id": "c", **auth}}
        response = api.call("POST", "/webhook/settings", json=document)
        fields = [e["field"] for e in response.json().get("errors", [])]
        return response.status_code, fields

    assert answer({"client_auth_method": "private_key_jwt", "client_secret": "s"}) == (
        422,
        ["auth.client_secret"],
    )
    assert answer({"client_auth_method": "tls_client_auth"}) == (422, ["auth.client_cert"])
    assert answer({"client_secret": "s", "client_cert": "not a pem", "client_key": "no"})[0] == 422
    ca = trustme.CA()
    leaf, other = ca.issue_cert("client.example"), ca.issue_cert("other.example")
    mismatched = {
        "client_auth_method": "tls_client_auth",
        "client_cert": leaf.cert_chain_pems[0].bytes().decode(),
        "client_key": other.private_key_pem.bytes().decode(),
    }
    status, fields = answer(mismatched)
    assert (status, fields) == (422, ["auth.client_cert"])
    assert answer({"client_auth_method": "nope", "client_secret": "s"})[0] == 422


def test_tls_client_auth_with_a_certificate_from_the_settings(
    start_provider: Any, start_endpoint: Any, tmp_path: Path
) -> None:
    client_ca = trustme.CA()
    identity = client_ca.issue_cert("sender.provider.example")
    ca_file = tmp_path / "client-ca.pem"
    client_ca.cert_pem.write_to_path(str(ca_file))
    sink: Endpoint = start_endpoint(
        client=ClientRegistration(
            "mtls-client",
            "tls_client_auth",
            client_ca_file=ca_file,
            san="sender.provider.example",
        ),
        token_binding="mtls",
    )
    api = ProviderClient(start_provider())
    key_pem = identity.private_key_pem.bytes().decode()
    settings = {
        "url": sink.info.url,
        "auth": {
            "token_url": sink.info.token_url,
            "client_id": "mtls-client",
            "client_auth_method": "tls_client_auth",
            "client_cert": identity.cert_chain_pems[0].bytes().decode(),
            "client_key": key_pem,
        },
    }
    created = api.call("POST", "/webhook/settings", json=settings)
    assert created.status_code == 201, created.text
    shown = api.call("GET", "/webhook/settings")
    assert key_pem not in shown.text and "PRIVATE KEY" not in shown.text  # masked
    validation_id = api.new_validation()
    until(lambda: delivered(sink, validation_id))


def test_dpop_bound_tokens_from_the_settings(start_provider: Any, start_endpoint: Any) -> None:
    sink: Endpoint = start_endpoint(token_binding="dpop")
    api = ProviderClient(start_provider())
    assert (
        api.configure(
            sink,
            auth={
                "token_url": sink.info.token_url,
                "client_id": sink.info.client_id,
                "client_secret": sink.info.client_secret,
                "dpop": True,
            },
        ).status_code
        == 201
    )
    validation_id = api.new_validation()
    until(lambda: delivered(sink, validation_id))
    (received,) = sink.recorder.query(validation_id=validation_id)
    assert received["headers"]["authorization"].startswith("DPoP ")


def test_the_settings_schema_lists_the_registrys_methods() -> None:
    from webhook_kit.contract.schema import load
    from webhook_kit.oauth.client_auth import METHODS

    auth = load("settings")["properties"]["auth"]["properties"]
    assert tuple(auth["client_auth_method"]["enum"]) == METHODS
