"""Deliveries with sender-constrained tokens from oidc-provider to a receiver that checks them
with panva's jose (``server.mjs``'s ``/webhook``): the kit's transport presents a DPoP-bound
token with a proof per POST (``ath``, the receiver's nonce) and an mTLS-bound token through the
client's own certificate."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

from tests.interop.oidc_provider.clients import Pki, credentials, registrations
from tests.interop.oidc_provider.kit import client_for, failure, within_session
from tests.interop.oidc_provider.stack import OidcProviderStack, RunningProvider
from webhook_kit.contract import notifications
from webhook_kit.delivery import transport
from webhook_kit.delivery.dispatcher import Dispatcher, DispatcherSettings, Target
from webhook_kit.delivery.outcome import AttemptResult
from webhook_kit.oauth.client import OAuthClient, OAuthSettings
from webhook_kit.serving.loop import run
from webhook_kit.storage.url import open_storage

pytestmark = pytest.mark.slow
#: pki, stack, provider, nonce_provider.
pytest_plugins = ["tests.interop.oidc_provider.fixtures"]

BODY = transport.encode({"event_id": "e-1", "status": "on-course"})


async def stats(session: aiohttp.ClientSession, provider: RunningProvider) -> dict[str, int]:
    async with session.get(provider.stats_url) as response:
        value: dict[str, int] = await response.json()
        return value


async def deliver(
    session: aiohttp.ClientSession, client: OAuthClient, provider: RunningProvider, n: int = 1
) -> list[AttemptResult]:
    return [
        await transport.deliver(
            session, client, provider.resource, BODY, event_id=f"e-{i}", timeout=10
        )
        for i in range(n)
    ]


@pytest.mark.parametrize(
    ("method", "options"),
    [
        ("private_key_jwt", {}),
        ("private_key_jwt", {"dpop": "ES256"}),
        ("client_secret_basic", {"dpop": "PS256"}),
        ("tls_client_auth", {}),
        ("self_signed_tls_client_auth", {}),
        ("secret_and_certificate", {}),
    ],
)
def test_bound_and_bearer_tokens_are_delivered(
    pki: Pki, provider: RunningProvider, method: str, options: dict[str, Any]
) -> None:
    async def body(session: aiohttp.ClientSession) -> tuple[list[AttemptResult], dict[str, int]]:
        before = await stats(session, provider)
        client = client_for(pki, provider, session, method=method, **options)
        results = await deliver(session, client, provider, 3)
        after = await stats(session, provider)
        return results, {k: after[k] - before[k] for k in after}

    results, delta = within_session(pki, body)
    assert [r.outcome for r in results] == ["success"] * 3, (results, failure(provider))
    assert not any(r.token_refreshed for r in results)
    assert delta == {"accepted": 3, "nonce_challenges": 0, "refused": 0}


def test_receiver_nonce_is_fetched_once_then_followed(
    pki: Pki, nonce_provider: RunningProvider
) -> None:
    """The receiver refuses the first proof with use_dpop_nonce; the retry carries its nonce, and
    each success hands out the next one (RFC 9449 section 8.2), which the next POST uses."""

    async def body(session: aiohttp.ClientSession) -> tuple[list[AttemptResult], dict[str, int]]:
        client = client_for(pki, nonce_provider, session, method="private_key_jwt", dpop="ES256")
        results = await deliver(session, client, nonce_provider, 3)
        return results, await stats(session, nonce_provider)

    results, counts = within_session(pki, body)
    assert [r.outcome for r in results] == ["success"] * 3, (results, failure(nonce_provider))
    assert counts == {"accepted": 3, "nonce_challenges": 1, "refused": 1}


def test_a_receiver_that_never_takes_a_nonce_costs_four_posts_at_most(
    pki: Pki, stack: OidcProviderStack
) -> None:
    """Each POST answered once with the nonce it brought, and one token refresh: then the
    attempt fails as unauthorized, naming the receiver's error, instead of looping."""
    clients, secrets = registrations(pki)
    with stack.start(clients, secrets=secrets, resource_nonce="always") as hostile:

        async def body(session: aiohttp.ClientSession) -> tuple[AttemptResult, OAuthClient, Any]:
            client = client_for(pki, hostile, session, method="private_key_jwt", dpop="ES256")
            [result] = await deliver(session, client, hostile)
            return result, client, await stats(session, hostile)

        result, client, counts = within_session(pki, body)
    assert result.outcome == "unauthorized"
    assert result.token_refreshed and client.fetches == 2
    assert "(use_dpop_nonce)" in result.reason
    assert counts == {"accepted": 0, "nonce_challenges": 4, "refused": 4}


