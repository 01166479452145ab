"""certify with every client authentication method, and the bound-token checks against the
kit's own endpoint (``serve --token-binding dpop`` and ``mtls``) and against receivers that
ignore the binding. Real servers (uvicorn: hypercorn cannot show client certificates), real
tokens, real client certificates; a false pass is the defect that matters most."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.conftest import EndpointFactory
from tests.oauth.keys import ClientPki, make_client_pki
from webhook_kit.certify.checks.binding_judges import CHECK_IDS as BINDING_IDS
from webhook_kit.certify.checks.binding_judges import DPOP_IDS
from webhook_kit.certify.model import CertifySettings, Report
from webhook_kit.certify.pipeline import certify
from webhook_kit.endpoint.service import Endpoint
from webhook_kit.errors import TokenError
from webhook_kit.oauth.client import OAuthSettings
from webhook_kit.oauth.client_auth import ClientCredentials
from webhook_kit.oauth.credentials import ClientRegistration
from webhook_kit.oauth.verifier import BearerVerifier
from webhook_kit.serving import servers
from webhook_kit.serving.loop import run
from webhook_kit.tls import ensure_dev_certs

pytestmark = pytest.mark.slow

CLIENT = "sender-1"
SUBJECT = "CN=sender.example,OU=Payments,O=Sender Bank"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> ClientPki:
    return make_client_pki(tmp_path_factory.mktemp("client-pki"))


def certify_with(
    sink: Endpoint,
    url: str | None = None,
    *,
    credentials: ClientCredentials | None = None,
    dpop: Any = None,
    **options: Any,
) -> Report:
    info = sink.info
    if credentials is None:
        credentials = ClientCredentials(info.client_id, secret=info.client_secret)
    oauth = OAuthSettings(info.token_url, credentials=credentials, dpop=dpop)
    options.setdefault("probes", 1)
    settings = CertifySettings(url or info.url, oauth, ca_file=Path(str(info.ca_file)), **options)
    report: Report = run(certify(settings))
    return report


def verdicts(report: Report, ids: Any = None) -> dict[str, str]:
    return {c.id: c.verdict for c in report.checks if ids is None or c.id in ids}


def detail(report: Report, check_id: str) -> str:
    return next(c.detail for c in report.checks if c.id == check_id)


def explain(report: Report) -> str:
    return "\n".join(
        f"{c.verdict} {c.id}: {c.detail}" for c in report.checks if c.verdict != "pass"
    )


# -- every method gets a token, and a wrong credential gets none --------------------------------


def test_private_key_jwt(start_endpoint: EndpointFactory, pki: ClientPki) -> None:
    sink = start_endpoint(
        client=ClientRegistration(CLIENT, "private_key_jwt", public_key_file=pki.public_key_file)
    )
    credentials = ClientCredentials(
        CLIENT, "private_key_jwt", private_key=pki.signing_pem, algorithm="ES256", key_id="k1"
    )
    report = certify_with(sink, credentials=credentials)
    assert report.verdict == "pass", explain(report)
    assert "(private_key_jwt) got a JWT" in detail(report, "oauth.token")
    wrong = detail(report, "oauth.wrong_secret")
    assert "signed by a WRONG private key" in wrong and "refused" in wrong
    assert pki.signing_pem not in str(report.as_json())


@pytest.mark.parametrize("method", ["tls_client_auth", "self_signed_tls_client_auth"])
def test_certificate_methods(start_endpoint: EndpointFactory, pki: ClientPki, method: Any) -> None:
    if method == "tls_client_auth":
        registration = ClientRegistration(
            CLIENT, method, client_ca_file=pki.ca_file, subject_dn=SUBJECT
        )
        cert, key = pki.cert
    else:
        registration = ClientRegistration(CLIENT, method, client_cert_file=pki.self_signed[0])
        cert, key = pki.self_signed
    sink = start_endpoint(client=registration)
    credentials = ClientCredentials(CLIENT, method, cert_file=cert, key_file=key)
    report = certify_with(sink, credentials=credentials)
    assert report.verdict == "pass", explain(report)
    assert f"({method}) got a JWT" in detail(report, "oauth.token")
    assert "WRONG client certificate" in detail(report, "oauth.wrong_secret")
    # The endpoint does not require a binding, but honours the one its tokens carry.
    assert verdicts(report, ["oauth.bound_token_bare", "oauth.mtls_other_cert"]) == {
        "oauth.bound_token_bare": "pass",
        "oauth.mtls_other_cert": "pass",
    }


# -- the bound-token checks against the kit's endpoint ---------------------------------------


@pytest.mark.parametrize("nonce", [False, True], ids=["no-nonce", "server-nonce"])
def test_dpop_bound_endpoint_passes(start_endpoint: EndpointFactory, nonce: bool) -> None:
    sink = start_endpoint(token_binding="dpop", dpop_nonce=nonce)
    report = certify_with(sink, dpop="ES256")
    assert report.verdict == "pass", explain(report)
    for check_id in ("oauth.bound_token_bare", *DPOP_IDS):
        assert verdicts(report)[check_id] == "pass", explain(report)
    assert "refused with 401 (invalid_dpop_proof)" in detail(report, "oauth.dpop_replay")
    assert "invalid_token" in detail(report, "oauth.bound_token_bare")
    assert verdicts(report)["oauth.mtls_other_cert"] == "skip"
    assert "no client certificate" in detail(report, "oauth.mtls_other_cert")
    # The checks that send as the sender does got through with proofs.
    for check_id in ("oauth.valid_token", "json.content_type", "json.charset", "delivery.deleted"):
        assert verdicts(report)[check_id] == "pass"


def test_dpop_checks_skip_where_no_binding_is_required(start_endpoint: EndpointFactory) -> None:
    sink = start_endpoint()  # --token-binding none: an unbound Bearer token is accepted
    report = certify_with(sink, dpop="ES256")
    assert report.verdict == "pass", explain(report)
    assert set(verdicts(report, BINDING_IDS).values()) == {"skip"}
    assert "does not require DPoP-bound tokens" in detail(report, "oauth.dpop_replay")


@pytest.mark.parametrize("other", [False, True], ids=["self-signed-other", "ca-issued-other"])
def test_mtls_bound_endpoint_passes(
    start_endpoint: EndpointFactory, pki: ClientPki, other: bool
) -> None:
    registration = ClientRegistration(
        CLIENT, "tls_client_auth", client_ca_file=pki.ca_file, subject_dn=SUBJECT
    )
    sink = start_endpoint(client=registration, token_binding="mtls")
    credentials = ClientCredentials(
        CLIENT, "tls_client_auth", cert_file=pki.cert[0], key_file=pki.cert[1]
    )
    extra: dict[str, Any] = {}
    if other:
        extra = {"other_client_cert": pki.other[0], "other_client_key": pki.other[1]}
    report = certify_with(sink, credentials=credentials, **extra)
    assert report.verdict == "pass", explain(report)
    assert verdicts(report)["oauth.bound_token_bare"] == "pass"
    other_cert = detail(report, "oauth.mtls_other_cert")
    assert verdicts(report)["oauth.mtls_other_cert"] == "pass"
    # A certificate from the same CA reaches the app, which compares thumbprints (401); certify's
    # own self-signed one is stopped by the handshake.
    assert ("refused with 401" if other else "the TLS handshake refused it") in other_cert
    assert {verdicts(report)[i] for i in DPOP_IDS} == {"skip"}


# -- receivers that ignore the binding ----------------------------------------------------------


def _verify(verifier: BearerVerifier, token: str) -> Response | None:
    try:
        verifier.verify(token)
    except TokenError as exc:
        return JSONResponse({"error": exc.description}, 401, {"WWW-Authenticate": "DPoP"})
    return None


def dpop_scheme_only(verifier: BearerVerifier) -> Starlette:
    """Requires the DPoP scheme and a valid token, and checks neither the proof nor cnf."""

    async def webhook(request: Request) -> Response:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme != "DPoP":
            return JSONResponse({"error": "use DPoP"}, 401, {"WWW-Authenticate": "DPoP"})
        return _verify(verifier, token) or JSONResponse({"received": True})

    return _app(webhook)


def any_certificate(verifier: BearerVerifier) -> Starlette:
    """Verifies the token, never compares its cnf.x5t#S256 with the connection's certificate."""

    async def webhook(request: Request) -> Response:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme != "Bearer":
            return JSONResponse({"error": "no token"}, 401, {"WWW-Authenticate": "Bearer"})
        return _verify(verifier, token) or JSONResponse({"received": True})

    return _app(webhook)


