"""certify against an authorization server this project did not write: npm oauth2-mock-server,
which issues a token to any client and any secret. The receiver in front of it is correct, so
only the token endpoint is at fault, and certify must say exactly that."""

from __future__ import annotations

from pathlib import Path

import pytest

from examples.receiver.app import create_app
from tests.interop_node import oauth2_mock_server
from webhook_kit.certify.model import CertifySettings
from webhook_kit.certify.pipeline import certify
from webhook_kit.oauth.client import OAuthSettings
from webhook_kit.serving.loop import run
from webhook_kit.testing import serve_app

# A third-party authorization server and a full certify run.
pytestmark = pytest.mark.slow


def test_a_token_endpoint_that_ignores_the_secret_fails_wrong_secret(certs_dir: Path) -> None:
    ca = certs_dir / "ca.pem"
    with oauth2_mock_server(certs_dir / "server.pem", certs_dir / "server-key.pem") as auth:
        app = create_app(jwks_url=auth.jwks_url, issuer=auth.issuer, ca_file=str(ca))
        with serve_app(app, certs_dir=certs_dir) as served:
            settings = CertifySettings(
                served.url("/webhook"),
                OAuthSettings(auth.token_url, "interop-client", "interop-secret"),
                jwks_url=auth.jwks_url,
                ca_file=ca,
                probes=1,
            )
            report = run(certify(settings))
    failed = {c.id: c.requirement for c in report.checks if c.verdict == "fail"}
    assert failed == {"oauth.wrong_secret": "oauth"}, [
        (c.id, c.detail) for c in report.checks if c.verdict != "pass"
    ]
    detail = next(c.detail for c in report.checks if c.id == "oauth.wrong_secret")
    assert "WRONG client secret" in detail
    # The receiver itself is correct: every forgery, algorithm confusion included, is refused.
    verdicts = {c.id: c.verdict for c in report.checks}
    for check_id in ("oauth.alg_none", "oauth.alg_confusion", "oauth.embedded_jwk", "oauth.jku"):
        assert verdicts[check_id] == "pass"
