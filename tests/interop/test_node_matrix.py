"""certify's interop matrix, Node.js half: receivers and authorization servers this project did
not write, each in its default configuration and then with one defect at a time, get the verdict
the contract gives them.

Stacks (sources and exact versions in ``tests/interop/node/``):

- Express + Auth0's express-oauth2-jwt-bearer, authorization server = the kit's own ``serve``.
- jsonwebtoken 4.1.0 (CVE-2015-9235) and node-jose 0.10.0 (CVE-2018-0114): the real vulnerable
  releases from npm, verifying tokens of the kit's ``serve`` with their documented calls.
- panva's oidc-provider 8 (client credentials, opaque tokens, RFC 7662 introspection) with an
  Express receiver that introspects every token.

Every certify run is a real subprocess of the CLI (``certify_json``); every server is a real
HTTPS server on an ephemeral loopback port.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import EndpointFactory
from tests.interop.harness import JWT_FORGERIES, certify_json, explain, failures, verdicts
from tests.interop.node_stacks import NodeStacks, OidcProvider, self_signed
from webhook_kit.contract.statuses import STATUSES
from webhook_kit.endpoint.service import Endpoint, running_endpoint
from webhook_kit.endpoint.settings import EndpointSettings

pytestmark = pytest.mark.slow

AUDIENCE = "webhook-kit"  # EndpointSettings.audience: the aud of the kit's tokens
JSON_CHECKS = ("json.content_type", "json.charset")
DELIVERY_CHECKS = tuple(f"delivery.{status}" for status in STATUSES)
#: Everything that needs a notification accepted with the real token.
ACCEPTANCE_CHECKS = (
    *JSON_CHECKS,
    *DELIVERY_CHECKS,
    "availability.probes",
    "robustness.duplicate",
    "robustness.unknown_field",
)
#: What a receiver that accepts the kit's token, and refuses everything else, must pass.
MUST_PASS = (
    "oauth.token",
    "oauth.wrong_secret",
    "oauth.valid_token",
    "oauth.no_token",
    "oauth.garbage_token",
    *JSON_CHECKS,
    *DELIVERY_CHECKS,
    "availability.probes",
)


def check(report: dict[str, Any], check_id: str) -> dict[str, Any]:
    matches: list[dict[str, Any]] = [c for c in report["checks"] if c["id"] == check_id]
    assert matches, f"{check_id} is not in the report:\n{explain(report)}"
    return matches[0]


def assert_blocked(report: dict[str, Any], ids: tuple[str, ...], blocker: str) -> None:
    for check_id in ids:
        c = check(report, check_id)
        assert (c["verdict"], c["blocked_by"]) == ("skip", blocker), (check_id, explain(report))
        assert f"blocked by {blocker}" in c["detail"], c


@pytest.fixture(scope="module")
def stacks(tmp_path_factory: pytest.TempPathFactory, certs_dir: Path) -> NodeStacks:
    return NodeStacks(
        tmp_path_factory.mktemp("node-run"),
        ca_file=certs_dir / "ca.pem",
        cert=certs_dir / "server.pem",
        key=certs_dir / "server-key.pem",
    )


@pytest.fixture(scope="module")
def kit_as(certs_dir: Path) -> Iterator[Endpoint]:
    """The kit's own ``serve`` as the authorization server (stateless: safe to share)."""
    with running_endpoint(EndpointSettings(port=0, certs_dir=certs_dir)) as sink:
        yield sink


@pytest.fixture(scope="module")
def oidc(stacks: NodeStacks) -> Iterator[OidcProvider]:
    """oidc-provider, default configuration (shared: tokens are per request)."""
    with stacks.oidc_provider() as provider:
        yield provider


def certify_kit(url: str, sink: Endpoint, ca_file: Path, *extra: str) -> dict[str, Any]:
    info = sink.info
    return certify_json(
        url,
        token_url=info.token_url,
        client_id=info.client_id,
        client_secret=info.client_secret,
        ca_file=ca_file,
        extra=extra,
    )


def certify_oidc(url: str, provider: OidcProvider, ca_file: Path, *extra: str) -> dict[str, Any]:
    return certify_json(
        url,
        token_url=provider.token_url,
        client_id=provider.sender_id,
        client_secret=provider.sender_secret,
        ca_file=ca_file,
        extra=extra,
    )