def _app(webhook: Any) -> Starlette:
    async def health(request: Request) -> Response:
        return JSONResponse({"ok": True})

    return Starlette(
        routes=[
            Route("/webhook", webhook, methods=["POST"]),
            Route(servers.HEALTH_PATH, health),  # what readiness waits for
        ]
    )


@contextlib.contextmanager
def serve_with_client_ca(app: Starlette, certs_dir: Path, client_ca: Path) -> Iterator[str]:
    """``app`` over HTTPS under uvicorn, asking clients for a certificate from ``client_ca``."""
    files, _ = ensure_dev_certs(certs_dir)
    sock = servers.bind("127.0.0.1", 0)
    url = f"https://127.0.0.1:{sock.getsockname()[1]}/webhook"

    async def serve(ready: Any, shutdown: Any) -> None:
        try:
            await servers.serve(
                app, sock=sock, files=files, shutdown=shutdown, ready=ready, client_ca=client_ca
            )
        finally:
            sock.close()

    with servers.ThreadedServer(serve).running():
        yield url


def test_a_receiver_ignoring_the_dpop_binding_fails(
    start_endpoint: EndpointFactory, certs_dir: Path, pki: ClientPki
) -> None:
    sink = start_endpoint()
    with serve_with_client_ca(dpop_scheme_only(sink.verifier), certs_dir, pki.ca_file) as url:
        report = certify_with(sink, url, dpop="ES256")
    failed = {c.id for c in report.checks if c.verdict == "fail"}
    assert failed == {"oauth.bound_token_bare", *DPOP_IDS}, explain(report)
    assert "as DPoP, no proof -> HTTP 200" in detail(report, "oauth.bound_token_bare")
    assert "cnf.jkt" in detail(report, "oauth.dpop_wrong_key")
    assert verdicts(report)["oauth.valid_token"] == "pass"


