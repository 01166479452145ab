"""``serve --token-binding``: /webhook takes a bound token only with what it is bound to, over
real HTTPS with real client certificates and real DPoP proofs."""

from __future__ import annotations

import http.client
import json
import ssl
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from harnesses.clients import notification
from tests.conftest import EndpointFactory
from tests.oauth.keys import ClientPki, make_client_pki
from webhook_kit.endpoint.service import Endpoint
from webhook_kit.oauth.credentials import ClientRegistration
from webhook_kit.oauth.dpop import DPoPKey, make_proof

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> ClientPki:
    return make_client_pki(tmp_path_factory.mktemp("binding-pki"))


@pytest.fixture
def session() -> Iterator[requests.Session]:
    with requests.Session() as http:
        yield http


def token(http: requests.Session, sink: Endpoint, **kwargs: Any) -> str:
    response = http.post(
        sink.info.token_url,
        data={"grant_type": "client_credentials", "client_id": sink.info.client_id},
        auth=(sink.info.client_id, sink.info.client_secret),
        verify=sink.info.ca_file,
        timeout=10,
        **kwargs,
    )
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def deliver(
    http: requests.Session, sink: Endpoint, authorization: str | None, **kwargs: Any
) -> requests.Response:
    headers = dict(kwargs.pop("headers", {}))
    if authorization is not None:
        headers["Authorization"] = authorization
    return http.post(
        sink.info.url,
        json=notification(),
        headers=headers,
        verify=sink.info.ca_file,
        timeout=10,
        **kwargs,
    )


def refused(response: requests.Response, error: str | None, scheme: str) -> str:
    assert response.status_code == 401, response.text
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith(f"{scheme} "), challenge
    if error is not None:
        assert f'error="{error}"' in challenge, challenge
        assert response.json()["error_type"] == error
    return challenge


class TestDPoP:
    @pytest.fixture(params=["uvicorn", "hypercorn"])
    def sink(self, request: pytest.FixtureRequest, start_endpoint: EndpointFactory) -> Endpoint:
        # htu is compared with the URL each server reports (scheme, host, port, path).
        return start_endpoint(token_binding="dpop", server=request.param)

    @pytest.fixture
    def key(self) -> DPoPKey:
        return DPoPKey.generate()

    @pytest.fixture
    def bound(self, sink: Endpoint, key: DPoPKey, session: requests.Session) -> str:
        proof = make_proof(key, method="POST", url=sink.info.token_url)
        return token(session, sink, headers={"DPoP": proof})

    def proof(self, sink: Endpoint, key: DPoPKey, bound: str, **overrides: Any) -> str:
        options: dict[str, Any] = {"method": "POST", "url": sink.info.url, "access_token": bound}
        options.update(overrides)
        return make_proof(key, **options)

    def test_the_token_with_its_proof_is_accepted(
        self, sink: Endpoint, key: DPoPKey, bound: str, session: requests.Session
    ) -> None:
        for _ in range(2):  # a fresh proof per request
            proof = self.proof(sink, key, bound)
            response = deliver(session, sink, f"DPoP {bound}", headers={"DPoP": proof})
            assert response.status_code == 200, response.text

    def test_a_bound_token_presented_bare(
        self, sink: Endpoint, bound: str, session: requests.Session
    ) -> None:
        challenge = refused(deliver(session, sink, f"Bearer {bound}"), "invalid_token", "DPoP")
        assert 'algs="ES256 PS256 RS256"' in challenge
        refused(deliver(session, sink, f"DPoP {bound}"), "invalid_dpop_proof", "DPoP")

    def test_a_proof_for_another_url_or_method(
        self, sink: Endpoint, key: DPoPKey, bound: str, session: requests.Session
    ) -> None:
        other_url = self.proof(sink, key, bound, url=sink.info.token_url)
        answer = deliver(session, sink, f"DPoP {bound}", headers={"DPoP": other_url})
        refused(answer, "invalid_dpop_proof", "DPoP")
        assert "htu" in answer.json()["error_message"]
        other_method = self.proof(sink, key, bound, method="PUT")
        answer = deliver(session, sink, f"DPoP {bound}", headers={"DPoP": other_method})
        assert "htm" in answer.json()["error_message"]

    def test_a_replayed_proof(
        self, sink: Endpoint, key: DPoPKey, bound: str, session: requests.Session
    ) -> None:
        proof = self.proof(sink, key, bound)
        assert deliver(session, sink, f"DPoP {bound}", headers={"DPoP": proof}).status_code == 200
        again = deliver(session, sink, f"DPoP {bound}", headers={"DPoP": proof})
        refused(again, "invalid_dpop_proof", "DPoP")
        assert "replayed" in again.json()["error_message"]

    def test_a_proof_by_another_key_or_for_another_token(
        self, sink: Endpoint, key: DPoPKey, bound: str, session: requests.Session
    ) -> None:
        stranger = self.proof(sink, DPoPKey.generate(), bound)
        answer = deliver(session, sink, f"DPoP {bound}", headers={"DPoP": stranger})
        refused(answer, "invalid_dpop_proof", "DPoP")
        no_ath = self.proof(sink, key, bound, access_token=None)
        refused(deliver(session, sink, f"DPoP {bound}", headers={"DPoP": no_ath}), None, "DPoP")

    def test_two_proofs_are_refused(self, sink: Endpoint, key: DPoPKey, bound: str) -> None:
        """Two DPoP headers are not a choice of proofs (RFC 9449 section 4.3)."""
        assert sink.info.ca_file is not None
        context = ssl.create_default_context(cafile=sink.info.ca_file)
        host, port = sink.sock.getsockname()[:2]
        connection = http.client.HTTPSConnection(host, port, context=context, timeout=10)
        try:
            connection.putrequest("POST", sink.settings.path)
            body = json.dumps(notification()).encode()
            for name, value in (
                ("Authorization", f"DPoP {bound}"),
                ("DPoP", self.proof(sink, key, bound)),
                ("DPoP", self.proof(sink, key, bound)),
                ("Content-Type", "application/json"),
                ("Content-Length", str(len(body))),
            ):
                connection.putheader(name, value)
            connection.endheaders(body)
            answer = connection.getresponse()
            assert answer.status == 401
            assert 'error="invalid_dpop_proof"' in answer.getheader("WWW-Authenticate", "")
        finally:
            connection.close()

    def test_an_unbound_token_or_none_at_all(
        self, sink: Endpoint, session: requests.Session
    ) -> None:
        plain = token(session, sink)
        answer = deliver(session, sink, f"Bearer {plain}")
        refused(answer, "invalid_token", "DPoP")
        assert "requires a DPoP-bound token" in answer.json()["error_message"]
        refused(deliver(session, sink, f"DPoP {plain}"), "invalid_token", "DPoP")
        challenge = refused(deliver(session, sink, None), None, "DPoP")
        assert "error=" not in challenge