# --- Express + express-oauth2-jwt-bearer, the kit's serve as authorization server -------------


def test_auth0_default_passes(stacks: NodeStacks, kit_as: Endpoint, certs_dir: Path) -> None:
    """auth({issuerBaseURL, audience}) as documented: PASS. It takes ?access_token= too, which
    RFC 6750 allows: a warning, not a failure."""
    with stacks.auth0_receiver(issuer=kit_as.urls.base, audience=AUDIENCE) as url:
        report = certify_kit(url, kit_as, certs_dir / "ca.pem")
    got = verdicts(report)
    assert report["verdict"] == "pass", explain(report)
    assert got["oauth.query_token"] == "warn", explain(report)
    for check_id in (*MUST_PASS, *JWT_FORGERIES):
        assert got[check_id] == "pass", (check_id, explain(report))


def test_auth0_default_strict(stacks: NodeStacks, kit_as: Endpoint, certs_dir: Path) -> None:
    """--strict: the query-token and loopback warnings fail, nothing else changes."""
    with stacks.auth0_receiver(issuer=kit_as.urls.base, audience=AUDIENCE) as url:
        report = certify_kit(url, kit_as, certs_dir / "ca.pem", "--strict")
    assert report["strict"] is True
    assert report["verdict"] == "fail"
    assert set(failures(report)) == {"url.public", "oauth.query_token"}, explain(report)


def test_auth0_route_without_middleware(
    stacks: NodeStacks, kit_as: Endpoint, certs_dir: Path
) -> None:
    """The webhook route registered without auth(): anyone gets in."""
    with stacks.auth0_receiver(issuer=kit_as.urls.base, audience=AUDIENCE, defect="no_auth") as url:
        report = certify_kit(url, kit_as, certs_dir / "ca.pem")
    assert report["verdict"] == "fail"
    # One root cause, named once: every forgery would get in too, so they are blocked by it.
    assert failures(report) == {"oauth.no_token": "oauth"}, explain(report)
    assert "accepted" in check(report, "oauth.no_token")["detail"].lower()
    for check_id in ("oauth.garbage_token", *JWT_FORGERIES):
        assert check(report, check_id)["blocked_by"] == "oauth.no_token", explain(report)
    assert verdicts(report)["oauth.valid_token"] == "pass", explain(report)


def test_auth0_handler_fails_one_status(
    stacks: NodeStacks, kit_as: Endpoint, certs_dir: Path
) -> None:
    """A handler that throws on 'video-uploaded' (Express answers 500): that status fails, the
    other eight pass."""
    with stacks.auth0_receiver(
        issuer=kit_as.urls.base,
        audience=AUDIENCE,
        defect="fails_status",
        fail_status="video-uploaded",
    ) as url:
        report = certify_kit(url, kit_as, certs_dir / "ca.pem")
    assert report["verdict"] == "fail"
    assert failures(report) == {"delivery.video-uploaded": "delivery"}, explain(report)
    assert "500" in check(report, "delivery.video-uploaded")["detail"]
    got = verdicts(report)
    assert all(got[i] == "pass" for i in DELIVERY_CHECKS if i != "delivery.video-uploaded")


def test_auth0_required_scope_missing(
    stacks: NodeStacks, kit_as: Endpoint, certs_dir: Path
) -> None:
    """requiredScopes('webhook:admin') and a token with scope 'webhook': the receiver answers 403
    insufficient_scope; oauth.valid_token fails and says which scope to pass with --scope;
    everything that needs an accepted notification is blocked by it."""
    with stacks.auth0_receiver(
        issuer=kit_as.urls.base, audience=AUDIENCE, defect="admin_scope"
    ) as url:
        report = certify_kit(url, kit_as, certs_dir / "ca.pem")
    assert report["verdict"] == "fail"
    valid = check(report, "oauth.valid_token")
    assert valid["verdict"] == "fail", explain(report)
    assert "--scope" in valid["detail"] and "webhook:admin" in valid["detail"], valid
    assert_blocked(report, ACCEPTANCE_CHECKS, "oauth.valid_token")
    assert failures(report) == {"oauth.valid_token": "oauth"}, explain(report)


