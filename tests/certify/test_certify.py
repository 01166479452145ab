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
from webhook_kit.certify.model import CertifySettings, Report
from webhook_kit.certify.runner import CHECK_IDS, certify
from webhook_kit.runtime import run
from webhook_kit.sink.runner import Sink
from webhook_kit.testing import serve_app


def certify_url(sink: Sink, url: str, **options: Any) -> Report:
    info = sink.info
    assert info.ca_file is not None
    settings = CertifySettings(
        url,
        info.token_url,
        info.client_id,
        info.client_secret,
        ca_file=Path(info.ca_file),
        **options,
    )
    return run(certify(settings))


def verdicts(report: Report) -> dict[str, str]:
    return {c.id: c.verdict for c in report.checks}


def failed(report: Report) -> dict[str, str]:
    return {c.id: c.requirement for c in report.checks if c.verdict == "fail"}


@pytest.fixture
def sink(start_sink: Any) -> Sink:
    s: Sink = start_sink()
    return s


def broken(sink: Sink, certs_dir: Path, **breakage: Any) -> Any:
    return serve_app(receiver(sink.verifier, Breakage(**breakage)), certs_dir=certs_dir)


def test_the_kits_own_endpoint_passes(sink: Sink) -> None:
    report = certify_url(sink, sink.info.url)
    assert report.verdict == "pass", failed(report)
    assert [c.id for c in report.checks] == list(CHECK_IDS)
    assert verdicts(report)["url.public"] == "warn"  # loopback only
    chain = next(c for c in report.checks if c.id == "https.chain")
    assert "development-only" in chain.detail
    assert sink.info.client_secret not in str(report.as_json())


@pytest.mark.parametrize("server", ["uvicorn", "hypercorn"])
def test_the_example_receiver_passes(sink: Sink, certs_dir: Path, server: str) -> None:
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


def test_a_conforming_test_receiver_passes(sink: Sink, certs_dir: Path) -> None:
    with broken(sink, certs_dir) as served:
        report = certify_url(sink, served.url("/webhook"))
    assert report.verdict == "pass", failed(report)


def test_no_auth_fails_under_oauth(sink: Sink, certs_dir: Path) -> None:
    with broken(sink, certs_dir, auth="none") as served:
        report = certify_url(sink, served.url("/webhook"))
    assert report.verdict == "fail"
    assert failed(report)["oauth.no_token"] == "oauth"
    assert {"oauth.garbage_token", "oauth.tampered_token", "oauth.query_token"} <= set(
        failed(report)
    )
    detail = next(c.detail for c in report.checks if c.id == "oauth.no_token")
    assert "no Authorization header" in detail and "ACCEPTED" in detail and "Protect" in detail


def test_accepting_any_token_fails_under_oauth(sink: Sink, certs_dir: Path) -> None:
    with broken(sink, certs_dir, auth="any") as served:
        report = certify_url(sink, served.url("/webhook"))
    assert report.verdict == "fail"
    assert verdicts(report)["oauth.no_token"] == "pass"
    assert failed(report)["oauth.garbage_token"] == "oauth"
    assert failed(report)["oauth.tampered_token"] == "oauth"


def test_accepting_unsigned_tokens_fails_under_oauth(sink: Sink, certs_dir: Path) -> None:
    with broken(sink, certs_dir, auth="alg_none_ok") as served:
        report = certify_url(sink, served.url("/webhook"))
    assert report.verdict == "fail"
    assert failed(report) == {"oauth.alg_none": "oauth"}
    detail = next(c.detail for c in report.checks if c.id == "oauth.alg_none")
    assert "alg: none" in detail and "ACCEPTED" in detail


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


def test_plain_http_url_fails_and_sends_nothing(sink: Sink, plain_http: int) -> None:
    report = certify_url(sink, f"http://127.0.0.1:{plain_http}/webhook")
    assert report.verdict == "fail"
    assert failed(report)["url.scheme"] == "url"
    assert failed(report)["https.handshake"] == "https"
    # Nothing was posted over plain HTTP: every check that would send is skipped.
    for check in report.checks:
        if check.requirement in ("json", "delivery", "availability", "robustness"):
            assert check.verdict == "skip"


def test_https_url_on_a_plain_http_server_fails_under_https(sink: Sink, plain_http: int) -> None:
    report = certify_url(sink, f"https://127.0.0.1:{plain_http}/webhook")
    assert report.verdict == "fail"
    assert failed(report)["https.handshake"] == "https"


def test_untrusted_certificate_fails_under_https(sink: Sink) -> None:
    info = sink.info
    settings = CertifySettings(info.url, info.token_url, info.client_id, info.client_secret)
    report = run(certify(settings))  # no --ca: the kit's development CA is not trusted
    assert report.verdict == "fail"
    assert failed(report)["https.chain"] == "https"


def test_500_on_one_status_fails_that_delivery(sink: Sink, certs_dir: Path) -> None:
    with broken(sink, certs_dir, fail_status="deleted") as served:
        report = certify_url(sink, served.url("/webhook"))
    assert report.verdict == "fail"
    assert failed(report) == {"delivery.deleted": "delivery"}
    detail = next(c.detail for c in report.checks if c.id == "delivery.deleted")
    assert "HTTP 500" in detail and "every status must be accepted" in detail


def test_slower_than_the_timeout_fails(sink: Sink, certs_dir: Path) -> None:
    with broken(sink, certs_dir, delay=1.5) as served:
        report = certify_url(sink, served.url("/webhook"), timeout=0.5, probes=2)
    assert report.verdict == "fail"
    assert failed(report)["delivery.on-course"] == "delivery"
    assert failed(report)["availability.probes"] == "availability"
    assert "timeout" in next(c.detail for c in report.checks if c.id == "delivery.on-course")


def test_a_redirect_fails_delivery(sink: Sink, certs_dir: Path) -> None:
    with broken(sink, certs_dir, redirect=True) as served:
        report = certify_url(sink, served.url("/webhook"))
    assert report.verdict == "fail"
    assert failed(report)["delivery.on-course"] == "delivery"
    assert "redirect" in next(c.detail for c in report.checks if c.id == "delivery.on-course")


def test_rejecting_application_json_fails_under_json(sink: Sink, certs_dir: Path) -> None:
    with broken(sink, certs_dir, required_content_type="text/plain") as served:
        report = certify_url(sink, served.url("/webhook"))
    assert report.verdict == "fail"
    assert failed(report)["json.content_type"] == "json"
    assert failed(report)["json.charset"] == "json"


def test_intermittent_503_fails_availability(sink: Sink, certs_dir: Path) -> None:
    with broken(sink, certs_dir, unavailable_every=4) as served:
        report = certify_url(sink, served.url("/webhook"), probes=8)
    assert report.verdict == "fail"
    assert failed(report)["availability.probes"] == "availability"
    assert "503" in next(c.detail for c in report.checks if c.id == "availability.probes")


def test_wrong_client_secret_fails_oauth_token(sink: Sink) -> None:
    info = sink.info
    assert info.ca_file is not None
    settings = CertifySettings(
        info.url, info.token_url, info.client_id, "definitely-wrong", ca_file=Path(info.ca_file)
    )
    report = run(certify(settings))
    assert report.verdict == "fail"
    assert failed(report)["oauth.token"] == "oauth"
    assert "definitely-wrong" not in str(report.as_json())


def test_unreachable_endpoint_fails_without_crashing(sink: Sink) -> None:
    report = certify_url(sink, "https://127.0.0.1:9/webhook")
    assert report.verdict == "fail"
    assert failed(report)["https.handshake"] == "https"
