"""The issuer's client authentication without a server: each method's refusals, as RFC 6749
errors."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.oauth.keys import ClientPki, make_client_pki
from webhook_kit.errors import DiscoveryError
from webhook_kit.oauth.assertion import ASSERTION_TYPE, ReplayCache, sign_client_assertion
from webhook_kit.oauth.client_auth import ClientCredentials
from webhook_kit.oauth.credentials import ClientRegistration, JwksSource
from webhook_kit.oauth.issuer import IssuerSettings, OAuthError, TokenIssuer
from webhook_kit.oauth.mtls import load_client_identity

ISSUER = "https://receiver.example"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> ClientPki:
    return make_client_pki(tmp_path_factory.mktemp("issuer-auth-pki"))


def issuer(registration: ClientRegistration, **kwargs: object) -> TokenIssuer:
    return TokenIssuer(IssuerSettings(ISSUER, registration), **kwargs)  # type: ignore[arg-type]


def refusal(issuer: TokenIssuer, form: dict[str, str], **kwargs: object) -> OAuthError:
    with pytest.raises(OAuthError) as caught:
        asyncio.run(issuer.authenticate(kwargs.pop("authorization", None), form, **kwargs))  # type: ignore[arg-type]
    return caught.value


def assertion_form(pki: ClientPki) -> dict[str, str]:
    creds = ClientCredentials(
        "c", "private_key_jwt", private_key=pki.signing_pem, algorithm="ES256"
    )
    return {
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": sign_client_assertion(creds, audience=ISSUER + "/oauth/token"),
    }


def test_a_secret_client_cannot_send_an_assertion(pki: ClientPki) -> None:
    error = refusal(issuer(ClientRegistration("c", secret="s")), assertion_form(pki))
    assert (error.error, error.status) == ("invalid_client", 401)
    assert "client_secret_basic" in error.description


def test_two_methods_at_once(pki: ClientPki) -> None:
    registration = ClientRegistration("c", "private_key_jwt", public_key_file=pki.public_key_file)
    error = refusal(issuer(registration), assertion_form(pki), authorization="Basic Yzpz")
    assert error.error == "invalid_request" and "not two" in error.description


def test_a_certificate_client_cannot_send_a_secret(pki: ClientPki) -> None:
    registration = ClientRegistration(
        "c", "self_signed_tls_client_auth", client_cert_file=pki.self_signed[0]
    )
    identity = load_client_identity(*pki.self_signed)
    error = refusal(
        issuer(registration), {"client_id": "c", "client_secret": "s"}, peer=identity.certificate
    )
    assert error.status == 401 and "self_signed_tls_client_auth" in error.description
    # The registered certificate itself is accepted.
    asyncio.run(issuer(registration).authenticate(None, {"client_id": "c"}, identity.certificate))
    other = load_client_identity(*pki.cert).certificate
    error = refusal(issuer(registration), {"client_id": "c"}, peer=other)
    assert "not the registered one" in error.description


def test_unreachable_jwks(pki: ClientPki) -> None:
    async def down(url: str) -> bytes:
        raise DiscoveryError(f"cannot fetch the JWKS at {url}: ClientConnectorError")

    registration = ClientRegistration("c", "private_key_jwt", jwks_url="https://sender/jwks")
    source = JwksSource("https://sender/jwks", down)
    error = refusal(issuer(registration, jwks=source), assertion_form(pki))
    assert error.status == 401 and "cannot be had" in error.description
    malformed = {"client_assertion_type": ASSERTION_TYPE, "client_assertion": "!!!.x.y"}
    assert refusal(issuer(registration, jwks=source), malformed).status == 401


def test_a_full_replay_cache_is_a_503(pki: ClientPki) -> None:
    registration = ClientRegistration("c", "private_key_jwt", public_key_file=pki.public_key_file)
    kit = issuer(registration)
    kit.assertions = ReplayCache(1)
    asyncio.run(kit.authenticate(None, assertion_form(pki)))
    error = refusal(kit, assertion_form(pki))
    assert (error.error, error.status) == ("temporarily_unavailable", 503)


def test_subject_dn_ignores_attribute_order(pki: ClientPki, tmp_path: Path) -> None:
    registration = ClientRegistration(
        "c",
        "tls_client_auth",
        client_ca_file=pki.ca_file,
        subject_dn="O=Sender Bank,OU=Payments,CN=sender.example",
    )
    certificate = load_client_identity(*pki.cert).certificate
    asyncio.run(issuer(registration).authenticate(None, {"client_id": "c"}, certificate))
    san = ClientRegistration("c", "tls_client_auth", client_ca_file=pki.ca_file, san="nope")
    error = refusal(issuer(san), {"client_id": "c"}, peer=certificate)
    assert "lacks the registered SAN" in error.description
