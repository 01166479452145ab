"""The sender's client authentication against the kit's own token endpoint, which decodes Basic
credentials as RFC 6749 section 2.3.1 says (form-encoded, then base64)."""

from __future__ import annotations

from typing import Any

import pytest

from webhook_kit.delivery import transport
from webhook_kit.endpoint.service import Endpoint
from webhook_kit.oauth.client import OAuthClient, OAuthSettings
from webhook_kit.serving.loop import run
from webhook_kit.tls import client_context


@pytest.mark.slow
@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
@pytest.mark.parametrize("secret", ["plain-secret-123", "a+b%2Bc:d e/f=g&h", "ünï-cødé"])
def test_any_secret_authenticates(start_endpoint: Any, method: str, secret: str) -> None:
    sink: Endpoint = start_endpoint(client_id="client:with+odd id", client_secret=secret)
    info = sink.info
    settings = OAuthSettings(info.token_url, info.client_id, secret, auth_method=method)  # type: ignore[arg-type]

    async def fetch() -> str:
        async with transport.make_session(client_context(sink.files.ca_file)) as session:
            return await OAuthClient(settings, session).token()

    assert run(fetch()).count(".") == 2  # a JWT from the kit's issuer
