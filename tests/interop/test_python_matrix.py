"""certify against Python receivers it did not write: PyJWT, Authlib, PyJWT 1.5.0
(CVE-2017-11424) and hand-written verifiers with one flaw each; the kit's serve is the
authorization server. Each receiver runs in its default configuration, then with one defect."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.interop import python_stacks as stacks
from tests.interop.harness import certify_json, explain, failures, require, verdicts
from tests.interop.vulnerable import verifiers
from webhook_kit.endpoint.service import Endpoint, running_endpoint
from webhook_kit.endpoint.settings import EndpointSettings
from webhook_kit.testing import serve_app

pytestmark = pytest.mark.slow

AUDIENCE = "webhook-kit"
#: Forgeries signed by certify's own key that carry a kid the issuer never published.
FOREIGN_KID = {
    "oauth.embedded_jwk",
    "oauth.embedded_x5c",
    "oauth.jku",
    "oauth.x5u",
    "oauth.unknown_kid",
    "oauth.kid_injection",
}


@pytest.fixture(scope="module")
def issuer(certs_dir: Path) -> Iterator[Endpoint]:
    """The kit's serve as the authorization server, shared: certify only asks it for tokens."""
    with running_endpoint(EndpointSettings(port=0, certs_dir=certs_dir)) as sink:
        yield sink


def site(*specs: str) -> Path:
    path, error = stacks.installed(*specs)
    require(path is not None, " + ".join(specs), f"pip install --target from PyPI: {error}")
    assert path is not None
    return path


@pytest.fixture(scope="module")
def pyjwt_site() -> Path:
    return site(*stacks.PYJWT)


def certify(url: str, sink: Endpoint, certs_dir: Path, *extra: str) -> dict[str, Any]:
    info = sink.info
    return certify_json(
        url,
        token_url=info.token_url,
        client_id=info.client_id,
        client_secret=info.client_secret,
        ca_file=certs_dir / "ca.pem",
        extra=extra,
    )


def pyjwt_receiver(
    sink: Endpoint, certs_dir: Path, site: Path, defect: str = "none", stack: str = "pyjwt"
) -> Any:
    return stacks.receiver_process(
        stack,
        site=site,
        jwks_url=sink.info.jwks_url,
        issuer=sink.urls.base,
        audience=AUDIENCE,
        certs_dir=certs_dir,
        defect=defect,
    )


def assert_clean_pass(report: dict[str, Any]) -> None:
    """Pass, with no warning but the loopback address's."""
    assert report["verdict"] == "pass", explain(report)
    warned = {c["id"] for c in report["checks"] if c["verdict"] == "warn"}
    assert warned <= {"url.public"}, explain(report)
    assert verdicts(report)["oauth.valid_token"] == "pass", explain(report)


# --- PyJWT ----------------------------------------------------------------------------------


def test_pyjwt_recipe_passes(issuer: Endpoint, certs_dir: Path, pyjwt_site: Path) -> None:
    with pyjwt_receiver(issuer, certs_dir, pyjwt_site) as url:
        report = certify(url, issuer, certs_dir)
    assert_clean_pass(report)
    assert verdicts(report)["oauth.alg_confusion"] == "pass", explain(report)


def test_pyjwt_without_signature_check_fails_every_forgery_with_the_real_kid(
    issuer: Endpoint, certs_dir: Path, pyjwt_site: Path
) -> None:
    # PyJWKClient still refuses a kid it does not know, so only the forgeries that keep the
    # real token's header get in.
    with pyjwt_receiver(issuer, certs_dir, pyjwt_site, "no_signature") as url:
        report = certify(url, issuer, certs_dir)
    assert report["verdict"] == "fail"
    assert set(failures(report)) == {
        "oauth.tampered_token",
        "oauth.alg_none",
        "oauth.alg_confusion",
    }, explain(report)
    assert verdicts(report)["oauth.no_token"] == "pass"


@pytest.mark.parametrize(("defect", "expected"), [("none", "pass"), ("no_exp", "fail")])
def test_pyjwt_expired_token(
    start_endpoint: Any, certs_dir: Path, pyjwt_site: Path, defect: str, expected: str
) -> None:
    sink = start_endpoint(token_ttl=3)
    with pyjwt_receiver(sink, certs_dir, pyjwt_site, defect) as url:
        report = certify(url, sink, certs_dir, "--expiry-wait", "10", "--expiry-leeway", "2")
    assert verdicts(report)["oauth.expired_token"] == expected, explain(report)
    assert set(failures(report)) == ({"oauth.expired_token"} if expected == "fail" else set()), (
        explain(report)
    )


