"""The sender's token client against panva's oidc-provider (OpenID-certified), one client per
authentication method: a token with each, certificate-bound (``cnf.x5t#S256``) and DPoP-bound
(``cnf.jkt``) tokens checked against the issuer's keys, DPoP nonces, and what a misconfigured
client is told."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import trustme
from aiohttp import web
from joserfc import jws, jwt
from joserfc.jwk import ECKey, KeySet

from tests.interop.oidc_provider.clients import (
    Pki,
    credentials,
    make_pki,
    public_jwk,
    registrations,
)
from tests.interop.oidc_provider.kit import client_for, failure, within_session
from tests.interop.oidc_provider.stack import OidcProviderStack, RunningProvider
from webhook_kit.delivery import transport
from webhook_kit.errors import CertificateError, ConfigError, TokenFetchError
from webhook_kit.oauth import dpop
from webhook_kit.oauth.assertion import ReplayCache, verify_client_assertion
from webhook_kit.oauth.client import (
    OAuthClient,
    OAuthSettings,
    ServerMetadata,
    check_supported,
)
from webhook_kit.oauth.client_auth import ClientCredentials
from webhook_kit.serving.loop import run

pytestmark = pytest.mark.slow
#: pki, stack, provider, nonce_provider.
pytest_plugins = ["tests.interop.oidc_provider.fixtures"]

METHODS = [
    "client_secret_basic",
    "client_secret_post",
    "private_key_jwt",
    "tls_client_auth",
    "self_signed_tls_client_auth",
]


async def claims_of(
    session: aiohttp.ClientSession, provider: RunningProvider, token: str
) -> dict[str, Any]:
    """The access token's claims, verified with the issuer's published keys as a receiver does."""
    async with session.get(provider.jwks_url) as response:
        keys = KeySet.import_key_set(await response.json())
    claims = jwt.decode(token, keys, algorithms=["ES256"]).claims
    assert claims["iss"] == provider.issuer
    assert claims["aud"] == provider.resource
    return dict(claims)


@pytest.mark.parametrize("method", METHODS)
def test_each_method_gets_a_token(pki: Pki, provider: RunningProvider, method: str) -> None:
    async def body(session: aiohttp.ClientSession) -> tuple[OAuthClient, dict[str, Any]]:
        client = client_for(pki, provider, session, method=method)
        token = await client.token()
        return client, await claims_of(session, provider, token)

    try:
        client, claims = within_session(pki, body)
    except TokenFetchError as exc:
        pytest.fail(f"{method}: {exc} ({exc.description})\n{failure(provider)}")
    assert claims["client_id"] == method
    assert (client.token_scheme, client.fetches) == ("Bearer", 1)
    cnf = claims.get("cnf", {})
    if method == "tls_client_auth":
        assert cnf == {"x5t#S256": pki.client_thumbprint}
    elif method == "self_signed_tls_client_auth":
        assert cnf == {"x5t#S256": pki.self_signed_thumbprint}
    else:
        assert cnf == {}


@pytest.mark.parametrize("algorithm", ["RS256", "PS256", "ES256"])
@pytest.mark.parametrize("audience", ["token_endpoint", "issuer"])
def test_private_key_jwt_algorithms_and_audiences(
    pki: Pki, provider: RunningProvider, algorithm: str, audience: str
) -> None:
    """oidc-provider takes the token endpoint or the issuer as the assertion's aud (FAPI 2.0
    prefers the issuer); the issuer comes from the metadata when not given."""

    async def body(session: aiohttp.ClientSession) -> dict[str, Any]:
        client = client_for(
            pki,
            provider,
            session,
            method="private_key_jwt",
            algorithm=algorithm,
            assertion_audience=audience,
        )
        return await claims_of(session, provider, await client.token())

    assert within_session(pki, body)["client_id"] == "private_key_jwt", failure(provider)


def test_each_token_request_signs_a_fresh_assertion(pki: Pki, provider: RunningProvider) -> None:
    """oidc-provider refuses a replayed assertion jti: two fetches pass only if each signs anew."""

    async def body(session: aiohttp.ClientSession) -> int:
        client = client_for(pki, provider, session, method="private_key_jwt")
        await client.token()
        client.invalidate()
        await client.token()
        return client.fetches

    assert within_session(pki, body) == 2, failure(provider)


@pytest.mark.parametrize("method", ["private_key_jwt", "client_secret_basic"])
def test_dpop_bound_token_names_the_clients_key(
    pki: Pki, provider: RunningProvider, method: str
) -> None:
    async def body(session: aiohttp.ClientSession) -> tuple[OAuthClient, dict[str, Any]]:
        client = client_for(pki, provider, session, method=method, dpop="ES256")
        return client, await claims_of(session, provider, await client.token())

    client, claims = within_session(pki, body)
    assert client.token_scheme == "DPoP"
    assert client.dpop_key is not None
    assert claims["cnf"] == {"jkt": client.dpop_key.thumbprint}


def test_a_secret_client_with_a_certificate_gets_a_certificate_bound_token(
    pki: Pki, provider: RunningProvider
) -> None:
    """A certificate is not only for the TLS methods: with a secret, it binds the token."""

    async def body(session: aiohttp.ClientSession) -> dict[str, Any]:
        client = client_for(pki, provider, session, method="secret_and_certificate")
        return await claims_of(session, provider, await client.token())

    claims = within_session(pki, body)
    assert claims["cnf"] == {"x5t#S256": pki.client_thumbprint}


def test_dpop_and_certificate_binding_together_is_refused_with_the_reason(
    pki: Pki, provider: RunningProvider
) -> None:
    """oidc-provider binds a token to one proof of possession only; its reason reaches the
    user (printable, in ``description``)."""

    async def body(session: aiohttp.ClientSession) -> Any:
        return await client_for(
            pki, provider, session, method="tls_client_auth", dpop="ES256"
        ).token()

    with pytest.raises(TokenFetchError) as caught:
        within_session(pki, body)
    assert caught.value.error == "invalid_request"
    assert "proof-of-posession mechanisms" in (caught.value.description or "")


def test_dpop_keys_are_per_client(pki: Pki, provider: RunningProvider) -> None:
    async def body(session: aiohttp.ClientSession) -> list[str]:
        clients = [
            client_for(pki, provider, session, method="private_key_jwt", dpop="ES256")
            for _ in range(2)
        ]
        return [
            (await claims_of(session, provider, await c.token()))["cnf"]["jkt"] for c in clients
        ]

    first, second = within_session(pki, body)
    assert first != second


def test_a_client_registered_for_dpop_gets_nothing_without_it(
    pki: Pki, provider: RunningProvider
) -> None:
    async def body(session: aiohttp.ClientSession) -> Any:
        return await client_for(pki, provider, session, method="dpop_bound").token()

    with pytest.raises(TokenFetchError) as caught:
        within_session(pki, body)
    assert caught.value.error == "invalid_grant"


@pytest.mark.parametrize("method", ["private_key_jwt", "client_secret_post"])
def test_token_endpoint_nonce_is_fetched_and_used(
    pki: Pki, nonce_provider: RunningProvider, method: str
) -> None:
    """RFC 9449 section 8: the first request is refused with use_dpop_nonce and a DPoP-Nonce;
    the client retries once with it (a fresh assertion too, as the first one's jti is spent)."""

    async def body(session: aiohttp.ClientSession) -> tuple[OAuthClient, dict[str, Any], str]:
        client = client_for(pki, nonce_provider, session, method=method, dpop="ES256")
        claims = await claims_of(session, nonce_provider, await client.token())
        return client, claims, client.proof("POST", nonce_provider.token_url)

    try:
        client, claims, next_proof = within_session(pki, body)
    except TokenFetchError as exc:
        pytest.fail(f"{exc} ({exc.description})\n{failure(nonce_provider)}")
    assert client.dpop_key is not None
    assert claims["cnf"]["jkt"] == client.dpop_key.thumbprint
    assert client.fetches == 1
    # The next proof carries the server's nonce.
    assert json.loads(jws.extract_compact(next_proof.encode()).payload)["nonce"]


def test_a_second_fetch_reuses_the_nonce(pki: Pki, nonce_provider: RunningProvider) -> None:
    async def body(session: aiohttp.ClientSession) -> int:
        client = client_for(pki, nonce_provider, session, method="private_key_jwt", dpop="ES256")
        await client.token()
        client.invalidate()
        await client.token()
        return client.fetches

    assert within_session(pki, body) == 2, failure(nonce_provider)


# -- what a misconfigured client is told ---------------------------------------------------------


def test_method_the_endpoint_does_not_advertise(stack: OidcProviderStack, pki: Pki) -> None:
    """The metadata's token_endpoint_auth_methods_supported is read before any token request."""
    clients, secrets = registrations(pki)
    with stack.start(
        clients, secrets=secrets, auth_methods=["client_secret_basic", "client_secret_post"]
    ) as limited:

        async def body(session: aiohttp.ClientSession) -> OAuthClient:
            client = client_for(pki, limited, session, method="tls_client_auth")
            with pytest.raises(TokenFetchError) as caught:
                await client.token()
            assert "does not advertise tls_client_auth" in str(caught.value)
            assert "client_secret_basic, client_secret_post" in str(caught.value)
            return client

        assert within_session(pki, body).fetches == 0


def test_method_check_with_an_explicit_issuer(pki: Pki, provider: RunningProvider) -> None:
    async def body(session: aiohttp.ClientSession) -> ServerMetadata | None:
        client = client_for(
            pki, provider, session, method="client_secret_basic", issuer=provider.issuer
        )
        await client.token()
        return await client.metadata()

    metadata = within_session(pki, body)
    assert metadata is not None
    assert metadata.token_endpoint == provider.token_url
    assert set(METHODS) <= set(metadata.auth_methods or ())


@pytest.mark.parametrize("method", ["client_secret_post", "private_key_jwt"])
def test_the_token_url_from_the_issuers_metadata(
    pki: Pki, provider: RunningProvider, method: str
) -> None:
    """With only the issuer, the token URL comes from its metadata (RFC 8414, then OpenID
    discovery, which is what oidc-provider publishes)."""

    async def body(session: aiohttp.ClientSession) -> tuple[OAuthClient, dict[str, Any]]:
        settings = OAuthSettings(
            "", credentials=credentials(pki, method), issuer=provider.issuer, dpop="ES256"
        )
        client = OAuthClient(settings, session)
        return client, await claims_of(session, provider, await client.token())

    client, claims = within_session(pki, body)
    assert client.token_endpoint == provider.token_url
    assert claims["client_id"] == method
    assert client.dpop_key is not None and claims["cnf"] == {"jkt": client.dpop_key.thumbprint}


def test_no_token_url_and_no_metadata_says_so(pki: Pki, provider: RunningProvider) -> None:
    async def body(session: aiohttp.ClientSession) -> None:
        issuer = provider.issuer + "/elsewhere"  # publishes no metadata
        settings = OAuthSettings("", "c", "s3cret", issuer=issuer)
        with pytest.raises(TokenFetchError, match="no token URL"):
            await OAuthClient(settings, session).token()

    within_session(pki, body)


def test_check_supported_names_the_methods() -> None:
    metadata = ServerMetadata("https://as.example", None, ("client_secret_basic",), ("ES256",))
    settings = OAuthSettings("https://as.example/token", "c", "s3cret")
    check_supported(settings, metadata)
    with pytest.raises(ConfigError, match="does not advertise client_secret_post"):
        check_supported(
            OAuthSettings("https://as.example/token", "c", "s", auth_method="client_secret_post"),
            metadata,
        )
    with pytest.raises(ConfigError, match="does not take PS256 proofs"):
        check_supported(OAuthSettings("https://x/t", "c", "s", dpop="PS256"), metadata)


def test_unregistered_key_is_refused(pki: Pki, provider: RunningProvider) -> None:
    stranger = make_pki(Path(str(pki.server.cert.parent) + "-stranger"))

    async def body(session: aiohttp.ClientSession) -> Any:
        settings = OAuthSettings(
            provider.token_url, credentials=credentials(stranger, "private_key_jwt")
        )
        return await OAuthClient(settings, session).token()

    with pytest.raises(TokenFetchError) as caught:
        within_session(pki, body)
    assert caught.value.error == "invalid_client"


def test_wrong_secret_never_shows(pki: Pki, provider: RunningProvider) -> None:
    wrong = pki.secret + "-wrong"
    creds = ClientCredentials("client_secret_basic", secret=wrong)

    async def body(session: aiohttp.ClientSession) -> Any:
        return await OAuthClient(
            OAuthSettings(provider.token_url, credentials=creds), session
        ).token()

    with pytest.raises(TokenFetchError) as caught:
        within_session(pki, body)
    assert caught.value.error == "invalid_client"
    assert wrong not in f"{caught.value} {caught.value.description} {creds!r}"


def test_settings_never_show_a_secret_or_a_key(pki: Pki) -> None:
    for method in ("client_secret_post", "private_key_jwt"):
        settings = OAuthSettings("https://as.example/token", credentials=credentials(pki, method))
        shown = repr(settings)
        assert pki.secret not in shown
        assert "PRIVATE KEY" not in shown
        assert set(settings.secrets) == {pki.secret} if "secret" in method else {pki.ec_pem}


def test_legacy_settings_still_read_flat(pki: Pki) -> None:
    settings = OAuthSettings(
        "https://as.example/token", "c", "s3cret", auth_method="client_secret_post"
    )
    assert settings.credentials is None
    mirrored = OAuthSettings(
        "https://as.example/token", credentials=credentials(pki, "client_secret_post")
    )
    assert (mirrored.client_id, mirrored.client_secret, mirrored.auth_method) == (
        "client_secret_post",
        pki.secret,
        "client_secret_post",
    )


def test_changing_the_credentials_of_settings(pki: Pki) -> None:
    settings = OAuthSettings("https://as/t", credentials=credentials(pki, "client_secret_post"))
    wrong = settings.with_credentials(secret="wrong-secret")
    assert (wrong.client_secret, wrong.credentials and wrong.credentials.secret) == (
        "wrong-secret",
        "wrong-secret",
    )
    assert wrong.with_credentials(method="client_secret_basic").auth_method == "client_secret_basic"
    with pytest.raises(ConfigError, match="use OAuthSettings.with_credentials"):
        dataclasses.replace(settings, client_secret="wrong-secret")
    legacy = OAuthSettings("https://as/t", "c", "s3cret")
    assert legacy.with_credentials(secret="other").client_secret == "other"


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (
            lambda pki: OAuthSettings("https://as/t", "c", auth_method="private_key_jwt"),
            "credentials: private_key_jwt needs ClientCredentials",
        ),
        (
            lambda pki: OAuthSettings(
                "https://as/t", "other", credentials=credentials(pki, "private_key_jwt")
            ),
            "client_id: given apart from credentials",
        ),
        (
            lambda pki: OAuthSettings("https://as/t", "c", "s", dpop="HS256"),  # type: ignore[arg-type]
            "dpop: unsupported",
        ),
        (
            lambda pki: ClientCredentials(
                "c", "private_key_jwt", private_key="-----BEGIN PUBLIC KEY-----\nAAAA\n"
            ),
            "private_key: this is a public key",
        ),
        (
            lambda pki: ClientCredentials(
                "c", "private_key_jwt", private_key=pki.rsa_pem, algorithm="ES256"
            ),
            "ES256 needs an EC P-256 private key",
        ),
        (
            lambda pki: ClientCredentials(
                "c",
                "private_key_jwt",
                private_key=pki.ec_pem,
                algorithm="HS256",  # type: ignore[arg-type]
            ),
            "unsupported algorithm 'HS256'",
        ),
        (lambda pki: ClientCredentials("c", "tls_client_auth"), "cert_file: tls_client_auth needs"),
    ],
)
def test_bad_settings_are_config_errors(
    pki: Pki, build: Callable[[Pki], object], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        build(pki)


def test_certificate_that_does_not_match_its_key(pki: Pki, provider: RunningProvider) -> None:
    creds = ClientCredentials(
        "tls_client_auth",
        "tls_client_auth",
        cert_file=pki.client_cert,
        key_file=pki.self_signed_key,
    )

    async def body(session: aiohttp.ClientSession) -> None:
        client = OAuthClient(OAuthSettings(provider.token_url, credentials=creds), session)
        with pytest.raises(CertificateError, match="does not match the key"):
            client.prepare()
        with pytest.raises(TokenFetchError, match="does not match the key"):
            await client.token()
        assert client.fetches == 0

    within_session(pki, body)


def test_expired_client_certificate(pki: Pki, tmp_path: Path) -> None:
    from tests.interop.oidc_provider.clients import self_signed

    now = dt.datetime.now(dt.UTC)
    cert, key, _ = self_signed(
        tmp_path,
        "old",
        not_before=now - dt.timedelta(days=30),
        not_after=now - dt.timedelta(days=1),
    )
    creds = ClientCredentials("c", "self_signed_tls_client_auth", cert_file=cert, key_file=key)

    async def body(session: aiohttp.ClientSession) -> None:
        client = OAuthClient(OAuthSettings("https://127.0.0.1:9/token", credentials=creds), session)
        with pytest.raises(CertificateError, match="expired"):
            client.prepare()

    within_session(pki, body)


# -- a scripted token endpoint: what the client does with answers oidc-provider never gives ------


class ScriptedServer:
    """An HTTPS token endpoint on loopback that answers from a script and records requests."""

    def __init__(self, ca: trustme.CA) -> None:
        self.ca = ca
        self.answers: list[tuple[int, dict[str, Any], dict[str, str]]] = []
        self.requests: list[tuple[dict[str, str], dict[str, str]]] = []
        self.paths: list[str] = []
        self.metadata: dict[str, Any] | None = None
        self.base = ""

    @property
    def token_url(self) -> str:
        return self.base + "/token"

    async def token(self, request: web.Request) -> web.Response:
        form = {k: str(v) for k, v in (await request.post()).items()}
        self.requests.append((dict(request.headers), form))
        self.paths.append(request.path)
        status, body, headers = self.answers.pop(0)
        return web.json_response(body, status=status, headers=headers)

    async def discovery(self, request: web.Request) -> web.Response:
        if self.metadata is None:
            return web.json_response({}, status=404)
        return web.json_response(self.metadata)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[ScriptedServer]:
        app = web.Application()
        app.router.add_post("/token", self.token)
        app.router.add_post("/mtls/token", self.token)
        app.router.add_post("/hook", self.token)  # a receiver, from the same script
        app.router.add_get("/.well-known/oauth-authorization-server", self.discovery)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.ca.issue_cert("127.0.0.1").configure_cert(context)
        sock = socket.create_server(("127.0.0.1", 0))
        await web.SockSite(runner, sock, ssl_context=context).start()
        self.base = f"https://127.0.0.1:{sock.getsockname()[1]}"
        try:
            yield self
        finally:
            await runner.cleanup()


def scripted(body: Callable[[ScriptedServer, aiohttp.ClientSession], Awaitable[Any]]) -> Any:
    ca = trustme.CA()

    async def main() -> Any:
        context = ssl.create_default_context()
        ca.configure_trust(context)
        async with ScriptedServer(ca).running() as server:
            async with transport.make_session(context) as session:
                return await body(server, session)

    return run(main())


def proof_claims(headers: dict[str, str]) -> dict[str, Any]:
    claims: dict[str, Any] = json.loads(jws.extract_compact(headers["DPoP"].encode()).payload)
    return claims


TOKEN = {"access_token": "opaque-token-value", "token_type": "DPoP", "expires_in": 300}
NONCE_PLEASE = {"error": "use_dpop_nonce", "error_description": "nonce required"}


def test_a_nonce_refusal_is_retried_once_only() -> None:
    async def body(server: ScriptedServer, session: aiohttp.ClientSession) -> None:
        server.answers = [
            (400, NONCE_PLEASE, {"DPoP-Nonce": "n-1"}),
            (400, NONCE_PLEASE, {"DPoP-Nonce": "n-2"}),
        ]
        client = OAuthClient(OAuthSettings(server.token_url, "c", "s3cret", dpop="ES256"), session)
        with pytest.raises(TokenFetchError) as caught:
            await client.token()
        assert caught.value.error == "use_dpop_nonce"
        assert [proof_claims(h).get("nonce") for h, _ in server.requests] == [None, "n-1"]

    scripted(body)


def test_a_nonce_that_is_not_a_nonce_is_not_used() -> None:
    async def body(server: ScriptedServer, session: aiohttp.ClientSession) -> None:
        server.answers = [(400, NONCE_PLEASE, {"DPoP-Nonce": "x" * 600})]
        client = OAuthClient(OAuthSettings(server.token_url, "c", "s3cret", dpop="ES256"), session)
        with pytest.raises(TokenFetchError):
            await client.token()
        assert len(server.requests) == 1
        assert "nonce" not in proof_claims({"DPoP": client.proof("POST", server.token_url)})

    scripted(body)


def test_a_dpop_token_nobody_asked_for_is_refused() -> None:
    async def body(server: ScriptedServer, session: aiohttp.ClientSession) -> None:
        server.answers = [(200, TOKEN, {})]
        client = OAuthClient(OAuthSettings(server.token_url, "c", "s3cret"), session)
        with pytest.raises(TokenFetchError, match="token_type 'dpop' is not Bearer"):
            await client.token()
        assert "DPoP" not in server.requests[0][0]

    scripted(body)


def test_a_server_without_dpop_gets_a_bearer_client() -> None:
    """RFC 9449 section 5: a server that ignores the proof answers Bearer; the token is then sent
    as a bearer token, without proofs."""

    async def body(server: ScriptedServer, session: aiohttp.ClientSession) -> dict[str, str]:
        server.answers = [(200, {**TOKEN, "token_type": "Bearer"}, {})]
        client = OAuthClient(OAuthSettings(server.token_url, "c", "s3cret", dpop="ES256"), session)
        token = await client.token()
        assert client.token_scheme == "Bearer"
        return client.resource_headers(token, "POST", "https://127.0.0.1/webhook")

    assert scripted(body) == {"Authorization": "Bearer opaque-token-value"}


def test_a_dpop_token_gets_a_proof_with_ath_per_request() -> None:
    async def body(server: ScriptedServer, session: aiohttp.ClientSession) -> list[dict[str, Any]]:
        server.answers = [(200, TOKEN, {"DPoP-Nonce": "as-nonce"})]
        client = OAuthClient(OAuthSettings(server.token_url, "c", "s3cret", dpop="ES256"), session)
        token = await client.token()
        client.note_nonce("https://127.0.0.1:8443/hook", "rs-nonce")
        first = client.resource_headers(token, "POST", "https://127.0.0.1:8443/hook?x=1")
        second = client.resource_headers(token, "POST", "https://127.0.0.1:8443/hook")
        assert first["Authorization"] == second["Authorization"] == f"DPoP {token}"
        return [proof_claims(first), proof_claims(second)]

    first, second = scripted(body)
    assert first["jti"] != second["jti"]
    assert first["htu"] == "https://127.0.0.1:8443/hook"  # no query (RFC 9449 section 4.2)
    assert first["htm"] == "POST"
    assert first["ath"] == dpop.access_token_hash("opaque-token-value")
    assert first["nonce"] == "rs-nonce"  # the receiver's nonce, not the token endpoint's


@pytest.mark.parametrize("audience", ["token_endpoint", "issuer"])
def test_the_assertion_names_the_audience_asked_for(pki: Pki, audience: str) -> None:
    """The issuer comes from the metadata (FAPI 2.0: aud = the issuer); each assertion is fresh
    and short-lived, and verifies with the client's public key."""

    async def body(server: ScriptedServer, session: aiohttp.ClientSession) -> list[Any]:
        server.metadata = {
            "issuer": server.base,
            "token_endpoint": server.token_url,
            "token_endpoint_auth_methods_supported": ["private_key_jwt"],
        }
        server.answers = [(200, {**TOKEN, "token_type": "Bearer"}, {})] * 2
        creds = credentials(pki, "private_key_jwt", assertion_audience=audience)
        client = OAuthClient(OAuthSettings(server.token_url, credentials=creds), session)
        await client.token()
        client.invalidate()
        await client.token()
        expected = server.base if audience == "issuer" else server.token_url
        replay = ReplayCache()
        return [
            verify_client_assertion(
                form["client_assertion"],
                client_id="private_key_jwt",
                keys=ECKey.import_key(public_jwk(pki.ec_pem, kid="ec-1", algorithm="ES256")),
                audiences=[expected],
                replay=replay,
            )
            for _, form in server.requests
        ]

    first, second = scripted(body)
    assert first["jti"] != second["jti"]
    assert first["exp"] - first["iat"] <= 60


@pytest.mark.parametrize("method", ["tls_client_auth", "client_secret_basic"])
def test_a_certificate_goes_to_the_mtls_alias(pki: Pki, method: str, tmp_path: Path) -> None:
    """RFC 8705 section 5: a client presenting a certificate posts to the metadata's
    mtls_endpoint_aliases.token_endpoint (its DPoP htu too); the assertion's aud and everyone
    else keep the token endpoint."""

    async def body(server: ScriptedServer, session: aiohttp.ClientSession) -> list[Any]:
        server.metadata = {
            "issuer": server.base,
            "token_endpoint": server.token_url,
            "mtls_endpoint_aliases": {"token_endpoint": server.base + "/mtls/token"},
        }
        server.answers = [(200, TOKEN, {})]
        creds = credentials(pki, method)
        if method == "client_secret_basic":  # a secret, and a certificate to bind the token
            creds = ClientCredentials(
                method, secret=pki.secret, cert_file=pki.client_cert, key_file=pki.client_key
            )
        settings = OAuthSettings(server.token_url, credentials=creds, dpop="ES256")
        # The client's own TLS context trusts what the session trusts: the server's CA.
        server.ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
        client = OAuthClient(settings, session, ca_file=tmp_path / "ca.pem")
        assert client.tls_context is not None
        await client.token()
        return [server.paths, proof_claims(server.requests[0][0])["htu"], client.token_endpoint]

    paths, htu, token_endpoint = scripted(body)
    assert paths == ["/mtls/token"]
    assert htu.endswith("/mtls/token")
    assert token_endpoint.endswith("/token") and not token_endpoint.endswith("/mtls/token")


def test_without_a_certificate_the_alias_is_not_used(pki: Pki) -> None:
    async def body(server: ScriptedServer, session: aiohttp.ClientSession) -> list[str]:
        server.metadata = {
            "issuer": server.base,
            "token_endpoint": server.token_url,
            "mtls_endpoint_aliases": {"token_endpoint": server.base + "/mtls/token"},
        }
        server.answers = [(200, {**TOKEN, "token_type": "Bearer"}, {})]
        creds = credentials(pki, "private_key_jwt")
        await OAuthClient(OAuthSettings(server.token_url, credentials=creds), session).token()
        return server.paths

    assert scripted(body) == ["/token"]


def test_a_receivers_bad_nonce_is_not_followed() -> None:
    """A receiver's DPoP-Nonce that is not a nonce (a space, here) gets no retry with it; the
    attempt refreshes the token once and reports the receiver's error code."""

    async def body(server: ScriptedServer, session: aiohttp.ClientSession) -> Any:
        challenge = 'DPoP error="use_dpop_nonce", error_description="x"'
        server.answers = [
            (200, TOKEN, {}),
            (401, {}, {"WWW-Authenticate": challenge, "DPoP-Nonce": "not a nonce"}),
            (200, TOKEN, {}),
            (401, {}, {"WWW-Authenticate": 'DPoP error="invalid_token"'}),
        ]
        client = OAuthClient(OAuthSettings(server.token_url, "c", "s3cret", dpop="ES256"), session)
        result = await transport.deliver(
            session, client, server.base + "/hook", b"{}", event_id="e", timeout=10
        )
        requests = zip(server.requests, server.paths, strict=True)
        hook_proofs = [proof_claims(h) for (h, _), path in requests if path == "/hook"]
        return result, server.paths, hook_proofs

    result, paths, proofs = scripted(body)
    assert paths == ["/token", "/hook", "/token", "/hook"]
    assert all("nonce" not in p for p in proofs)
    assert result.outcome == "unauthorized" and result.token_refreshed
    assert result.reason == (
        "401 token refused by the receiver (invalid_token) (after a token refresh)"
    )