def test_auth0_required_scope_not_allowed_by_the_issuer(
    stacks: NodeStacks, kit_as: Endpoint, certs_dir: Path
) -> None:
    """--scope webhook:admin against the kit's issuer, which allows only 'webhook': the token
    endpoint answers invalid_scope, and oauth.token says so (and points at --scope)."""
    with stacks.auth0_receiver(
        issuer=kit_as.urls.base, audience=AUDIENCE, defect="admin_scope"
    ) as url:
        report = certify_kit(url, kit_as, certs_dir / "ca.pem", "--scope", "webhook:admin")
    token = check(report, "oauth.token")
    assert token["verdict"] == "fail", explain(report)
    assert "invalid_scope" in token["detail"] and "--scope" in token["detail"], token
    assert check(report, "oauth.valid_token")["verdict"] == "skip", explain(report)


def test_auth0_required_scope_given(
    stacks: NodeStacks, start_endpoint: EndpointFactory, certs_dir: Path
) -> None:
    """An issuer that allows 'webhook:admin' and certify asking for it with --scope: PASS."""
    sink = start_endpoint(scopes=("webhook", "webhook:admin"))
    with stacks.auth0_receiver(
        issuer=sink.urls.base, audience=AUDIENCE, defect="admin_scope"
    ) as url:
        report = certify_kit(url, sink, certs_dir / "ca.pem", "--scope", "webhook:admin")
    assert report["verdict"] == "pass", explain(report)
    assert verdicts(report)["oauth.valid_token"] == "pass"


def test_auth0_self_signed_certificate(
    stacks: NodeStacks, kit_as: Endpoint, certs_dir: Path, tmp_path: Path
) -> None:
    """The receiver serves a self-signed certificate: https.chain fails, and every check that
    needs a connection is blocked by it (one root cause, reported once)."""
    cert, key = self_signed(tmp_path)
    with stacks.auth0_receiver(
        issuer=kit_as.urls.base, audience=AUDIENCE, cert=cert, key=key
    ) as url:
        report = certify_kit(url, kit_as, certs_dir / "ca.pem")
    assert report["verdict"] == "fail"
    chain = check(report, "https.chain")
    assert chain["verdict"] == "fail", explain(report)
    assert "self-signed" in chain["detail"].lower(), chain
    assert_blocked(report, ("oauth.no_token", *ACCEPTANCE_CHECKS), "https.chain")
    assert set(failures(report)) == {"https.chain"}, explain(report)


def test_auth0_json_refused(stacks: NodeStacks, kit_as: Endpoint, certs_dir: Path) -> None:
    """express.json({type: 'text/plain'}): application/json bodies are never parsed and the
    handler answers 400. Both JSON checks fail; authentication is not what refused. (The nine
    deliveries and the probes, JSON too, fail as well; whether they should rather skip, blocked
    by json.content_type, is the contract's call and not asserted here.)"""
    with stacks.auth0_receiver(
        issuer=kit_as.urls.base, audience=AUDIENCE, defect="json_refused"
    ) as url:
        report = certify_kit(url, kit_as, certs_dir / "ca.pem")
    assert report["verdict"] == "fail"
    got = failures(report)
    for check_id in JSON_CHECKS:
        assert got.get(check_id) == "json", explain(report)
        assert "400" in check(report, check_id)["detail"]
    assert verdicts(report)["oauth.valid_token"] == "pass", explain(report)
    assert verdicts(report)["oauth.no_token"] == "pass", explain(report)


EXPIRY = ("--expiry-wait", "30", "--expiry-leeway", "7")