@pytest.fixture(scope="module")
def forbidding_receiver(issuer: Endpoint, certs_dir: Path, pyjwt_site: Path) -> Iterator[str]:
    with pyjwt_receiver(issuer, certs_dir, pyjwt_site, "forbidden") as url:
        yield url


def test_403_instead_of_401_warns(
    forbidding_receiver: str, issuer: Endpoint, certs_dir: Path
) -> None:
    report = certify(forbidding_receiver, issuer, certs_dir)
    assert report["verdict"] == "pass", explain(report)
    assert verdicts(report)["oauth.no_token"] == "warn", explain(report)
    assert verdicts(report)["oauth.tampered_token"] == "warn", explain(report)


def test_403_instead_of_401_fails_under_strict(
    forbidding_receiver: str, issuer: Endpoint, certs_dir: Path
) -> None:
    report = certify(forbidding_receiver, issuer, certs_dir, "--strict")
    assert report["verdict"] == "fail", explain(report)
    assert report["strict"] is True
    assert "oauth.no_token" in failures(report), explain(report)
    assert "url.public" in failures(report), explain(report)


# --- PyJWT 1.5.0: CVE-2017-11424 ------------------------------------------------------------


def test_pyjwt_1_5_0_alg_confusion(issuer: Endpoint, certs_dir: Path) -> None:
    legacy = site(*stacks.PYJWT_VULNERABLE)
    with pyjwt_receiver(issuer, certs_dir, legacy, stack="pyjwt-legacy") as url:
        report = certify(url, issuer, certs_dir)
    assert set(failures(report)) == {"oauth.alg_confusion"}, explain(report)
    warned = {c["id"] for c in report["checks"] if c["verdict"] == "warn"}
    assert warned <= {"url.public"}, explain(report)
    detail = next(c["detail"] for c in report["checks"] if c["id"] == "oauth.alg_confusion")
    # 1.5.0 refuses an SPKI PEM as an HMAC secret; a PKCS#1 PEM is what gets through.
    assert "PKCS#1" in detail, detail


# --- Authlib --------------------------------------------------------------------------------


def test_authlib_rfc9068_resource_protector_passes(issuer: Endpoint, certs_dir: Path) -> None:
    info = issuer.info
    verify = stacks.authlib_verifier(
        info.jwks_url, issuer.urls.base, AUDIENCE, certs_dir / "ca.pem"
    )
    with serve_app(stacks.webhook_app(verify), certs_dir=certs_dir) as app:
        report = certify(app.url(stacks.WEBHOOK_PATH), issuer, certs_dir)
    assert_clean_pass(report)


# --- Hand-written verifiers, one flaw each ---------------------------------------------------

EXPECTED_FAILURES = {
    "none": set(),
    # Every forgery signed by certify's key names certify's kid, unknown to the issuer.
    "unknown_kid": FOREIGN_KID,
    "embedded_jwk": {"oauth.embedded_jwk"},
    "embedded_x5c": {"oauth.embedded_x5c"},
    "jku": {"oauth.jku"},
    "alg_none": {"oauth.alg_none"},
    "alg_confusion": {"oauth.alg_confusion"},
}


@pytest.mark.parametrize("flaw", list(EXPECTED_FAILURES))
def test_hand_written_verifier(issuer: Endpoint, certs_dir: Path, flaw: str) -> None:
    info = issuer.info
    verify = verifiers.build(flaw, info.jwks_url, issuer.urls.base, AUDIENCE, certs_dir / "ca.pem")
    with serve_app(stacks.webhook_app(verify), certs_dir=certs_dir) as app:
        report = certify(app.url(stacks.WEBHOOK_PATH), issuer, certs_dir)
    if flaw == "none":
        assert_clean_pass(report)
        return
    assert report["verdict"] == "fail"
    assert set(failures(report)) == EXPECTED_FAILURES[flaw], explain(report)


def test_jku_failure_says_the_receiver_fetched(issuer: Endpoint, certs_dir: Path) -> None:
    info = issuer.info
    verify = verifiers.build("jku", info.jwks_url, issuer.urls.base, AUDIENCE, certs_dir / "ca.pem")
    assert isinstance(verify, verifiers.FetchesJku)
    with serve_app(stacks.webhook_app(verify), certs_dir=certs_dir) as app:
        report = certify(app.url(stacks.WEBHOOK_PATH), issuer, certs_dir)
    assert verify.fetched, "the receiver never fetched the jku URL"
    check = next(c for c in report["checks"] if c["id"] == "oauth.jku")
    assert check["verdict"] == "fail", explain(report)
    # The observation, not only the advice: certify's key server saw the fetch.
    assert "fetched" in check["detail"].lower(), check["detail"]
