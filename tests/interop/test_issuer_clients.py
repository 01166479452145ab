"""The kit's issuer and its bound-token check, exercised by independent clients:
``requests_oauth2client`` for private_key_jwt and DPoP, and curl with a client certificate for
mTLS. Each skips with the reason when its client is missing, unless CI requires it
(``WEBHOOK_KIT_REQUIRE_INTEROP=1``)."""

from __future__ import annotations

import base64
import importlib.util
import json
import shutil
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from joserfc.jwk import ECKey

from harnesses.clients import notification
from tests.conftest import EndpointFactory
from tests.interop.harness import require
from tests.oauth.keys import ClientPki, make_client_pki
from webhook_kit.endpoint.service import Endpoint
from webhook_kit.oauth.credentials import ClientRegistration
from webhook_kit.oauth.mtls import load_client_identity

pytestmark = pytest.mark.slow

CLIENT = "sender-1"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> ClientPki:
    return make_client_pki(tmp_path_factory.mktemp("interop-pki"))


@pytest.fixture
def oauth2client() -> Any:
    require(
        importlib.util.find_spec("requests_oauth2client") is not None,
        "requests_oauth2client",
        "pip install 'requests-oauth2client>=1.8'",
    )
    import requests_oauth2client

    return requests_oauth2client


@pytest.fixture
def session(start_endpoint: EndpointFactory) -> Iterator[requests.Session]:
    with requests.Session() as http:
        http.trust_env = False
        yield http


def discover(lib: Any, sink: Endpoint, http: requests.Session, **kwargs: Any) -> Any:
    assert sink.info.ca_file is not None
    http.verify = sink.info.ca_file
    return lib.OAuth2Client.from_discovery_endpoint(
        url=sink.urls.metadata, issuer=sink.urls.base, session=http, **kwargs
    )


def private_jwk(pki: ClientPki) -> dict[str, Any]:
    key = ECKey.import_key(pki.signing_pem, {"kid": "sender-key-1"})
    return {**key.as_dict(private=True), "alg": "ES256"}


def test_private_key_jwt(
    oauth2client: Any, start_endpoint: EndpointFactory, pki: ClientPki, session: requests.Session
) -> None:
    sink = start_endpoint(
        client=ClientRegistration(CLIENT, "private_key_jwt", public_key_file=pki.public_key_file)
    )
    client = discover(
        oauth2client, sink, session, auth=oauth2client.PrivateKeyJwt(CLIENT, private_jwk(pki))
    )
    token = client.client_credentials(scope="webhook")
    assert token.token_type.lower() == "bearer"
    answer = session.post(sink.info.url, json=notification(), auth=token, timeout=10)
    assert answer.status_code == 200, answer.text
    # Its second assertion is a new one (jti): the replay cache must not refuse it.
    assert client.client_credentials(scope="webhook").access_token != token.access_token


def test_private_key_jwt_refused_with_another_key(
    oauth2client: Any, start_endpoint: EndpointFactory, pki: ClientPki, session: requests.Session
) -> None:
    sink = start_endpoint(
        client=ClientRegistration(CLIENT, "private_key_jwt", public_key_file=pki.public_key_file)
    )
    stranger = {**ECKey.generate_key("P-256").as_dict(private=True), "alg": "ES256", "kid": "x"}
    client = discover(
        oauth2client, sink, session, auth=oauth2client.PrivateKeyJwt(CLIENT, stranger)
    )
    with pytest.raises(oauth2client.InvalidClient):
        client.client_credentials(scope="webhook")


@pytest.mark.parametrize("nonce", [False, True], ids=["no-nonce", "server-nonce"])
def test_dpop_bound_token(
    oauth2client: Any,
    start_endpoint: EndpointFactory,
    pki: ClientPki,
    session: requests.Session,
    nonce: bool,
) -> None:
    sink = start_endpoint(
        client=ClientRegistration(CLIENT, "private_key_jwt", public_key_file=pki.public_key_file),
        token_binding="dpop",
        dpop_nonce=nonce,
    )
    client = discover(
        oauth2client, sink, session, auth=oauth2client.PrivateKeyJwt(CLIENT, private_jwk(pki))
    )
    token = client.client_credentials(scope="webhook", dpop=True)
    assert isinstance(token, oauth2client.DPoPToken)
    for _ in range(2):  # a fresh proof per request, with ath (and the nonce when asked)
        answer = session.post(sink.info.url, json=notification(), auth=token, timeout=10)
        assert answer.status_code == 200, (answer.status_code, answer.headers, answer.text)
    bare = session.post(
        sink.info.url,
        json=notification(),
        headers={"Authorization": f"Bearer {token.access_token}"},
        timeout=10,
    )
    assert bare.status_code == 401 and bare.headers["WWW-Authenticate"].startswith("DPoP ")


def curl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["curl", "--silent", "--show-error", "--max-time", "10", *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@pytest.mark.parametrize("method", ["tls_client_auth", "self_signed_tls_client_auth"])
def test_curl_with_a_client_certificate(
    start_endpoint: EndpointFactory, pki: ClientPki, method: str
) -> None:
    require(shutil.which("curl") is not None, "curl", "apt-get install curl")
    if method == "tls_client_auth":
        cert, key = pki.cert
        registration = ClientRegistration(
            CLIENT, "tls_client_auth", client_ca_file=pki.ca_file, san="sender.example"
        )
    else:
        cert, key = pki.self_signed
        registration = ClientRegistration(
            CLIENT, "self_signed_tls_client_auth", client_cert_file=cert
        )
    sink = start_endpoint(client=registration, token_binding="mtls")
    assert sink.info.ca_file is not None
    tls = ["--cacert", sink.info.ca_file, "--cert", str(cert), "--key", str(key)]
    issued = curl(
        *tls, "--data", f"grant_type=client_credentials&client_id={CLIENT}", sink.info.token_url
    )
    assert issued.returncode == 0, issued.stderr
    body = json.loads(issued.stdout)
    access_token = body["access_token"]
    payload = access_token.split(".")[1]

    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert claims["cnf"]["x5t#S256"] == load_client_identity(cert, key).thumbprint
    post = [
        "--header", f"Authorization: Bearer {access_token}",
        "--header", "Content-Type: application/json",
        "--data", json.dumps(notification()),
        "--write-out", "\n%{http_code}",
        sink.info.url,
    ]  # fmt: skip
    delivered = curl(*tls, *post)
    assert delivered.stdout.rsplit("\n", 1)[-1] == "200", delivered.stdout
    bare = curl("--cacert", sink.info.ca_file, "--include", *post)
    assert bare.stdout.rsplit("\n", 1)[-1] == "401", bare.stdout
    assert 'error="invalid_token"' in bare.stdout
    refused = curl(
        "--cacert", sink.info.ca_file, "--write-out", "\n%{http_code}",
        "--data", f"grant_type=client_credentials&client_id={CLIENT}", sink.info.token_url,
    )  # fmt: skip
    assert refused.stdout.rsplit("\n", 1)[-1] == "401"
    assert "client certificate is required" in refused.stdout