@pytest.mark.parametrize(
    ("defect", "expected"), [(None, "pass"), ("lenient_expiry", "fail")], ids=["default", "lenient"]
)
def test_auth0_expired_token(
    stacks: NodeStacks,
    start_endpoint: EndpointFactory,
    certs_dir: Path,
    defect: str | None,
    expected: str,
) -> None:
    """A 3 s token replayed after it expired, with 7 s of leeway (more than the library's default
    clockTolerance of 5 s): refused by default; accepted with clockTolerance raised to an hour."""
    sink = start_endpoint(token_ttl=3)
    with stacks.auth0_receiver(issuer=sink.urls.base, audience=AUDIENCE, defect=defect) as url:
        report = certify_kit(url, sink, certs_dir / "ca.pem", *EXPIRY)
    expired = check(report, "oauth.expired_token")
    assert expired["verdict"] == expected, explain(report)
    if expected == "fail":
        assert failures(report) == {"oauth.expired_token": "oauth"}, explain(report)
        return
    stale = [
        c["id"]
        for c in report["checks"]
        if c["verdict"] == "fail" and "HTTP 401" in c["detail"] and c["id"] in ACCEPTANCE_CHECKS
    ]
    if stale:
        # Only this known signature is excused; once certify fetches a fresh token after the
        # replay, the full assertion below runs.
        pytest.xfail(
            "certify bug (reported): after oauth.expired_token waits the real token out, later "
            f"checks reuse the expired token and get 401: {', '.join(stale)}"
        )
    assert report["verdict"] == "pass", explain(report)


# --- Vulnerable JWT libraries, the real releases from npm -------------------------------------


def test_jsonwebtoken_4_1_0_alg_confusion(
    stacks: NodeStacks, kit_as: Endpoint, certs_dir: Path
) -> None:
    """jsonwebtoken 4.1.0, jwt.verify(token, publicKeyPem, {audience, issuer}): the token's header
    picks the algorithm, so HS256 keyed with the PEM verifies (CVE-2015-9235, fixed in 4.2.2;
    4.2.0/4.2.1 already refuse HS* for a 'BEGIN PUBLIC KEY' PEM, so 4.1.0 is pinned)."""
    with stacks.jsonwebtoken_receiver(
        jwks_url=kit_as.info.jwks_url, issuer=kit_as.urls.base, audience=AUDIENCE
    ) as url:
        report = certify_kit(url, kit_as, certs_dir / "ca.pem")
    assert report["verdict"] == "fail"
    assert failures(report) == {"oauth.alg_confusion": "oauth"}, explain(report)
    confusion = check(report, "oauth.alg_confusion")["detail"]
    assert "accepted" in confusion.lower() and "HS256" in confusion and "PEM" in confusion
    got = verdicts(report)
    for check_id in ("oauth.alg_none", "oauth.embedded_jwk", "oauth.tampered_token", *MUST_PASS):
        assert got[check_id] == "pass", (check_id, explain(report))


def test_node_jose_0_10_0_embedded_keys(
    stacks: NodeStacks, kit_as: Endpoint, certs_dir: Path
) -> None:
    """node-jose 0.10.0, JWS.createVerify(keystore).verify(token) with default options: a key in
    the token's `jwk` header is used instead of the keystore (CVE-2018-0114, fixed in 0.11.0);
    this release also takes the first `x5c` certificate's key with no chain check
    (lib/jws/verify.js), so both embedded-key checks fail."""
    with stacks.node_jose_receiver(
        jwks_url=kit_as.info.jwks_url, issuer=kit_as.urls.base, audience=AUDIENCE
    ) as url:
        report = certify_kit(url, kit_as, certs_dir / "ca.pem")
    assert report["verdict"] == "fail"
    assert failures(report) == {
        "oauth.embedded_jwk": "oauth",
        "oauth.embedded_x5c": "oauth",
    }, explain(report)
    got = verdicts(report)
    for check_id in ("oauth.alg_none", "oauth.alg_confusion", "oauth.tampered_token", *MUST_PASS):
        assert got[check_id] == "pass", (check_id, explain(report))


# --- oidc-provider: opaque tokens, introspection ----------------------------------------------


def test_oidc_provider_introspection_passes(
    stacks: NodeStacks, oidc: OidcProvider, certs_dir: Path
) -> None:
    """Opaque tokens checked by RFC 7662 introspection: PASS; the JWT forgeries cannot apply
    and skip, saying the token is opaque."""
    with stacks.introspection_receiver(oidc) as url:
        report = certify_oidc(url, oidc, certs_dir / "ca.pem")
    assert report["verdict"] == "pass", explain(report)
    got = verdicts(report)
    for check_id in MUST_PASS:
        assert got[check_id] == "pass", (check_id, explain(report))
    for check_id in JWT_FORGERIES:
        c = check(report, check_id)
        assert c["verdict"] == "skip" and "opaque" in c["detail"], (check_id, explain(report))


