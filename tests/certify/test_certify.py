"""certify against the kit's endpoint, the example receiver, and endpoints broken on purpose.

A false pass is the worst defect this project can have, so every broken endpoint must fail, and
fail under the requirement it breaks.
"""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from examples.receiver.app import create_app as example_app
from tests.certify.receivers import Breakage, receiver
from webhook_kit.certify.checks import binding_judges
from webhook_kit.certify.model import CertifySettings, Report, SoakSettings
from webhook_kit.certify.pipeline import CHECK_IDS, certify
from webhook_kit.endpoint.service import Endpoint
from webhook_kit.oauth.client import OAuthSettings
from webhook_kit.serving.loop import run
from webhook_kit.testing import serve_app

# Full certify runs against live endpoints (about 1 s each).
pytestmark = pytest.mark.slow


def settings_for(
    sink: Endpoint, url: str, *, secret: str | None = None, timeout: float = 10.0, **options: Any
) -> CertifySettings:
    info = sink.info
    oauth = OAuthSettings(
        info.token_url, info.client_id, secret or info.client_secret, timeout=timeout
    )
    options.setdefault("ca_file", Path(info.ca_file) if info.ca_file else None)
    return CertifySettings(url, oauth, **options)


def certify_url(sink: Endpoint, url: str, **options: Any) -> Report:
    report: Report = run(certify(settings_for(sink, url, **options)))
    return report


def verdicts(report: Report) -> dict[str, str]:
    return {c.id: c.verdict for c in report.checks}


def failed(report: Report) -> dict[str, str]:
    return {c.id: c.requirement for c in report.checks if c.verdict == "fail"}


@pytest.fixture
def sink(start_endpoint: Any) -> Endpoint:
    s: Endpoint = start_endpoint()
    return s


def broken(sink: Endpoint, certs_dir: Path, **breakage: Any) -> Any:
    return serve_app(receiver(sink.verifier, Breakage(**breakage)), certs_dir=certs_dir)


def test_the_kits_own_endpoint_passes(sink: Endpoint) -> None:
    report = certify_url(sink, sink.info.url)
    assert report.verdict == "pass", failed(report)
    assert [c.id for c in report.checks] == list(CHECK_IDS)
    assert verdicts(report)["url.public"] == "warn"  # loopback only
    chain = next(c for c in report.checks if c.id == "https.chain")
    assert "development-only" in chain.detail
    assert sink.info.client_secret not in str(report.as_json())


@pytest.mark.parametrize("server", ["uvicorn", "hypercorn"])
def test_the_example_receiver_passes(sink: Endpoint, certs_dir: Path, server: str) -> None:
    assert sink.info.ca_file is not None
    app = example_app(
        jwks_url=sink.info.jwks_url,
        issuer=sink.urls.base,
        audience="webhook-kit",
        ca_file=sink.info.ca_file,
    )
    with serve_app(app, certs_dir=certs_dir, server=server) as served:  # type: ignore[arg-type]
        report = certify_url(sink, served.url("/webhook"))
    assert report.verdict == "pass", failed(report)


def test_a_conforming_test_receiver_passes(sink: Endpoint, certs_dir: Path) -> None:
    with broken(sink, certs_dir) as served:
        report = certify_url(sink, served.url("/webhook"))
    assert report.verdict == "pass", failed(report)


def test_no_auth_fails_under_oauth(sink: Endpoint, certs_dir: Path) -> None:
    with broken(sink, certs_dir, auth="none") as served:
        report = certify_url(sink, served.url("/webhook"))
    assert report.verdict == "fail"
    assert failed(report)["oauth.no_token"] == "oauth"
    # One root cause: the forgeries are blocked by it, not failed eleven more times.
    assert failed(report) == {"oauth.no_token": "oauth"}
    for check_id in ("oauth.garbage_token", "oauth.alg_confusion", "oauth.query_token"):
        check = next(c for c in report.checks if c.id == check_id)
        assert (check.verdict, check.blocked_by) == ("skip", "oauth.no_token")
    detail = next(c.detail for c in report.checks if c.id == "oauth.no_token")
    assert "no Authorization header" in detail and "ACCEPTED" in detail and "Protect" in detail