def test_dpop_nonce_at_the_webhook(
    start_endpoint: EndpointFactory, session: requests.Session
) -> None:
    sink = start_endpoint(token_binding="dpop", dpop_nonce=True)
    key = DPoPKey.generate()
    first = session.post(
        sink.info.token_url,
        data={"grant_type": "client_credentials"},
        auth=(sink.info.client_id, sink.info.client_secret),
        headers={"DPoP": make_proof(key, method="POST", url=sink.info.token_url)},
        verify=sink.info.ca_file,
        timeout=10,
    )
    nonce = first.headers["DPoP-Nonce"]
    proof = make_proof(key, method="POST", url=sink.info.token_url, nonce=nonce)
    bound = token(session, sink, headers={"DPoP": proof})
    stale = make_proof(key, method="POST", url=sink.info.url, access_token=bound)
    answer = deliver(session, sink, f"DPoP {bound}", headers={"DPoP": stale})
    refused(answer, "use_dpop_nonce", "DPoP")
    fresh = make_proof(
        key,
        method="POST",
        url=sink.info.url,
        access_token=bound,
        nonce=answer.headers["DPoP-Nonce"],
    )
    assert deliver(session, sink, f"DPoP {bound}", headers={"DPoP": fresh}).status_code == 200


class TestMtls:
    @pytest.fixture
    def sink(self, start_endpoint: EndpointFactory, pki: ClientPki) -> Endpoint:
        registration = ClientRegistration(
            "sender-1", secret="s3cret-value", client_ca_file=pki.ca_file
        )
        return start_endpoint(client=registration, token_binding="mtls")

    def test_the_token_over_its_certificate_is_accepted(
        self, sink: Endpoint, pki: ClientPki, session: requests.Session
    ) -> None:
        bound = token(session, sink, cert=pki.cert)
        assert deliver(session, sink, f"Bearer {bound}", cert=pki.cert).status_code == 200

    def test_refusals(self, sink: Endpoint, pki: ClientPki, session: requests.Session) -> None:
        bound = token(session, sink, cert=pki.cert)
        bare = deliver(session, sink, f"Bearer {bound}")
        refused(bare, "invalid_token", "Bearer")
        assert "without a client certificate" in bare.json()["error_message"]
        with requests.Session() as other_session:
            other = deliver(other_session, sink, f"Bearer {bound}", cert=pki.other)
        refused(other, "invalid_token", "Bearer")
        assert "another certificate" in other.json()["error_message"]
        plain = token(session, sink)
        unbound = deliver(session, sink, f"Bearer {plain}", cert=pki.cert)
        assert "requires a certificate-bound token" in unbound.json()["error_message"]


def test_bound_tokens_are_checked_without_a_required_binding(
    start_endpoint: EndpointFactory, pki: ClientPki, session: requests.Session
) -> None:
    """A token bound to a certificate is never good without it, whatever --token-binding says."""
    sink = start_endpoint(
        client=ClientRegistration("sender-1", secret="s3cret-value", client_ca_file=pki.ca_file)
    )
    bound = token(session, sink, cert=pki.cert)
    refused(deliver(session, sink, f"Bearer {bound}"), "invalid_token", "Bearer")
    assert deliver(session, sink, f"Bearer {bound}", cert=pki.cert).status_code == 200
    plain = token(session, sink)
    assert deliver(session, sink, f"Bearer {plain}").status_code == 200