def test_oidc_provider_found_by_issuer(
    stacks: NodeStacks, oidc: OidcProvider, certs_dir: Path
) -> None:
    """--issuer instead of --token-url: certify finds the token endpoint in oidc-provider's
    OpenID discovery document and passes as with the URL given."""
    with stacks.introspection_receiver(oidc) as url:
        report = certify_json(
            url,
            client_id=oidc.sender_id,
            client_secret=oidc.sender_secret,
            ca_file=certs_dir / "ca.pem",
            extra=("--issuer", oidc.issuer),
        )
    assert report["verdict"] == "pass", explain(report)
    token_url = check(report, "oauth.token_url")
    assert token_url["verdict"] == "pass" and oidc.token_url in token_url["detail"], token_url


def test_oidc_provider_receiver_ignores_active(
    stacks: NodeStacks, oidc: OidcProvider, certs_dir: Path
) -> None:
    """A receiver that takes any introspection answer as a yes ({"active": false} included)."""
    with stacks.introspection_receiver(oidc, defect="ignore_active") as url:
        report = certify_oidc(url, oidc, certs_dir / "ca.pem")
    assert report["verdict"] == "fail"
    assert failures(report) == {"oauth.garbage_token": "oauth"}, explain(report)
    assert verdicts(report)["oauth.no_token"] == "pass"


def test_oidc_provider_takes_basic_for_a_post_client(stacks: NodeStacks, certs_dir: Path) -> None:
    """oidc-provider treats client_secret_basic and client_secret_post as one family: a client
    registered with client_secret_post still gets a token with Basic. Nothing to warn about."""
    with stacks.oidc_provider(sender_auth_method="client_secret_post") as provider:
        with stacks.introspection_receiver(provider) as url:
            report = certify_oidc(url, provider, certs_dir / "ca.pem")
    assert report["verdict"] == "pass", explain(report)
    assert verdicts(report)["oauth.token"] == "pass", explain(report)


def test_oidc_provider_post_only_client(stacks: NodeStacks, certs_dir: Path) -> None:
    """A token endpoint that enforces the registered client_secret_post and refuses Basic with
    invalid_client (a guard in oidc_provider.mjs, as ORY Hydra words it: oidc-provider alone
    does not refuse, see the test above): certify, told nothing, falls back to
    client_secret_post itself; oauth.token warns which method works, and the run passes."""
    with stacks.oidc_provider(
        sender_auth_method="client_secret_post", enforce_auth_method=True
    ) as provider:
        with stacks.introspection_receiver(provider) as url:
            report = certify_oidc(url, provider, certs_dir / "ca.pem")
    token = check(report, "oauth.token")
    assert token["verdict"] == "warn", explain(report)
    assert "client_secret_post" in token["detail"], token
    assert report["verdict"] == "pass", explain(report)


AUTH0_LIKE_AUDIENCE = "urn:webhook-kit:receiver"


def test_oidc_provider_audience_required(stacks: NodeStacks, certs_dir: Path) -> None:
    """A token endpoint that, like Auth0 with no default audience, answers 403 access_denied "No
    audience parameter was provided..." : oauth.token fails and points at --audience; with
    --audience the token is bound to it (introspection shows aud) and the run passes."""
    with stacks.oidc_provider(require_audience=AUTH0_LIKE_AUDIENCE) as provider:
        with stacks.introspection_receiver(provider, audience=AUTH0_LIKE_AUDIENCE) as url:
            refused = certify_oidc(url, provider, certs_dir / "ca.pem")
            given = certify_oidc(
                url, provider, certs_dir / "ca.pem", "--audience", AUTH0_LIKE_AUDIENCE
            )
    token = check(refused, "oauth.token")
    assert refused["verdict"] == "fail"
    assert token["verdict"] == "fail", explain(refused)
    assert "--audience" in token["detail"] and "access_denied" in token["detail"], token
    assert given["verdict"] == "pass", explain(given)
    assert verdicts(given)["oauth.token"] == "pass", explain(given)
