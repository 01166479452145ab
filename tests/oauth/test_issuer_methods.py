"""The endpoint's issuer authenticates its client by each registered method, over real HTTPS
(real keys, real client certificates), and binds tokens to a certificate or a DPoP key."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.conftest import EndpointFactory
from tests.oauth.keys import ClientPki, ec_key, make_client_pki, private_pem, public_pem, rsa_key
from webhook_kit.endpoint.service import Endpoint
from webhook_kit.oauth.assertion import ASSERTION_TYPE, sign_client_assertion
from webhook_kit.oauth.client_auth import ClientCredentials
from webhook_kit.oauth.credentials import ClientRegistration
from webhook_kit.oauth.dpop import DPoPKey, make_proof
from webhook_kit.oauth.mtls import load_client_identity

pytestmark = pytest.mark.slow

CLIENT = "sender-1"
SUBJECT = "CN=sender.example,OU=Payments,O=Sender Bank"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> ClientPki:
    return make_client_pki(tmp_path_factory.mktemp("client-pki"))


@pytest.fixture
def session() -> Iterator[requests.Session]:
    with requests.Session() as http:
        yield http


def claims(token: str) -> dict[str, Any]:
    body = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))  # type: ignore[no-any-return]


def post_token(
    http: requests.Session, sink: Endpoint, data: dict[str, str], **kwargs: Any
) -> requests.Response:
    return http.post(
        sink.info.token_url,
        data={"grant_type": "client_credentials", **data},
        verify=sink.info.ca_file,
        timeout=10,
        **kwargs,
    )


def assertion_data(pem: str, sink: Endpoint, audience: str | None = None) -> dict[str, str]:
    creds = ClientCredentials(CLIENT, "private_key_jwt", private_key=pem, algorithm="ES256")
    assertion = sign_client_assertion(creds, audience=audience or sink.info.token_url)
    return {"client_assertion_type": ASSERTION_TYPE, "client_assertion": assertion}


class TestPrivateKeyJwt:
    @pytest.fixture
    def sink(self, start_endpoint: EndpointFactory, pki: ClientPki) -> Endpoint:
        registration = ClientRegistration(
            CLIENT, "private_key_jwt", public_key_file=pki.public_key_file
        )
        return start_endpoint(client=registration)

    def test_a_signed_assertion_gets_a_token(
        self, sink: Endpoint, pki: ClientPki, session: requests.Session
    ) -> None:
        response = post_token(session, sink, assertion_data(pki.signing_pem, sink))
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["token_type"] == "Bearer"
        assert claims(body["access_token"])["client_id"] == CLIENT
        assert "cnf" not in claims(body["access_token"])
        # FAPI 2.0's audience, the issuer, is accepted as well.
        issuer_aud = assertion_data(pki.signing_pem, sink, audience=sink.urls.base)
        assert post_token(session, sink, issuer_aud).status_code == 200
        assert sink.info.client_secret == ""

    def test_refusals(self, sink: Endpoint, pki: ClientPki, session: requests.Session) -> None:
        data = assertion_data(pki.signing_pem, sink)
        assert post_token(session, sink, data).status_code == 200
        replayed = post_token(session, sink, data)
        assert replayed.status_code == 401
        assert replayed.json()["error"] == "invalid_client"
        assert "replayed" in replayed.json()["error_description"]

        impostor = assertion_data(private_pem(ec_key()), sink)
        refused = post_token(session, sink, impostor)
        assert refused.status_code == 401
        assert "signature" in refused.json()["error_description"]

        elsewhere = assertion_data(pki.signing_pem, sink, audience="https://other.example/token")
        assert "aud" in post_token(session, sink, elsewhere).json()["error_description"]

        wrong_type = {**assertion_data(pki.signing_pem, sink), "client_assertion_type": "jwt"}
        answer = post_token(session, sink, wrong_type)
        assert answer.status_code == 400 and answer.json()["error"] == "invalid_request"

        secret = post_token(session, sink, {"client_id": CLIENT, "client_secret": "guess"})
        assert secret.status_code == 401
        assert "private_key_jwt" in secret.json()["error_description"]
        assert "WWW-Authenticate" not in secret.headers

        bare = post_token(session, sink, {"client_id": CLIENT})
        assert bare.status_code == 401 and "required" in bare.json()["error_description"]

        other_id = {**assertion_data(pki.signing_pem, sink), "client_id": "someone"}
        assert post_token(session, sink, other_id).status_code == 401

    def test_metadata_advertises_the_method(
        self, sink: Endpoint, session: requests.Session
    ) -> None:
        metadata = session.get(sink.urls.metadata, verify=sink.info.ca_file, timeout=10).json()
        assert metadata["token_endpoint_auth_methods_supported"] == ["private_key_jwt"]
        assert metadata["token_endpoint_auth_signing_alg_values_supported"] == [
            "RS256",
            "PS256",
            "ES256",
        ]
        assert metadata["dpop_signing_alg_values_supported"] == ["ES256", "PS256", "RS256"]
        assert metadata["tls_client_certificate_bound_access_tokens"] is False


def test_secret_client_metadata_lists_both_secret_methods(
    start_endpoint: EndpointFactory, session: requests.Session
) -> None:
    sink = start_endpoint()
    metadata = session.get(sink.urls.metadata, verify=sink.info.ca_file, timeout=10).json()
    assert metadata["token_endpoint_auth_methods_supported"] == [
        "client_secret_basic",
        "client_secret_post",
    ]
    assert "token_endpoint_auth_signing_alg_values_supported" not in metadata


class TestTlsClientAuth:
    @pytest.fixture(params=["subject_dn", "san"])
    def sink(
        self, request: pytest.FixtureRequest, start_endpoint: EndpointFactory, pki: ClientPki
    ) -> Endpoint:
        dn = SUBJECT if request.param == "subject_dn" else None
        san = "sender.example" if request.param == "san" else None
        registration = ClientRegistration(
            CLIENT, "tls_client_auth", client_ca_file=pki.ca_file, subject_dn=dn, san=san
        )
        return start_endpoint(client=registration)

    def test_the_registered_certificate_gets_a_bound_token(
        self, sink: Endpoint, pki: ClientPki, session: requests.Session
    ) -> None:
        response = post_token(session, sink, {"client_id": CLIENT}, cert=pki.cert)
        assert response.status_code == 200, response.text
        token = response.json()["access_token"]
        thumbprint = load_client_identity(*pki.cert).thumbprint
        assert claims(token)["cnf"] == {"x5t#S256": thumbprint}
        metadata = session.get(sink.urls.metadata, verify=sink.info.ca_file, timeout=10).json()
        assert metadata["token_endpoint_auth_methods_supported"] == ["tls_client_auth"]
        assert metadata["tls_client_certificate_bound_access_tokens"] is True

    def test_refusals(self, sink: Endpoint, pki: ClientPki, session: requests.Session) -> None:
        without = post_token(session, sink, {"client_id": CLIENT})
        assert without.status_code == 401
        assert "client certificate is required" in without.json()["error_description"]
        other = post_token(session, sink, {"client_id": CLIENT}, cert=pki.other)
        assert other.status_code == 401 and other.json()["error"] == "invalid_client"
        no_id = post_token(session, sink, {}, cert=pki.cert)
        assert no_id.status_code == 400 and "client_id is required" in no_id.text
        # A certificate from a CA the endpoint does not trust never completes the handshake.
        # TLS 1.3 refuses it after the client finished its handshake: an alert or a close.
        with pytest.raises(requests.exceptions.ConnectionError):
            post_token(session, sink, {"client_id": CLIENT}, cert=pki.stranger)


class TestSelfSigned:
    @pytest.fixture
    def sink(self, start_endpoint: EndpointFactory, pki: ClientPki) -> Endpoint:
        registration = ClientRegistration(
            CLIENT, "self_signed_tls_client_auth", client_cert_file=pki.self_signed[0]
        )
        return start_endpoint(client=registration)

    def test_the_registered_certificate_gets_a_token(
        self, sink: Endpoint, pki: ClientPki, session: requests.Session
    ) -> None:
        response = post_token(session, sink, {"client_id": CLIENT}, cert=pki.self_signed)
        assert response.status_code == 200, response.text
        thumbprint = load_client_identity(*pki.self_signed).thumbprint
        assert claims(response.json()["access_token"])["cnf"]["x5t#S256"] == thumbprint

    def test_another_certificate_is_refused(
        self, sink: Endpoint, pki: ClientPki, session: requests.Session
    ) -> None:
        # TLS 1.3 refuses it after the client finished its handshake: an alert or a close.
        with pytest.raises(requests.exceptions.ConnectionError):
            post_token(session, sink, {"client_id": CLIENT}, cert=pki.stranger)
        without = post_token(session, sink, {"client_id": CLIENT})
        assert without.status_code == 401


class TestDPoPAtTheTokenEndpoint:
    def test_a_proof_gets_a_dpop_bound_token(
        self, start_endpoint: EndpointFactory, session: requests.Session
    ) -> None:
        sink = start_endpoint()
        auth = (sink.info.client_id, sink.info.client_secret)
        key = DPoPKey.generate()
        proof = make_proof(key, method="POST", url=sink.info.token_url)
        response = post_token(session, sink, {}, auth=auth, headers={"DPoP": proof})
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["token_type"] == "DPoP"
        assert claims(body["access_token"])["cnf"] == {"jkt": key.thumbprint}

        replayed = post_token(session, sink, {}, auth=auth, headers={"DPoP": proof})
        assert replayed.status_code == 400
        assert replayed.json()["error"] == "invalid_dpop_proof"
        elsewhere = make_proof(key, method="POST", url=sink.info.url)
        refused = post_token(session, sink, {}, auth=auth, headers={"DPoP": elsewhere})
        assert refused.json()["error"] == "invalid_dpop_proof"
        assert "htu" in refused.json()["error_description"]

    def test_server_nonce(self, start_endpoint: EndpointFactory, session: requests.Session) -> None:
        sink = start_endpoint(dpop_nonce=True)
        auth = (sink.info.client_id, sink.info.client_secret)
        key = DPoPKey.generate()
        first = post_token(
            session,
            sink,
            {},
            auth=auth,
            headers={"DPoP": make_proof(key, method="POST", url=sink.info.token_url)},
        )
        assert first.status_code == 400 and first.json()["error"] == "use_dpop_nonce"
        nonce = first.headers["DPoP-Nonce"]
        proof = make_proof(key, method="POST", url=sink.info.token_url, nonce=nonce)
        second = post_token(session, sink, {}, auth=auth, headers={"DPoP": proof})
        assert second.status_code == 200, second.text
        assert second.json()["token_type"] == "DPoP"


def test_private_key_jwt_and_a_certificate_give_a_certificate_bound_token(
    start_endpoint: EndpointFactory, pki: ClientPki, session: requests.Session
) -> None:
    registration = ClientRegistration(
        CLIENT, "private_key_jwt", public_key_file=pki.public_key_file, client_ca_file=pki.ca_file
    )
    sink = start_endpoint(client=registration)
    response = post_token(session, sink, assertion_data(pki.signing_pem, sink), cert=pki.cert)
    assert response.status_code == 200, response.text
    assert "x5t#S256" in claims(response.json()["access_token"])["cnf"]


def test_rsa_public_key_registration(
    start_endpoint: EndpointFactory, tmp_path: Path, session: requests.Session
) -> None:

    key = rsa_key()
    public_file = tmp_path / "rsa.pem"
    public_file.write_text(public_pem(key))
    sink = start_endpoint(
        client=ClientRegistration(CLIENT, "private_key_jwt", public_key_file=public_file)
    )
    creds = ClientCredentials(
        CLIENT, "private_key_jwt", private_key=private_pem(key), algorithm="PS256"
    )
    data = {
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": sign_client_assertion(creds, audience=sink.info.token_url),
    }
    assert post_token(session, sink, data).status_code == 200
