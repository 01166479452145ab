"""certify names each TLS cause precisely, once, and blocks every check that needs a connection.

Each server here is a real TLS listener on loopback, configured with exactly one defect."""

from __future__ import annotations

import datetime
import socket
import ssl
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest
import trustme

from tests.certify.test_certify import certify_url, failed
from tests.delivery.hostile import accepting
from webhook_kit.certify.model import Report
from webhook_kit.endpoint.service import Endpoint

# Full certify runs against live endpoints with hand-made certificate chains.
pytestmark = pytest.mark.slow

CONNECTION_CHECKS = ("oauth.no_token", "json.content_type", "delivery.on-course")


@contextmanager
def tls_server(context: ssl.SSLContext) -> Iterator[int]:
    """Completes (or fails) the handshake of each connection; certify sends nothing more once
    the handshake is judged bad."""

    def handle(conn: socket.socket) -> None:
        with suppress(OSError), conn, context.wrap_socket(conn, server_side=True) as tls:
            tls.settimeout(5)
            tls.recv(1)

    with accepting(handle) as port:
        yield port


def server_context(cert: trustme.LeafCert, *, full_chain: bool = True) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    if full_chain:
        cert.configure_cert(ctx)
    else:
        with cert.private_key_pem.tempfile() as key, cert.cert_chain_pems[0].tempfile() as leaf:
            ctx.load_cert_chain(leaf, key)
    return ctx


def bundle(tmp_path: Path, certs_dir: Path, *roots: trustme.CA) -> Path:
    """The kit's CA (for the token endpoint) plus the test's own roots."""
    path = tmp_path / "bundle.pem"
    path.write_bytes(
        (certs_dir / "ca.pem").read_bytes() + b"".join(r.cert_pem.bytes() for r in roots)
    )
    return path


def check(report: Report, check_id: str) -> str:
    return next(c.detail for c in report.checks if c.id == check_id)


def assert_one_root_cause(report: Report, cause: str) -> None:
    assert report.verdict == "fail"
    assert failed(report) == {cause: "https"}, failed(report)
    for check_id in CONNECTION_CHECKS:
        result = next(c for c in report.checks if c.id == check_id)
        assert (result.verdict, result.blocked_by) == ("skip", cause)
    assert [c.id for c in report.root_causes()] == [cause]


@pytest.fixture
def sink(start_endpoint: object) -> Endpoint:
    s: Endpoint = start_endpoint()  # type: ignore[operator]
    return s


def test_self_signed(sink: Endpoint, certs_dir: Path, tmp_path: Path) -> None:
    lonely = trustme.CA()  # its own certificate, served as the leaf: self-signed
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with lonely.cert_pem.tempfile() as cert, lonely.private_key_pem.tempfile() as key:
        ctx.load_cert_chain(cert, key)
    with tls_server(ctx) as port:
        report = certify_url(
            sink, f"https://127.0.0.1:{port}/webhook", ca_file=bundle(tmp_path, certs_dir)
        )
    assert_one_root_cause(report, "https.chain")
    assert "self-signed" in check(report, "https.chain")


def test_leaf_without_its_intermediate(sink: Endpoint, certs_dir: Path, tmp_path: Path) -> None:
    root = trustme.CA()
    leaf = root.create_child_ca().issue_cert("127.0.0.1")
    with tls_server(server_context(leaf, full_chain=False)) as port:
        report = certify_url(
            sink, f"https://127.0.0.1:{port}/webhook", ca_file=bundle(tmp_path, certs_dir, root)
        )
    assert_one_root_cause(report, "https.chain")
    detail = check(report, "https.chain")
    assert "incomplete chain" in detail and "intermediate" in detail and "AIA" in detail


def test_the_same_chain_complete_passes_https(
    sink: Endpoint, certs_dir: Path, tmp_path: Path
) -> None:
    root = trustme.CA()
    leaf = root.create_child_ca().issue_cert("127.0.0.1")
    with tls_server(server_context(leaf)) as port:
        report = certify_url(
            sink, f"https://127.0.0.1:{port}/webhook", ca_file=bundle(tmp_path, certs_dir, root)
        )
    https = {c.id: c.verdict for c in report.checks if c.requirement == "https"}
    assert set(https.values()) == {"pass"}, https


def test_unknown_ca(sink: Endpoint, certs_dir: Path, tmp_path: Path) -> None:
    stranger = trustme.CA()
    leaf = stranger.create_child_ca().issue_cert("127.0.0.1")
    with tls_server(server_context(leaf)) as port:
        report = certify_url(
            sink, f"https://127.0.0.1:{port}/webhook", ca_file=bundle(tmp_path, certs_dir)
        )
    assert_one_root_cause(report, "https.chain")
    assert "unknown CA" in check(report, "https.chain")


def test_expired(sink: Endpoint, certs_dir: Path, tmp_path: Path) -> None:
    root = trustme.CA()
    now = datetime.datetime.now(datetime.UTC)
    leaf = root.issue_cert(
        "127.0.0.1",
        not_before=now - datetime.timedelta(days=30),
        not_after=now - datetime.timedelta(days=1),
    )
    with tls_server(server_context(leaf)) as port:
        report = certify_url(
            sink, f"https://127.0.0.1:{port}/webhook", ca_file=bundle(tmp_path, certs_dir, root)
        )
    assert_one_root_cause(report, "https.expiry")
    assert "expired" in check(report, "https.expiry")


def test_hostname_mismatch(sink: Endpoint, certs_dir: Path, tmp_path: Path) -> None:
    root = trustme.CA()
    leaf = root.issue_cert("hooks.example.test")
    with tls_server(server_context(leaf)) as port:
        report = certify_url(
            sink, f"https://127.0.0.1:{port}/webhook", ca_file=bundle(tmp_path, certs_dir, root)
        )
    assert_one_root_cause(report, "https.hostname")
    assert "does not name 127.0.0.1" in check(report, "https.hostname")


def test_tls_1_1_only(sink: Endpoint, certs_dir: Path, tmp_path: Path) -> None:
    root = trustme.CA()
    ctx = server_context(root.issue_cert("127.0.0.1"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.minimum_version = ssl.TLSVersion.TLSv1
        ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    ctx.set_ciphers("ALL:@SECLEVEL=0")
    with tls_server(ctx) as port:
        report = certify_url(
            sink, f"https://127.0.0.1:{port}/webhook", ca_file=bundle(tmp_path, certs_dir, root)
        )
    assert_one_root_cause(report, "https.tls_version")
    detail = check(report, "https.tls_version")
    assert "TLSv1.1" in detail and "TLS 1.2 or later" in detail
    assert "is the endpoint up" not in str(report.as_json())