def test_accepting_any_token_fails_under_oauth(sink: Endpoint, certs_dir: Path) -> None:
    with broken(sink, certs_dir, auth="any") as served:
        report = certify_url(sink, served.url("/webhook"))
    assert report.verdict == "fail"
    assert verdicts(report)["oauth.no_token"] == "pass"
    assert failed(report) == {"oauth.garbage_token": "oauth"}
    tampered = next(c for c in report.checks if c.id == "oauth.tampered_token")
    assert tampered.blocked_by == "oauth.garbage_token"
    # It takes any Bearer header, but a token in the query string is no header at all.
    assert verdicts(report)["oauth.query_token"] == "pass"


def test_accepting_unsigned_tokens_fails_under_oauth(sink: Endpoint, certs_dir: Path) -> None:
    with broken(sink, certs_dir, auth="alg_none_ok") as served:
        report = certify_url(sink, served.url("/webhook"))
    assert report.verdict == "fail"
    assert failed(report) == {"oauth.alg_none": "oauth"}
    detail = next(c.detail for c in report.checks if c.id == "oauth.alg_none")
    assert "alg: none" in detail and "ACCEPTED" in detail


def test_skipping_the_signature_without_a_kid_fails_no_kid(sink: Endpoint, certs_dir: Path) -> None:
    with broken(sink, certs_dir, auth="no_kid_ok") as served:
        report = certify_url(sink, served.url("/webhook"))
    assert failed(report) == {"oauth.no_kid": "oauth"}, explain(report)
    assert "ACCEPTED" in next(c.detail for c in report.checks if c.id == "oauth.no_kid")


