"""certify against Debian's Apache with mod_auth_openidc as the OAuth 2.0 resource server in
front of a plain backend: the default configuration, an unprotected location, and TLS served
without its intermediate certificate."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.interop import proxy_stacks as proxy
from tests.interop.harness import (
    JWT_FORGERIES,
    certify_json,
    explain,
    failures,
    require,
    verdicts,
)
from webhook_kit.endpoint.service import Endpoint, running_endpoint
from webhook_kit.endpoint.settings import EndpointSettings

pytestmark = pytest.mark.slow

AUDIENCE = "webhook-kit"
#: Checks that only mean something when a request without a token is refused.
FORGERY_CHECKS = {"oauth.garbage_token", *JWT_FORGERIES}


@pytest.fixture(scope="module")
def apache() -> None:
    require(
        proxy.apache_available(),
        "apache2 with mod_auth_openidc",
        "apt-get install apache2 libapache2-mod-auth-openidc",
    )


@pytest.fixture(scope="module")
def issuer(certs_dir: Path) -> Iterator[Endpoint]:
    with running_endpoint(EndpointSettings(port=0, certs_dir=certs_dir)) as sink:
        yield sink


@pytest.fixture(scope="module")
def backend() -> Iterator[str]:
    with proxy.backend() as url:
        yield url


def apache_in_front(
    issuer: Endpoint, backend: str, server_cert: proxy.ServerCert, certs_dir: Path, **options: Any
) -> Any:
    return proxy.running_apache(
        server_cert=server_cert,
        issuer_ca=certs_dir / "ca.pem",
        backend_url=backend,
        jwks_url=issuer.info.jwks_url,
        issuer=issuer.urls.base,
        audience=AUDIENCE,
        **options,
    )


def certify(url: str, issuer: Endpoint, ca_file: Path) -> dict[str, Any]:
    info = issuer.info
    return certify_json(
        url,
        token_url=info.token_url,
        client_id=info.client_id,
        client_secret=info.client_secret,
        ca_file=ca_file,
    )


def test_mod_auth_openidc_passes(
    apache: None, issuer: Endpoint, backend: str, certs_dir: Path
) -> None:
    with apache_in_front(issuer, backend, proxy.kit_cert(certs_dir), certs_dir) as url:
        report = certify(url, issuer, certs_dir / "ca.pem")
    assert report["verdict"] == "pass", explain(report)
    assert verdicts(report)["oauth.valid_token"] == "pass", explain(report)
    assert verdicts(report)["oauth.no_token"] == "pass", explain(report)
    warned = {c["id"] for c in report["checks"] if c["verdict"] == "warn"}
    assert warned <= {"url.public"}, explain(report)


def test_require_all_granted_lets_anyone_in(
    apache: None, issuer: Endpoint, backend: str, certs_dir: Path
) -> None:
    with apache_in_front(
        issuer, backend, proxy.kit_cert(certs_dir), certs_dir, protect=False
    ) as url:
        report = certify(url, issuer, certs_dir / "ca.pem")
    assert report["verdict"] == "fail"
    # One root cause: the open door is reported once, not once per forged token.
    assert set(failures(report)) == {"oauth.no_token"}, explain(report)
    assert verdicts(report)["https.chain"] == "pass", explain(report)
    forgeries = [c for c in report["checks"] if c["id"] in FORGERY_CHECKS]
    assert len(forgeries) == len(FORGERY_CHECKS), explain(report)
    for check in forgeries:
        assert (check["verdict"], check["blocked_by"]) == ("skip", "oauth.no_token"), check


def test_leaf_without_intermediate_is_an_incomplete_chain(
    apache: None, issuer: Endpoint, backend: str, certs_dir: Path, tmp_path: Path
) -> None:
    server_cert, root_pem = proxy.leaf_without_intermediate()
    # One --ca for both: the kit's CA (token endpoint) and the receiver's root.
    bundle = tmp_path / "cas.pem"
    bundle.write_bytes((certs_dir / "ca.pem").read_bytes() + root_pem)
    with apache_in_front(issuer, backend, server_cert, certs_dir) as url:
        report = certify(url, issuer, bundle)
    assert report["verdict"] == "fail"
    chain = next(c for c in report["checks"] if c["id"] == "https.chain")
    assert chain["verdict"] == "fail", explain(report)
    assert "incomplete" in chain["detail"].lower(), chain["detail"]
    blocked = [
        c for c in report["checks"] if c["id"].startswith(("json.", "delivery.", "availability."))
    ]
    assert blocked, explain(report)
    for check in blocked:
        assert check["verdict"] == "skip", explain(report)
        assert check["blocked_by"] == "https.chain", check
    # One root cause, reported once.
    assert set(failures(report)) == {"https.chain"}, explain(report)
