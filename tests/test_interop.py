"""Independent clients: requests-oauthlib (Python) and curl (C, with HTTP/2 against hypercorn)."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
from oauthlib.oauth2 import BackendApplicationClient
from requests_oauthlib import OAuth2Session

from tests.helpers import KitClient, notification
from webhook_kit.endpoint.service import Endpoint

# Interop: independent clients (requests-oauthlib, curl over HTTP/2) against both servers.
pytestmark = pytest.mark.slow


@pytest.mark.parametrize("server", ["uvicorn", "hypercorn"])
def test_requests_oauthlib_fetches_a_token_and_posts(start_endpoint: object, server: str) -> None:
    sink: Endpoint = start_endpoint(server=server)  # type: ignore[operator]
    info = sink.info
    session = OAuth2Session(client=BackendApplicationClient(client_id=info.client_id))
    session.trust_env = False
    token = session.fetch_token(
        token_url=info.token_url,
        client_id=info.client_id,
        client_secret=info.client_secret,
        verify=info.ca_file,
    )
    assert token["token_type"] == "Bearer"
    body = notification("selfie-uploaded")
    response = session.post(info.url, json=body, verify=info.ca_file, timeout=10)
    assert response.status_code == 200
    assert sink.recorder.query(accepted=True)[-1]["event_id"] == body["event_id"]


def _curl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["curl", "--silent", "--show-error", *args], capture_output=True, text=True, timeout=30
    )


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
@pytest.mark.parametrize("server,http_version", [("uvicorn", "1.1"), ("hypercorn", "2")])
def test_curl_token_and_post(start_endpoint: object, server: str, http_version: str) -> None:
    sink: Endpoint = start_endpoint(server=server)  # type: ignore[operator]
    info = sink.info
    assert info.ca_file is not None
    token_result = _curl(
        "--cacert",
        info.ca_file,
        "--user",
        f"{info.client_id}:{info.client_secret}",
        "--data",
        "grant_type=client_credentials",
        info.token_url,
    )
    token = json.loads(token_result.stdout)["access_token"]
    body = notification("deleted")
    post = _curl(
        "--http2",
        "--cacert",
        info.ca_file,
        "--write-out",
        "\n%{http_code} %{http_version}",
        "-H",
        f"Authorization: Bearer {token}",
        "-H",
        "Content-Type: application/json",
        "--data",
        json.dumps(body),
        info.url,
    )
    status_line = post.stdout.strip().splitlines()[-1]
    assert status_line == f"200 {http_version}", post.stdout + post.stderr
    record = sink.recorder.query(accepted=True)[-1]
    assert record["event_id"] == body["event_id"] and record["http_version"] == http_version


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_without_the_ca_is_refused_by_tls(client: KitClient) -> None:
    result = subprocess.run(
        ["curl", "--silent", client.info.token_url], capture_output=True, timeout=30
    )
    assert (
        result.returncode == 60
    )  # peer certificate cannot be authenticated with known CA certificates