class _PlainHandler(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 - the stdlib's naming
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def plain_http() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _PlainHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_plain_http_url_fails_and_sends_nothing(sink: Endpoint, plain_http: int) -> None:
    report = certify_url(sink, f"http://127.0.0.1:{plain_http}/webhook")
    assert report.verdict == "fail"
    assert failed(report) == {"url.scheme": "url"}
    # One root cause, named once: nothing was posted over plain HTTP, every check that would
    # send is blocked by it.
    for check in report.checks:
        if check.requirement in ("https", "json", "delivery", "availability", "robustness"):
            assert (check.verdict, check.blocked_by) == ("skip", "url.scheme"), check
    assert [c.id for c in report.root_causes()] == ["url.scheme"]


def test_https_url_on_a_plain_http_server_fails_under_https(
    sink: Endpoint, plain_http: int
) -> None:
    report = certify_url(sink, f"https://127.0.0.1:{plain_http}/webhook")
    assert report.verdict == "fail"
    assert failed(report)["https.handshake"] == "https"


def test_untrusted_certificate_fails_under_https(sink: Endpoint) -> None:
    # No --ca: the kit's development CA is not trusted by the system store.
    report = run(certify(settings_for(sink, sink.info.url, ca_file=None)))
    assert report.verdict == "fail"
    assert failed(report) == {"https.chain": "https"}


def test_500_on_one_status_fails_that_delivery(sink: Endpoint, certs_dir: Path) -> None:
    with broken(sink, certs_dir, fail_status="deleted") as served:
        report = certify_url(sink, served.url("/webhook"))
    assert report.verdict == "fail"
    assert failed(report) == {"delivery.deleted": "delivery"}
    detail = next(c.detail for c in report.checks if c.id == "delivery.deleted")
    assert "HTTP 500" in detail and "every status must be accepted" in detail


def test_slower_than_the_timeout_fails(sink: Endpoint, certs_dir: Path) -> None:
    with broken(sink, certs_dir, delay=1.5) as served:
        report = certify_url(sink, served.url("/webhook"), timeout=0.5, probes=2)
    assert report.verdict == "fail"
    assert failed(report)["delivery.on-course"] == "delivery"
    assert failed(report)["availability.probes"] == "availability"
    assert "timeout" in next(c.detail for c in report.checks if c.id == "delivery.on-course")


def test_a_redirect_fails_delivery(sink: Endpoint, certs_dir: Path) -> None:
    with broken(sink, certs_dir, redirect=True) as served:
        report = certify_url(sink, served.url("/webhook"))
    assert report.verdict == "fail"
    assert failed(report)["delivery.on-course"] == "delivery"
    assert "redirect" in next(c.detail for c in report.checks if c.id == "delivery.on-course")


def test_rejecting_application_json_fails_under_json(sink: Endpoint, certs_dir: Path) -> None:
    with broken(sink, certs_dir, required_content_type="text/plain") as served:
        report = certify_url(sink, served.url("/webhook"))
    assert report.verdict == "fail"
    assert failed(report) == {"json.content_type": "json", "json.charset": "json"}
    delivery = next(c for c in report.checks if c.id == "delivery.on-course")
    assert delivery.blocked_by == "json.content_type"


def test_intermittent_503_fails_availability(sink: Endpoint, certs_dir: Path) -> None:
    with broken(sink, certs_dir, unavailable_every=4) as served:
        report = certify_url(sink, served.url("/webhook"), probes=8)
    assert report.verdict == "fail"
    assert failed(report)["availability.probes"] == "availability"
    assert "503" in next(c.detail for c in report.checks if c.id == "availability.probes")


def test_wrong_client_secret_fails_oauth_token(sink: Endpoint) -> None:
    report = run(certify(settings_for(sink, sink.info.url, secret="definitely-wrong")))
    assert report.verdict == "fail"
    assert failed(report)["oauth.token"] == "oauth"
    detail = next(c.detail for c in report.checks if c.id == "oauth.token")
    assert "invalid_client" in detail and "client id and secret" in detail
    assert "definitely-wrong" not in str(report.as_json())


def test_unreachable_endpoint_fails_without_crashing(sink: Endpoint) -> None:
    report = certify_url(sink, "https://127.0.0.1:9/webhook")
    assert report.verdict == "fail"
    assert failed(report)["https.handshake"] == "https"


@pytest.mark.parametrize("server", ["uvicorn", "hypercorn"])
def test_the_kits_own_endpoint_refuses_every_forgery(start_endpoint: Any, server: str) -> None:
    """Expiry included: a 2 s token is waited out (1 s leeway) and replayed."""
    sink: Endpoint = start_endpoint(server=server, token_ttl=2)
    report = certify_url(sink, sink.info.url, expiry_wait=10, expiry_leeway=1, probes=1)
    bound = set(binding_judges.CHECK_IDS)
    forgeries = [
        c
        for c in report.checks
        if c.requirement == "oauth" and c.id != "oauth.token" and c.id not in bound
    ]
    got = {c.id: c.verdict for c in forgeries}
    assert set(got.values()) == {"pass"}, explain(report)
    # certify holds neither a DPoP key nor a certificate: nothing is bound, and it says how.
    skips = {c.id: c.detail for c in report.checks if c.id in bound}
    assert {c.verdict for c in report.checks if c.id in bound} == {"skip"}
    assert "--dpop ES256" in skips["oauth.dpop_replay"]
    assert "--client-cert" in skips["oauth.mtls_other_cert"]
    for check_id in ("oauth.alg_confusion", "oauth.expired_token", "oauth.jku", "oauth.x5u"):
        assert "refused with 401" in next(c.detail for c in forgeries if c.id == check_id)


def test_403_warns_and_strict_fails(sink: Endpoint, certs_dir: Path) -> None:
    with broken(sink, certs_dir, refuse_with=403) as served:
        relaxed = certify_url(sink, served.url("/webhook"))
        strict = certify_url(sink, served.url("/webhook"), strict=True)
    assert relaxed.verdict == "pass", explain(relaxed)
    assert verdicts(relaxed)["oauth.no_token"] == "warn"
    assert strict.verdict == "fail"
    no_token = next(c for c in strict.checks if c.id == "oauth.no_token")
    assert (no_token.verdict, no_token.severity) == ("fail", "warn")
    assert strict.as_json()["strict"] is True


def test_insufficient_scope_is_an_oauth_finding(sink: Endpoint, certs_dir: Path) -> None:
    with broken(sink, certs_dir, required_scope="webhook:admin") as served:
        report = certify_url(sink, served.url("/webhook"))
    assert report.verdict == "fail"
    assert failed(report) == {"oauth.valid_token": "oauth"}, explain(report)
    assert "--scope webhook:admin" in next(
        c.detail for c in report.checks if c.id == "oauth.valid_token"
    )
    for check in report.checks:
        if check.requirement in ("json", "delivery", "availability", "robustness"):
            assert check.blocked_by == "oauth.valid_token"


def explain(report: Report) -> str:
    return "\n".join(
        f"{c.verdict} {c.id}: {c.detail}" for c in report.checks if c.verdict != "pass"
    )


def test_robustness_findings_warn_and_never_fail(sink: Endpoint, certs_dir: Path) -> None:
    with broken(sink, certs_dir, reject_duplicates=True, reject_unknown_fields=True) as served:
        report = certify_url(sink, served.url("/webhook"))
    assert report.verdict == "pass", explain(report)
    assert verdicts(report)["robustness.duplicate"] == "warn"
    assert verdicts(report)["robustness.unknown_field"] == "warn"
    assert "409" in next(c.detail for c in report.checks if c.id == "robustness.duplicate")


def test_the_token_url_is_discovered_from_the_issuer(sink: Endpoint) -> None:
    info = sink.info
    settings = CertifySettings(
        info.url,
        OAuthSettings("", info.client_id, info.client_secret),
        issuer=sink.urls.base,
        ca_file=Path(str(info.ca_file)),
    )
    report = run(certify(settings))
    assert report.verdict == "pass", explain(report)
    assert next(c.detail for c in report.checks if c.id == "oauth.token_url") == info.token_url


def test_an_issuer_without_metadata_fails_oauth_token_url(sink: Endpoint, certs_dir: Path) -> None:
    with broken(sink, certs_dir) as served:  # serves no metadata at all
        settings = CertifySettings(
            sink.info.url,
            OAuthSettings("", sink.info.client_id, sink.info.client_secret),
            issuer=served.url(""),
            ca_file=Path(str(sink.info.ca_file)),
        )
        report = run(certify(settings))
    assert failed(report)["oauth.token_url"] == "oauth"
    assert "--token-url" in next(c.detail for c in report.checks if c.id == "oauth.token_url")
    assert verdicts(report)["oauth.token"] == "skip"


def test_soak_passes_a_steady_endpoint(sink: Endpoint) -> None:
    seen: list[tuple[int, int]] = []
    settings = settings_for(sink, sink.info.url, soak=SoakSettings(1.0, rate=10), probes=1)
    report = run(
        certify(settings, soak_progress=lambda done, planned: seen.append((done, planned)))
    )
    soak = next(c for c in report.checks if c.id == "availability.soak")
    assert soak.verdict == "pass", soak.detail
    assert "10/10 answered 2xx in time (uptime 100.00 %)" in soak.detail
    assert "p99" in soak.detail and "max" in soak.detail
    assert seen[-1] == (10, 10)


def test_soak_fails_on_intermittent_errors_and_lists_them(sink: Endpoint, certs_dir: Path) -> None:
    with broken(sink, certs_dir, unavailable_every=5) as served:
        settings = settings_for(
            sink, served.url("/webhook"), soak=SoakSettings(1.0, rate=10), probes=4
        )
        report = run(certify(settings))
    soak = next(c for c in report.checks if c.id == "availability.soak")
    assert soak.verdict == "fail"
    assert "uptime 80.00 %" in soak.detail
    assert soak.detail.count("UTC HTTP 503") == 2
