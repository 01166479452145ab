"""The kit's side of the oidc-provider tests: a delivery session that trusts the test CA, and the
kit's client for each registration."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

from tests.interop.oidc_provider.clients import Pki, credentials
from tests.interop.oidc_provider.stack import RunningProvider
from webhook_kit.delivery import transport
from webhook_kit.oauth.client import OAuthClient, OAuthSettings
from webhook_kit.serving.loop import run
from webhook_kit.tls import client_context

Body = Callable[[aiohttp.ClientSession], Awaitable[Any]]


def within_session(pki: Pki, body: Body) -> Any:
    """``body(session)`` on a delivery session that trusts the test CA (and nothing skipped)."""

    async def main() -> Any:
        async with transport.make_session(client_context(pki.server.ca)) as session:
            return await body(session)

    return run(main())


def client_for(
    pki: Pki, provider: RunningProvider, session: aiohttp.ClientSession, **options: Any
) -> OAuthClient:
    """The kit's client for the registration named ``method``; other options for the settings
    (``algorithm`` and ``assertion_audience`` for the credentials)."""
    method = options.pop("method")
    extra = {k: options.pop(k) for k in ("algorithm", "assertion_audience") if k in options}
    settings = OAuthSettings(
        provider.token_url, credentials=credentials(pki, method, **extra), **options
    )
    return OAuthClient(settings, session, ca_file=pki.server.ca)


def failure(provider: RunningProvider) -> str:
    return f"oidc-provider said:\n{provider.log()}"