def test_the_receiver_really_checks_the_binding(pki: Pki, provider: RunningProvider) -> None:
    """Without these refusals the deliveries above would prove nothing: a DPoP-bound token sent
    as a bare bearer token, and an mTLS-bound token sent without its certificate, are refused."""

    async def body(session: aiohttp.ClientSession) -> list[AttemptResult]:
        dpop = client_for(pki, provider, session, method="private_key_jwt", dpop="ES256")
        mtls = client_for(pki, provider, session, method="tls_client_auth")
        bare = await transport.post_once(
            session, provider.resource, BODY, token=await dpop.token(), event_id="x", timeout=10
        )
        no_cert = await transport.post_once(
            session, provider.resource, BODY, token=await mtls.token(), event_id="y", timeout=10
        )
        with_cert = await transport.post_once(
            session,
            provider.resource,
            BODY,
            token=await mtls.token(),
            event_id="z",
            timeout=10,
            ssl_context=mtls.tls_context,
        )
        return [bare, no_cert, with_cert]

    bare, no_cert, with_cert = within_session(pki, body)
    assert (bare.outcome, no_cert.outcome) == ("unauthorized", "unauthorized")
    assert with_cert.outcome == "success"


def test_a_refused_proof_names_the_receivers_reason(pki: Pki, provider: RunningProvider) -> None:
    """A proof for another URL (htu) is refused, and the attempt's reason carries the receiver's
    error code (invalid_dpop_proof), not a guess."""

    async def body(session: aiohttp.ClientSession) -> AttemptResult:
        client = client_for(pki, provider, session, method="private_key_jwt", dpop="ES256")
        token = await client.token()
        headers = client.resource_headers(token, "POST", provider.issuer + "/elsewhere")
        return await transport.post_once(
            session,
            provider.resource,
            BODY,
            token=token,
            event_id="h",
            timeout=10,
            extra_headers=headers,
        )

    result = within_session(pki, body)
    assert result.outcome == "unauthorized"
    assert result.reason == "401 token refused by the receiver (invalid_dpop_proof)"


def test_two_certificates_on_one_session_never_share_a_connection(
    pki: Pki, provider: RunningProvider
) -> None:
    """Interleaved deliveries of two clients with different certificates to the same receiver
    over one session: each token is bound to its own certificate, so a pooled connection that
    carried the other client's certificate would be refused."""

    async def body(session: aiohttp.ClientSession) -> list[AttemptResult]:
        a = client_for(pki, provider, session, method="tls_client_auth")
        b = client_for(pki, provider, session, method="self_signed_tls_client_auth")
        rounds = [
            asyncio.gather(deliver(session, a, provider, 3), deliver(session, b, provider, 3))
            for _ in range(3)
        ]
        return [r for pair in [await r for r in rounds] for batch in pair for r in batch]

    results = within_session(pki, body)
    assert [r.outcome for r in results] == ["success"] * 18, results


def test_each_client_has_its_own_tls_context(pki: Pki, provider: RunningProvider) -> None:
    async def body(session: aiohttp.ClientSession) -> list[Any]:
        a = client_for(pki, provider, session, method="tls_client_auth")
        b = client_for(pki, provider, session, method="tls_client_auth")
        c = client_for(pki, provider, session, method="private_key_jwt")
        return [a.tls_context, b.tls_context, c.tls_context]

    a, b, c = within_session(pki, body)
    assert a is not None and b is not None and a is not b
    assert c is None  # the session's own context


@pytest.mark.parametrize("method", ["client_secret_post", "private_key_jwt"])
def test_the_dispatcher_delivers_with_a_dpop_bound_token(
    pki: Pki, nonce_provider: RunningProvider, method: str
) -> None:
    """The reference engine, end to end: stored events, each delivered with a DPoP proof; both
    the token endpoint and the receiver demand their nonce."""
    settings = OAuthSettings(
        nonce_provider.token_url, credentials=credentials(pki, method), dpop="ES256"
    )
    target = Target(nonce_provider.resource, settings)

    async def main() -> tuple[dict[str, int], int]:
        storage = await open_storage(":memory:")
        try:
            dispatcher = Dispatcher(
                storage.events, DispatcherSettings(ca_file=pki.server.ca), target=target
            )
            async with dispatcher as d:
                for body in list(notifications.lifecycle(validation_id=f"v-{method}"))[:3]:
                    await d.enqueue(body)
                assert await d.wait_idle(60)
                fetches = d.oauth.fetches if d.oauth else 0
            return await storage.events.counts(), fetches
        finally:
            await storage.close()

    counts, fetches = run(main())
    assert counts == {"sent": 3}, failure(nonce_provider)
    assert fetches == 1
