"""certify's token checks against panva's oidc-provider (OpenID-certified), one client per
authentication method: certify gets a token with each, as the sender does, and the method's
wrong credential (a wrong secret, another signing key, another certificate) gets none. Skipped
with the reason without Node.js; mandatory with WEBHOOK_KIT_REQUIRE_INTEROP=1."""

from __future__ import annotations

from typing import Any

import pytest

from tests.interop.oidc_provider.clients import Pki, credentials
from tests.interop.oidc_provider.kit import failure
from tests.interop.oidc_provider.stack import RunningProvider
from webhook_kit.certify.checks import oauth_token
from webhook_kit.certify.context import Context
from webhook_kit.certify.model import CertifySettings, CheckResult
from webhook_kit.delivery import transport
from webhook_kit.oauth.client import OAuthSettings
from webhook_kit.serving.loop import run
from webhook_kit.tls import client_context

pytestmark = pytest.mark.slow
pytest_plugins = ["tests.interop.oidc_provider.fixtures"]

METHODS = [
    "client_secret_basic",
    "client_secret_post",
    "private_key_jwt",
    "tls_client_auth",
    "self_signed_tls_client_auth",
]


def token_checks(pki: Pki, settings: CertifySettings) -> tuple[list[CheckResult], Context]:
    async def main() -> tuple[list[CheckResult], Context]:
        async with transport.make_session(client_context(pki.server.ca)) as session:
            ctx = Context(settings=settings, session=session)
            return await oauth_token.run(ctx), ctx

    result: tuple[list[CheckResult], Context] = run(main())
    return result


@pytest.mark.parametrize("method", METHODS)
def test_certify_gets_a_token_with_each_method(
    pki: Pki, provider: RunningProvider, method: str
) -> None:
    oauth = OAuthSettings(provider.token_url, credentials=credentials(pki, method))
    settings = CertifySettings("https://127.0.0.1:9/webhook", oauth, ca_file=pki.server.ca)
    results, ctx = token_checks(pki, settings)
    verdicts = {r.id: (r.verdict, r.detail) for r in results}
    assert {i: v for i, (v, _) in verdicts.items()} == {
        "oauth.token_url": "pass",
        "oauth.token": "pass",
        "oauth.wrong_secret": "pass",
    }, f"{verdicts}\n{failure(provider)}"
    assert f"({method}) got a JWT" in verdicts["oauth.token"][1]
    # Refused for the credential itself, not for something unrelated (a broken connection).
    assert "(invalid_client)" in verdicts["oauth.wrong_secret"][1]
    assert ctx.token is not None and ctx.oauth_client is not None
    assert ctx.oauth_client.token_scheme == "Bearer"


def test_certify_gets_a_dpop_bound_token(pki: Pki, provider: RunningProvider) -> None:
    options: Any = {"dpop": "ES256"}
    oauth = OAuthSettings(
        provider.token_url, credentials=credentials(pki, "private_key_jwt"), **options
    )
    settings = CertifySettings("https://127.0.0.1:9/webhook", oauth, ca_file=pki.server.ca)
    results, ctx = token_checks(pki, settings)
    assert [r.verdict for r in results] == ["pass"] * 3, failure(provider)
    assert ctx.oauth_client is not None and ctx.oauth_client.token_scheme == "DPoP"