def test_a_receiver_ignoring_the_certificate_binding_fails(
    start_endpoint: EndpointFactory, certs_dir: Path, pki: ClientPki
) -> None:
    registration = ClientRegistration(
        CLIENT, "tls_client_auth", client_ca_file=pki.ca_file, subject_dn=SUBJECT
    )
    sink = start_endpoint(client=registration)
    credentials = ClientCredentials(
        CLIENT, "tls_client_auth", cert_file=pki.cert[0], key_file=pki.cert[1]
    )
    with serve_with_client_ca(any_certificate(sink.verifier), certs_dir, pki.ca_file) as url:
        report = certify_with(
            sink,
            url,
            credentials=credentials,
            other_client_cert=pki.other[0],
            other_client_key=pki.other[1],
        )
    failed = {c.id for c in report.checks if c.verdict == "fail"}
    assert failed == {"oauth.bound_token_bare", "oauth.mtls_other_cert"}, explain(report)
    assert "without the client certificate -> HTTP 200" in detail(report, "oauth.bound_token_bare")
    assert "x5t#S256" in detail(report, "oauth.mtls_other_cert")


def test_settings_need_both_halves_of_the_other_certificate(pki: ClientPki) -> None:
    from webhook_kit.errors import ConfigError

    oauth = OAuthSettings("https://127.0.0.1:9/token", "c", "s")
    with pytest.raises(ConfigError, match="other_client_cert"):
        CertifySettings("https://127.0.0.1:9/w", oauth, other_client_cert=pki.other[0])
