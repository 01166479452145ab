"""certify's pure judges, table by table: every verdict branch, without a server.

Each check gathers facts (I/O) and hands them to a pure judge. These tables pin the judges to the
severity policy: ``fail`` when a documented requirement is violated, ``warn`` for hardening
advice that lets nobody in, ``skip`` (with ``blocked_by``) when an earlier failure stops a check.
A false pass is the worst defect certify can have, so the tables name the fail branches first.
"""

from __future__ import annotations

import datetime
import json
import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, cast

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from webhook_kit.certify import pipeline
from webhook_kit.certify import report as reports
from webhook_kit.certify.checks import (
    availability,
    binding_judges,
    delivery,
    https,
    json_body,
    oauth_token,
    robustness,
    url,
)
from webhook_kit.certify.checks import oauth_judges as oauth
from webhook_kit.certify.checks.availability import Sample
from webhook_kit.certify.checks.https import TlsFacts
from webhook_kit.certify.checks.oauth_judges import Answer
from webhook_kit.certify.checks.oauth_token import Refusal, TokenFacts
from webhook_kit.certify.context import Context
from webhook_kit.certify.model import (
    CertifySettings,
    CheckResult,
    Report,
    Requirement,
    SoakSettings,
    Verdict,
    strictly,
)
from webhook_kit.delivery.outcome import AttemptResult, Outcome
from webhook_kit.errors import ConfigError, TokenFetchError
from webhook_kit.oauth.client import OAuthSettings
from webhook_kit.serving.loop import run
from webhook_kit.storage.rows import AttemptRow

#: Control characters that must never reach a terminal, a JSON consumer or an XML parser raw.
RAW_CONTROLS = ("\x1b", "\x00", "\x07")


def verdicts(results: Sequence[CheckResult]) -> dict[str, str]:
    return {r.id: r.verdict for r in results}


def blockers(results: Sequence[CheckResult]) -> dict[str, str | None]:
    return {r.id: r.blocked_by for r in results if r.verdict == "skip"}


def by_id(results: Sequence[CheckResult]) -> dict[str, CheckResult]:
    return {r.id: r for r in results}


def assert_consistent(results: Sequence[CheckResult], requirement: str) -> None:
    """What every judge owes the report: its requirement, a severity that matches the verdict,
    and a skip that names its blocker in words too."""
    for r in results:
        assert r.requirement == requirement
        assert r.severity == (r.verdict if r.verdict in ("fail", "warn") else None)
        if r.blocked_by is not None:
            assert r.verdict == "skip"
            assert r.detail == f"blocked by {r.blocked_by}"


# --- url ------------------------------------------------------------------------------------

ALL_BLOCKED_BY_ABSOLUTE = {
    "url.absolute": "fail",
    "url.scheme": "skip",
    "url.resolves": "skip",
    "url.public": "skip",
}
PUBLIC_V4 = ("93.184.215.14",)


@pytest.mark.parametrize(
    ("target", "addresses", "error", "expected", "blocked", "says"),
    [
        pytest.param(
            "hooks.example.com/webhook",
            None,
            None,
            ALL_BLOCKED_BY_ABSOLUTE,
            dict.fromkeys(("url.scheme", "url.resolves", "url.public"), "url.absolute"),
            {"url.absolute": "not an absolute URL"},
            id="no-scheme",
        ),
        pytest.param(
            "/webhook",
            None,
            None,
            ALL_BLOCKED_BY_ABSOLUTE,
            dict.fromkeys(("url.scheme", "url.resolves", "url.public"), "url.absolute"),
            {"url.absolute": "https://hooks.example.com/webhook"},
            id="path-only",
        ),
        pytest.param(
            "https://",
            None,
            None,
            ALL_BLOCKED_BY_ABSOLUTE,
            dict.fromkeys(("url.scheme", "url.resolves", "url.public"), "url.absolute"),
            {},
            id="no-host",
        ),
        pytest.param(
            "https://hooks.example.com:99999/webhook",
            None,
            None,
            ALL_BLOCKED_BY_ABSOLUTE,
            dict.fromkeys(("url.scheme", "url.resolves", "url.public"), "url.absolute"),
            {},
            id="port-out-of-range",
        ),
        pytest.param(
            "http://hooks.example.com/webhook",
            PUBLIC_V4,
            None,
            {"url.absolute": "pass", "url.scheme": "fail", "url.resolves": "pass"},
            {},
            {"url.scheme": "scheme is http", "url.absolute": "path /webhook"},
            id="http-scheme",
        ),
        pytest.param(
            "ftp://hooks.example.com/webhook",
            PUBLIC_V4,
            None,
            {"url.scheme": "fail"},
            {},
            {"url.scheme": "HTTPS"},
            id="ftp-scheme",
        ),
        pytest.param(
            "https://nowhere.invalid/webhook",
            None,
            "Name or service not known",
            {"url.absolute": "pass", "url.scheme": "pass", "url.resolves": "fail"},
            {"url.public": "url.resolves"},
            {"url.resolves": "nowhere.invalid does not resolve (Name or service not known)"},
            id="resolve-error",
        ),
        pytest.param(
            "https://hooks.example.com/webhook",
            (),
            None,
            {"url.resolves": "fail"},
            {"url.public": "url.resolves"},
            {"url.resolves": "no address"},
            id="no-addresses",
        ),
        pytest.param(
            "https://localhost:8443/webhook",
            ("127.0.0.1", "::1"),
            None,
            {"url.resolves": "pass", "url.public": "warn"},
            {},
            {"url.public": "127.0.0.1, ::1", "url.resolves": "127.0.0.1, ::1"},
            id="loopback",
        ),
        pytest.param(
            "https://intranet.example/webhook",
            ("10.0.0.5", "192.168.1.2", "172.16.0.1"),
            None,
            {"url.public": "warn"},
            {},
            {"url.public": "a sender in the cloud cannot reach"},
            id="private-v4",
        ),
        pytest.param(
            "https://intranet.example/webhook",
            ("fe80::1%eth0", "fd00::1"),
            None,
            {"url.public": "warn"},
            {},
            {},
            id="link-local-and-ula-v6",
        ),
        pytest.param(
            "https://mapped.example/webhook",
            ("::ffff:127.0.0.1",),
            None,
            {"url.public": "warn"},
            {},
            {},
            id="v4-mapped-loopback",
        ),
        pytest.param(
            "https://mapped.example/webhook",
            ("::ffff:8.8.8.8",),
            None,
            {"url.public": "pass"},
            {},
            {},
            id="v4-mapped-public",
        ),
        pytest.param(
            "https://hooks.example.com/webhook",
            ("10.0.0.1", "8.8.8.8"),
            None,
            {"url.public": "pass"},
            {},
            {},
            id="one-public-among-private",
        ),
        pytest.param(
            "https://[2001:4860:4860::8888]/webhook",
            ("2001:4860:4860::8888",),
            None,
            {
                "url.absolute": "pass",
                "url.scheme": "pass",
                "url.resolves": "pass",
                "url.public": "pass",
            },
            {},
            {"url.public": "reachable from the internet"},
            id="public-v6",
        ),
    ],
)
def test_url_judge(
    target: str,
    addresses: tuple[str, ...] | None,
    error: str | None,
    expected: dict[str, str],
    blocked: dict[str, str],
    says: dict[str, str],
) -> None:
    results = url.judge(target, addresses, error)
    assert [r.id for r in results] == list(url.CHECK_IDS)
    got = verdicts(results)
    assert {k: got[k] for k in expected} == expected
    assert blockers(results) == blocked
    details = by_id(results)
    for check_id, phrase in says.items():
        assert phrase in details[check_id].detail
    assert_consistent(results, "url")


# --- https ----------------------------------------------------------------------------------

HOST = "hooks.example.com"
DAY = 86400.0
GOOD: dict[str, Any] = {
    "version": "TLSv1.3",
    "cipher": "TLS_AES_256_GCM_SHA384",
    "seconds_left": 90 * DAY,
    "not_after": "2027-03-01 12:00 UTC",
}
HTTPS_REST = ("https.tls_version", "https.chain", "https.hostname", "https.expiry")


def tls(**facts: Any) -> TlsFacts:
    return TlsFacts(HOST, 443, **facts)


def good(**facts: Any) -> TlsFacts:
    return tls(**{**GOOD, **facts})


@pytest.mark.parametrize(
    ("facts", "expected", "blocked", "says"),
    [
        pytest.param(
            tls(connect_error="Connection refused"),
            {"https.handshake": "fail"},
            dict.fromkeys(HTTPS_REST, "https.handshake"),
            {"https.handshake": f"cannot connect to {HOST}:443 (Connection refused)"},
            id="connect-error",
        ),
        pytest.param(
            tls(connect_error="timed out"),
            {"https.handshake": "fail"},
            dict.fromkeys(HTTPS_REST, "https.handshake"),
            {"https.handshake": "timed out"},
            id="connect-timeout",
        ),
        pytest.param(
            tls(handshake_error="UNSUPPORTED_PROTOCOL", legacy_version="TLSv1.1"),
            {"https.handshake": "pass", "https.tls_version": "fail"},
            dict.fromkeys(("https.chain", "https.hostname", "https.expiry"), "https.tls_version"),
            {"https.tls_version": "offers only TLSv1.1"},
            id="legacy-tls-1.1",
        ),
        pytest.param(
            tls(handshake_error="UNSUPPORTED_PROTOCOL", legacy_version="TLSv1"),
            {"https.handshake": "pass", "https.tls_version": "fail"},
            dict.fromkeys(("https.chain", "https.hostname", "https.expiry"), "https.tls_version"),
            {"https.tls_version": "offers only TLSv1;"},
            id="legacy-tls-1.0",
        ),
        pytest.param(
            tls(handshake_error="SSLV3_ALERT_HANDSHAKE_FAILURE"),
            {"https.handshake": "fail"},
            dict.fromkeys(HTTPS_REST, "https.handshake"),
            {"https.handshake": "failed (SSLV3_ALERT_HANDSHAKE_FAILURE)"},
            id="other-handshake-error",
        ),
        pytest.param(
            good(
                verify_code=10,
                verify_message="certificate has expired",
                seconds_left=-3 * DAY,
                not_after="2026-11-28 00:00 UTC",
            ),
            {"https.handshake": "pass", "https.tls_version": "pass", "https.expiry": "fail"},
            dict.fromkeys(("https.chain", "https.hostname"), "https.expiry"),
            {"https.expiry": "the certificate expired (2026-11-28 00:00 UTC); renew it"},
            id="expired",
        ),
        pytest.param(
            good(verify_code=9, verify_message="certificate is not yet valid"),
            {"https.expiry": "fail"},
            dict.fromkeys(("https.chain", "https.hostname"), "https.expiry"),
            {"https.expiry": "is not valid yet"},
            id="not-yet-valid",
        ),
        pytest.param(
            good(verify_code=62, verify_message="Hostname mismatch, certificate is not valid"),
            {"https.chain": "pass", "https.hostname": "fail", "https.expiry": "pass"},
            {},
            {"https.hostname": f"does not name {HOST} (Hostname mismatch"},
            id="hostname-mismatch",
        ),
        pytest.param(
            good(verify_code=64, verify_message="IP address mismatch"),
            {"https.chain": "pass", "https.hostname": "fail"},
            {},
            {"https.hostname": "IP address mismatch"},
            id="ip-mismatch",
        ),
        pytest.param(
            good(verify_code=18, verify_message="self-signed certificate"),
            {"https.handshake": "pass", "https.chain": "fail", "https.expiry": "pass"},
            {"https.hostname": "https.chain"},
            {"https.chain": "self-signed"},
            id="self-signed-code-18",
        ),
        pytest.param(
            good(verify_code=26, verify_message="unsuitable certificate purpose"),
            {"https.chain": "fail"},
            {"https.hostname": "https.chain"},
            {"https.chain": "does not verify against the system trust store: unsuitable"},
            id="other-verify-code",
        ),
        pytest.param(
            good(),
            dict.fromkeys(("https.handshake", *HTTPS_REST), "pass"),
            {},
            {
                "https.handshake": "TLSv1.3, TLS_AES_256_GCM_SHA384",
                "https.chain": "verified against the system trust store",
                "https.hostname": f"valid for {HOST}",
                "https.expiry": "valid for 90 more days",
            },
            id="success-system-store",
        ),
        pytest.param(
            good(version="TLSv1.2", dev_only=True, ca_file="/tmp/dev-ca.pem"),
            dict.fromkeys(("https.handshake", *HTTPS_REST), "pass"),
            {},
            {"https.chain": "development-only pass", "https.tls_version": "TLSv1.2"},
            id="success-dev-only",
        ),
        pytest.param(
            good(seconds_left=5 * DAY),
            {"https.chain": "pass", "https.expiry": "warn"},
            {},
            {"https.expiry": "expires in 5.0 days (2027-03-01 12:00 UTC); renew it"},
            id="expiry-soon",
        ),
        pytest.param(
            good(seconds_left=14 * DAY + 60),
            {"https.expiry": "pass"},
            {},
            {},
            id="expiry-just-outside-the-warning",
        ),
        pytest.param(
            good(seconds_left=None, not_after=None),
            {"https.chain": "pass", "https.expiry": "warn"},
            {},
            {"https.expiry": "could not read the certificate's expiry"},
            id="expiry-unreadable",
        ),
    ],
)
def test_https_judge(
    facts: TlsFacts, expected: dict[str, str], blocked: dict[str, str], says: dict[str, str]
) -> None:
    results = https.judge(facts)
    assert [r.id for r in results] == list(https.CHECK_IDS)
    got = verdicts(results)
    assert {k: got[k] for k in expected} == expected
    assert blockers(results) == blocked
    for check_id, phrase in says.items():
        assert phrase in by_id(results)[check_id].detail
    # One cause fails; the other verdicts are passes, warnings or skips it caused.
    assert sum(r.verdict == "fail" for r in results) <= 1
    assert https.blocker_of(results) == next((k for k, v in got.items() if v == "fail"), None)
    assert_consistent(results, "https")


def test_https_expiry_warning_threshold_is_a_parameter() -> None:
    facts = good(seconds_left=20 * DAY)
    assert verdicts(https.judge(facts))["https.expiry"] == "pass"
    warned = by_id(https.judge(facts, warn_days=30))["https.expiry"]
    assert warned.verdict == "warn"
    assert "warning below 30 days" in warned.detail


def test_https_verify_error_without_a_second_look_blames_the_certificate() -> None:
    results = by_id(https.judge(tls(verify_code=18, verify_message="self-signed certificate")))
    assert results["https.tls_version"].verdict != "fail"
    assert results["https.chain"].verdict == "fail"
    assert results["https.hostname"].blocked_by == "https.chain"


@dataclass(frozen=True)
class Pki:
    """A root, an intermediate and a leaf, as DER, as a server would send them."""

    root: bytes
    intermediate: bytes
    leaf: bytes
    root_name: str
    intermediate_name: str


def _der(pem: bytes) -> bytes:
    return x509.load_pem_x509_certificate(pem).public_bytes(Encoding.DER)


@pytest.fixture(scope="module")
def pki() -> Pki:
    root = trustme.CA(organization_name="Judges Root")
    intermediate = root.create_child_ca()
    leaf = intermediate.issue_cert(HOST, common_name=HOST)
    leaf_pem, intermediate_pem = (blob.bytes() for blob in leaf.cert_chain_pems[:2])
    root_pem = root.cert_pem.bytes()
    # trustme's CA names have no CN, so the judge shows them as RFC 4514 strings.
    return Pki(
        root=_der(root_pem),
        intermediate=_der(intermediate_pem),
        leaf=_der(leaf_pem),
        root_name=x509.load_pem_x509_certificate(root_pem).subject.rfc4514_string(),
        intermediate_name=x509.load_pem_x509_certificate(intermediate_pem).subject.rfc4514_string(),
    )


@pytest.mark.parametrize(
    ("code", "sent", "cause", "names"),
    [
        pytest.param(18, ("root",), "self-signed", (), id="code-18"),
        pytest.param(20, ("root",), "self-signed", (), id="self-issued-1-cert-code-20"),
        pytest.param(21, ("root",), "self-signed", (), id="self-issued-1-cert-code-21"),
        pytest.param(
            19,
            ("leaf", "intermediate", "root"),
            "unknown CA: the chain ends at the root",
            ("root_name",),
            id="self-signed-root-in-chain-19",
        ),
        pytest.param(
            20,
            ("leaf",),
            "incomplete chain: the server sends only its leaf certificate, issued by",
            ("intermediate_name",),
            id="leaf-only-20",
        ),
        pytest.param(
            21,
            ("leaf",),
            "incomplete chain",
            ("intermediate_name",),
            id="leaf-only-21",
        ),
        pytest.param(
            20,
            ("leaf", "intermediate"),
            "unknown CA: the chain's last certificate",
            ("intermediate_name", "root_name"),
            id="two-certs-20",
        ),
        pytest.param(
            21,
            ("leaf", "intermediate"),
            "unknown CA",
            ("intermediate_name", "root_name"),
            id="two-certs-21",
        ),
        pytest.param(20, (), "does not verify against", (), id="nothing-seen"),
    ],
)
def test_https_chain_cause(
    pki: Pki, code: int, sent: tuple[str, ...], cause: str, names: tuple[str, ...]
) -> None:
    chain = tuple(getattr(pki, part) for part in sent)
    results = by_id(
        https.judge(good(verify_code=code, verify_message="unable to verify", chain=chain))
    )
    chain_result = results["https.chain"]
    assert chain_result.verdict == "fail"
    assert cause in chain_result.detail
    for name in names:
        assert f"'{getattr(pki, name)}'" in chain_result.detail
    assert results["https.hostname"].blocked_by == "https.chain"
    assert results["https.handshake"].verdict == "pass"


def test_https_chain_names_the_ca_file_as_a_trust_source(pki: Pki) -> None:
    facts = good(verify_code=20, chain=(pki.leaf,), ca_file="/etc/dev/ca.pem")
    detail = by_id(https.judge(facts))["https.chain"].detail
    assert "the system trust store or /etc/dev/ca.pem" in detail


def test_https_chain_with_unreadable_certificates_does_not_crash() -> None:
    facts = good(verify_code=20, verify_message="unable to get issuer", chain=(b"not DER",))
    result = by_id(https.judge(facts))["https.chain"]
    assert result.verdict == "fail"
    assert "unable to get issuer" in result.detail


# --- oauth, sender side ---------------------------------------------------------------------

TOKEN_URL = "https://auth.example.com/oauth/token"


def refused(error: str | None, description: str | None = None) -> Refusal:
    return Refusal("the token endpoint answered 400", error, description)


@pytest.mark.parametrize(
    ("facts", "verdict", "says"),
    [
        pytest.param(
            TokenFacts("client_secret_basic", jwt=True),
            "pass",
            ("client credentials (client_secret_basic) got a JWT",),
            id="jwt",
        ),
        pytest.param(
            TokenFacts("client_secret_post"),
            "pass",
            ("(client_secret_post) got an opaque token",),
            id="opaque",
        ),
        pytest.param(
            TokenFacts(
                "client_secret_basic",
                Refusal("the token endpoint answered 401", "invalid_client", "no basic auth"),
                fallback="client_secret_post",
                jwt=True,
            ),
            "warn",
            (
                "client_secret_basic was refused (the token endpoint answered 401: no basic auth)",
                "client_secret_post works and got a JWT",
                "--auth-method client_secret_post",
            ),
            id="fallback-to-post",
        ),
        pytest.param(
            TokenFacts("client_secret_post", refused("invalid_client"), "client_secret_basic"),
            "warn",
            ("--auth-method client_secret_basic", "an opaque token"),
            id="fallback-to-basic",
        ),
        pytest.param(
            TokenFacts("client_secret_basic", refused("invalid_request", "audience is required")),
            "fail",
            ("requires an audience (or resource): pass --audience",),
            id="audience-required",
        ),
        pytest.param(
            TokenFacts("client_secret_basic", refused("invalid_request", "missing aud")),
            "fail",
            ("pass --audience",),
            id="aud-word",
        ),
        pytest.param(
            TokenFacts("client_secret_basic", refused("invalid_request", "resource is required")),
            "fail",
            ("pass --audience",),
            id="resource-required",
        ),
        pytest.param(
            TokenFacts("client_secret_basic", refused("invalid_target")),
            "fail",
            ("pass --audience",),
            id="invalid-target",
        ),
        pytest.param(
            TokenFacts(
                "client_secret_basic",
                refused("access_denied", "audience not allowed"),
                audience_given=True,
            ),
            "fail",
            ("the endpoint refused the audience: check --audience",),
            id="audience-given-but-refused",
        ),
        pytest.param(
            TokenFacts("client_secret_basic", refused("invalid_scope", "unknown audience scope")),
            "fail",
            ("the scope was refused: pass --scope",),
            id="invalid-scope-wins-over-audience-words",
        ),
        pytest.param(
            TokenFacts("client_secret_basic", refused("invalid_client", "bad credentials")),
            "fail",
            ("check the client id and secret", "--auth-method client_secret_basic or"),
            id="invalid-client",
        ),
        pytest.param(
            TokenFacts("client_secret_basic", refused("unauthorized_client")),
            "fail",
            ("allow the client credentials grant for this client",),
            id="unauthorized-client",
        ),
        pytest.param(
            TokenFacts("client_secret_basic", refused("unsupported_grant_type")),
            "fail",
            ("allow the client credentials grant for this client",),
            id="unsupported-grant",
        ),
        pytest.param(
            TokenFacts("client_secret_basic", Refusal("the token endpoint answered 500")),
            "fail",
            (
                "the token endpoint answered 500. check the client id and secret, and that the "
                "endpoint allows the client credentials grant",
            ),
            id="default",
        ),
    ],
)
def test_judge_token(facts: TokenFacts, verdict: Verdict, says: tuple[str, ...]) -> None:
    result = oauth_token.judge_token(facts, TOKEN_URL)
    assert (result.id, result.verdict) == ("oauth.token", verdict)
    for phrase in says:
        assert phrase in result.detail
    if verdict == "fail":
        assert f"POST {TOKEN_URL} (grant_type=client_credentials, {facts.method}) failed" in (
            result.detail
        )
    assert_consistent([result], "oauth")


def test_refusal_of_a_token_fetch_error_keeps_code_and_description() -> None:
    refusal = Refusal.of(
        TokenFetchError("token endpoint answered 400", error="invalid_scope", description="nope")
    )
    assert refusal == Refusal("token endpoint answered 400", "invalid_scope", "nope")
    assert refusal.words() == "token endpoint answered 400: nope"
    assert Refusal("answered 401").words() == "answered 401"


@pytest.mark.parametrize(
    ("refusal", "verdict"),
    [
        pytest.param(None, "fail", id="token-for-a-wrong-secret"),
        pytest.param(Refusal("token endpoint answered 401", "invalid_client"), "pass", id="ok"),
    ],
)
def test_judge_wrong_secret(refusal: Refusal | None, verdict: Verdict) -> None:
    result = oauth_token.judge_wrong_secret(refusal)
    assert (result.id, result.verdict) == ("oauth.wrong_secret", verdict)
    if refusal is None:
        assert "WRONG client secret" in result.detail
    else:
        assert refusal.message in result.detail
    assert_consistent([result], "oauth")


@pytest.mark.parametrize(
    ("token_url", "error", "verdict", "says"),
    [
        pytest.param(TOKEN_URL, None, "pass", TOKEN_URL, id="https"),
        pytest.param("HTTPS://auth.example.com/token", None, "pass", "", id="https-upper"),
        pytest.param("http://auth.example.com/token", None, "fail", "in clear", id="http"),
        pytest.param("https:///token", None, "fail", "with a host", id="https-no-host"),
        pytest.param("", "no usable metadata: x", "fail", "no usable metadata: x", id="discovery"),
        pytest.param(
            "http://auth.example.com/\x1b[2Jtoken", None, "fail", "\\x1b[2J", id="escaped"
        ),
    ],
)
def test_judge_token_url(token_url: str, error: str | None, verdict: Verdict, says: str) -> None:
    result = oauth_token.judge_token_url(token_url, error)
    assert (result.id, result.verdict) == ("oauth.token_url", verdict)
    assert says in result.detail
    if error is not None:
        assert "--token-url" in result.detail
    assert "\x1b" not in result.detail
    assert_consistent([result], "oauth")


# --- oauth, receiver side -------------------------------------------------------------------

NO_ANSWER = Answer(None, "timeout: no answer within 10s")


def answers(*statuses: int | None) -> list[tuple[str, Answer]]:
    return [
        (f"variant {n}", Answer(s) if s is not None else NO_ANSWER) for n, s in enumerate(statuses)
    ]


@pytest.mark.parametrize(
    ("given", "fetched", "verdict", "says"),
    [
        pytest.param(answers(401), False, "pass", "refused with 401 (1 variant)", id="401"),
        pytest.param(answers(*[401] * 8), False, "pass", "(8 variants)", id="all-401"),
        pytest.param(
            answers(401, 401, 200, 401), False, "fail", "ACCEPTED (variant 2 -> HTTP 200)", id="2xx"
        ),
        pytest.param(answers(204), False, "fail", "variant 0 -> HTTP 204", id="204"),
        pytest.param(answers(500, 200), False, "fail", "variant 1 -> HTTP 200", id="2xx-beats-5xx"),
        pytest.param(
            answers(*[200] * 6), False, "fail", "variant 3 -> HTTP 200 (and 2 more)", id="many"
        ),
        pytest.param(answers(403, 403), False, "warn", "refused with HTTP 403; RFC 6750", id="403"),
        pytest.param(
            answers(401, 403), False, "warn", "refused with HTTP 401, HTTP 403", id="401-and-403"
        ),
        pytest.param(answers(500), False, "warn", "errors instead of refusing", id="500"),
        pytest.param(
            answers(401, 502), False, "warn", "answered HTTP 401, HTTP 502", id="some-5xx"
        ),
        pytest.param(answers(403, 503), False, "warn", "errors instead", id="403-and-5xx"),
        pytest.param(answers(None), False, "warn", "no answer (timeout", id="no-answer"),
        pytest.param(answers(401, None), False, "warn", "no answer", id="401-and-no-answer"),
        pytest.param(answers(400), False, "warn", "the expected answer is 401", id="400"),
        pytest.param(answers(302), False, "warn", "refused with HTTP 302", id="redirect"),
        pytest.param(answers(401), True, "warn", "FETCHED the key URL", id="fetched-but-401"),
        pytest.param(answers(200), True, "fail", "ACCEPTED", id="fetched-and-accepted"),
    ],
)
def test_judge_refusal(
    given: list[tuple[str, Answer]], fetched: bool, verdict: Verdict, says: str
) -> None:
    result = oauth.judge_refusal("oauth.jku", given, fetched=fetched)
    assert (result.id, result.verdict) == ("oauth.jku", verdict)
    assert says in result.detail
    assert oauth.SENT["oauth.jku"] in result.detail
    if verdict == "fail":
        assert oauth.FIXES["oauth.jku"] in result.detail
    assert_consistent([result], "oauth")


@pytest.mark.parametrize("check_id", sorted(oauth.FIXES))
def test_judge_refusal_fail_names_what_was_sent_and_the_fix(check_id: str) -> None:
    result = oauth.judge_refusal(check_id, [("the forgery", Answer(200))])
    assert result.verdict == "fail"
    assert oauth.SENT[check_id] in result.detail
    assert result.detail.endswith(oauth.FIXES[check_id])


@pytest.mark.parametrize("status", [None, 100, 301, 400, 401, 403, 404, 405, 429, 500, 503, 599])
def test_judge_refusal_fails_only_when_somebody_got_in(status: int | None) -> None:
    result = oauth.judge_refusal("oauth.alg_none", answers(401, status, 403))
    assert result.verdict in ("pass", "warn")


def test_judge_refusal_without_answers_does_not_pass() -> None:
    assert oauth.judge_refusal("oauth.alg_confusion", []).verdict != "pass"


CLAIMS = {"iss": "https://auth.example.com/", "aud": "webhook-kit", "exp": 1}


@pytest.mark.parametrize(
    ("answer", "claims", "verdict", "says", "not_said"),
    [
        pytest.param(Answer(200), CLAIMS, "pass", "accepted (HTTP 200)", "", id="200"),
        pytest.param(Answer(202), None, "pass", "accepted (HTTP 202)", "", id="202"),
        pytest.param(
            Answer(401, challenge='Bearer error="invalid_token"'),
            CLAIMS,
            "fail",
            "iss=https://auth.example.com/, aud=webhook-kit",
            "",
            id="401-with-claims",
        ),
        pytest.param(
            Answer(401),
            None,
            "fail",
            "refused with HTTP 401: the sender could never",
            "iss=",
            id="401-opaque",
        ),
        pytest.param(
            Answer(
                401,
                challenge='Bearer error="invalid_token", error_description="aud \x1b[31mwrong"',
            ),
            CLAIMS,
            "fail",
            "HTTP 401 (aud \\x1b[31mwrong)",
            "\x1b",
            id="401-description-escaped",
        ),
        pytest.param(
            Answer(403, challenge='Bearer error="insufficient_scope", scope="x"'),
            CLAIMS,
            "fail",
            "lacks the scope 'x' the receiver requires: pass --scope x",
            "",
            id="403-insufficient-scope-named",
        ),
        pytest.param(
            Answer(403, challenge='Bearer ERROR="insufficient_scope", SCOPE="webhook"'),
            None,
            "fail",
            "--scope webhook",
            "",
            id="403-insufficient-scope-case-insensitive-params",
        ),
        pytest.param(
            Answer(403, challenge='Bearer error="insufficient_scope"'),
            CLAIMS,
            "fail",
            "lacks a scope the receiver requires: pass --scope with it",
            "",
            id="403-insufficient-scope-unnamed",
        ),
        pytest.param(
            Answer(403),
            CLAIMS,
            "fail",
            "refused with HTTP 403",
            "insufficient_scope",
            id="403-plain",
        ),
        pytest.param(
            Answer(401, challenge='DPoP algs="ES256", error="invalid_token"'),
            CLAIMS,
            "fail",
            "requires DPoP-bound tokens (its challenge is DPoP). Certify it with --dpop",
            "trust this authorization server",
            id="401-dpop-demanded-of-a-bearer-token",
        ),
        pytest.param(Answer(400), CLAIMS, "pass", "not refused for authentication", "", id="400"),
        pytest.param(Answer(422), CLAIMS, "pass", "(HTTP 422)", "", id="422"),
        pytest.param(Answer(500), CLAIMS, "pass", "the json and delivery checks", "", id="500"),
        pytest.param(NO_ANSWER, CLAIMS, "skip", "no answer (timeout", "", id="no-answer"),
    ],
)
def test_judge_valid_token(
    answer: Answer, claims: dict[str, Any] | None, verdict: Verdict, says: str, not_said: str
) -> None:
    result = oauth.judge_valid_token(answer, claims)
    assert (result.id, result.verdict) == ("oauth.valid_token", verdict)
    assert says in result.detail
    if not_said:
        assert not_said not in result.detail
    assert result.blocked_by is None
    assert_consistent([result], "oauth")


@pytest.mark.parametrize(
    ("answer", "verdict"),
    [
        pytest.param(Answer(200), "warn", id="200"),
        pytest.param(Answer(204), "warn", id="204"),
        pytest.param(Answer(401), "pass", id="401"),
        pytest.param(Answer(403), "pass", id="403"),
        pytest.param(Answer(500), "pass", id="500"),
        pytest.param(NO_ANSWER, "pass", id="no-answer"),
    ],
)
def test_judge_query_token_never_fails(answer: Answer, verdict: Verdict) -> None:
    result = oauth.judge_query_token(answer)
    assert (result.id, result.verdict) == ("oauth.query_token", verdict)
    if verdict == "warn":
        assert "RFC 6750 section 2.3" in result.detail
    assert answer.words() in result.detail
    assert_consistent([result], "oauth")


def test_challenge_params() -> None:
    got = oauth.challenge_params('Bearer realm="api", Error="invalid_token", scope="a b"')
    assert got == {"realm": "api", "error": "invalid_token", "scope": "a b"}
    assert oauth.challenge_params(None) == {}


NOW_WALL = 1_800_000_000.0
NOW_MONO = 5_000.0


@pytest.mark.parametrize(
    ("claims", "expires_in", "obtained_at", "limit", "wait", "says"),
    [
        pytest.param(None, None, NOW_MONO, 600.0, None, "no exp, no expires_in", id="nothing"),
        pytest.param(
            {"iss": "x"}, None, NOW_MONO, 600.0, None, "no exp, no expires_in", id="jwt-no-exp"
        ),
        pytest.param(
            {"exp": NOW_WALL + 30}, None, NOW_MONO, 0.0, None, "pass --expiry-wait 90", id="off"
        ),
        pytest.param(
            {"exp": NOW_WALL + 3600},
            None,
            NOW_MONO,
            120.0,
            None,
            "expires in 3600 s (+60 s leeway), more than --expiry-wait 120",
            id="too-far",
        ),
        pytest.param({"exp": NOW_WALL + 3}, None, NOW_MONO, 120.0, 63.0, "", id="within"),
        pytest.param({"exp": NOW_WALL + 60}, None, NOW_MONO, 120.0, 120.0, "", id="at-limit"),
        pytest.param({"exp": NOW_WALL - 10}, None, NOW_MONO, 120.0, 60.0, "", id="already-past"),
        pytest.param(
            {"exp": NOW_WALL + 3}, 3600.0, NOW_MONO, 120.0, 63.0, "", id="exp-beats-expires-in"
        ),
        pytest.param(None, 5.0, NOW_MONO - 1, 120.0, 64.0, "", id="expires-in-when-opaque"),
        pytest.param(
            {"exp": "soon"}, 10.0, NOW_MONO, 120.0, 70.0, "", id="expires-in-when-exp-not-numeric"
        ),
        pytest.param(
            None, 3600.0, NOW_MONO, 120.0, None, "more than --expiry-wait 120", id="opaque-too-far"
        ),
    ],
)
def test_expiry_plan(
    claims: dict[str, Any] | None,
    expires_in: float | None,
    obtained_at: float,
    limit: float,
    wait: float | None,
    says: str,
) -> None:
    got, why = oauth.expiry_plan(
        claims, expires_in, obtained_at, NOW_WALL, NOW_MONO, wait_limit=limit, leeway=60.0
    )
    if wait is None:
        assert got is None
        assert says in why
    else:
        assert got == pytest.approx(wait)
        assert why == ""


def test_expiry_plan_leeway_is_a_parameter() -> None:
    got, _ = oauth.expiry_plan(
        {"exp": NOW_WALL + 3}, None, NOW_MONO, NOW_WALL, NOW_MONO, wait_limit=10, leeway=5
    )
    assert got == pytest.approx(8.0)


def _advised_wait(why: str) -> float:
    return float(why.split("--expiry-wait ", 1)[1].split(" ", 1)[0])


def test_expiry_plan_advice_is_enough() -> None:
    claims = {"exp": NOW_WALL + 2.3}
    _, why = oauth.expiry_plan(claims, None, NOW_MONO, NOW_WALL, NOW_MONO, wait_limit=0, leeway=60)
    advised = _advised_wait(why)
    wait, _ = oauth.expiry_plan(
        claims, None, NOW_MONO, NOW_WALL, NOW_MONO, wait_limit=advised, leeway=60
    )
    assert wait is not None


def test_expiry_plan_advice_is_a_value_certify_accepts() -> None:
    claims = {"exp": NOW_WALL + 100_000}
    _, why = oauth.expiry_plan(claims, None, NOW_MONO, NOW_WALL, NOW_MONO, wait_limit=0, leeway=60)
    # Longer than certify may wait: no impossible --expiry-wait is advised.
    assert "shorter-lived tokens" in why
    assert not re.search(r"--expiry-wait \d", why)


# --- json, delivery, availability, robustness ------------------------------------------------


def attempt(
    outcome: Outcome, status: int | None = None, ms: float = 4.2, reason: str = ""
) -> AttemptResult:
    return AttemptResult(outcome, reason or f"{outcome} happened", ms, status)


@pytest.mark.parametrize(
    ("result", "verdict", "says"),
    [
        pytest.param(attempt("success", 200), "pass", "-> HTTP 200", id="200"),
        pytest.param(attempt("success", 204), "pass", "-> HTTP 204", id="204"),
        pytest.param(attempt("http_error", 415), "fail", "got HTTP 415", id="415"),
        pytest.param(attempt("http_error", 400), "fail", "got HTTP 400", id="400"),
        pytest.param(attempt("http_error", 422), "fail", "got HTTP 422", id="422"),
        # Not a refusal of JSON: the delivery checks name the cause instead.
        pytest.param(attempt("http_error", 500), "skip", "-> HTTP 500: not a refusal", id="500"),
        pytest.param(attempt("timeout"), "skip", "not a refusal of JSON", id="timeout"),
        pytest.param(attempt("redirect", 307), "skip", "-> HTTP 307: not a refusal", id="redirect"),
    ],
)
@pytest.mark.parametrize(("check_id", "content_type"), json_body.VARIANTS)
def test_json_judge(
    check_id: str, content_type: str, result: AttemptResult, verdict: Verdict, says: str
) -> None:
    judged = json_body.judge(check_id, content_type, result)
    assert (judged.id, judged.verdict) == (check_id, verdict)
    assert says in judged.detail
    assert f"Content-Type: {content_type}" in judged.detail
    if verdict == "fail":
        assert "must accept JSON bodies with this media type" in judged.detail
    assert_consistent([judged], "json")


def row(outcome: str, status: int | None = None, ms: float = 4.2) -> AttemptRow:
    """An attempt as the store returns it."""
    return AttemptRow(1, 0.0, ms, outcome, status, f"{outcome} reason")


@pytest.mark.parametrize(
    ("attempts", "verdict", "says"),
    [
        pytest.param([], "fail", "not attempted in time", id="no-attempts"),
        pytest.param([row("success", 200)], "pass", "HTTP 200 in 4.2 ms", id="success"),
        pytest.param([row("success", 202, 250.0)], "pass", "HTTP 202 in 250 ms", id="slow-ok"),
        pytest.param(
            [row("http_error", 500), row("success", 200)], "pass", "HTTP 200", id="last-decides"
        ),
        pytest.param(
            [row("success", 200), row("http_error", 500)],
            "fail",
            "got http_error: http_error reason",
            id="last-decides-fail",
        ),
        pytest.param([row("redirect", 302)], "fail", "never follow redirects", id="redirect"),
        pytest.param([row("timeout")], "fail", "acknowledge first", id="timeout"),
        pytest.param(
            [row("unauthorized", 401)], "fail", "refused a valid token", id="unauthorized"
        ),
        pytest.param(
            [row("token_error")], "fail", "token endpoint did not issue", id="token-error"
        ),
        pytest.param([row("http_error", 503)], "fail", "failed on this status", id="5xx"),
        pytest.param(
            [row("http_error", 422)], "fail", "every status must be accepted with a 2xx", id="4xx"
        ),
        pytest.param([row("tls_error")], "fail", "accepted with a 2xx", id="tls-error"),
        pytest.param([row("connect_error")], "fail", "accepted with a 2xx", id="connect-error"),
    ],
)
def test_delivery_judge(attempts: list[AttemptRow], verdict: Verdict, says: str) -> None:
    result = delivery.judge("cancelled", attempts)
    assert (result.id, result.verdict) == ("delivery.cancelled", verdict)
    assert says in result.detail
    if attempts:
        assert result.duration_ms == attempts[-1].duration_ms
    if verdict == "fail" and attempts:
        assert "a valid 'cancelled' notification" in result.detail
    assert_consistent([result], "delivery")


def test_delivery_check_ids_cover_the_nine_statuses() -> None:
    assert len(delivery.CHECK_IDS) == 9
    assert delivery.CHECK_IDS[0] == "delivery.on-course"
    assert delivery.CHECK_IDS[-1] == "delivery.deleted"


T0 = datetime.datetime(2026, 12, 1, 22, 13, 20, 123000, tzinfo=datetime.UTC).timestamp()


def samples(*results: AttemptResult) -> list[Sample]:
    return [Sample(T0 + n, r) for n, r in enumerate(results)]


@pytest.mark.parametrize(
    ("given", "verdict", "says"),
    [
        pytest.param([], "fail", "no attempt could be made", id="none"),
        pytest.param(
            samples(*[attempt("success", 200)] * 10),
            "pass",
            "10/10 answered 2xx in time (uptime 100.00 %)",
            id="all-ok",
        ),
        pytest.param(
            samples(*[attempt("success", 200)] * 3, attempt("http_error", 503)),
            "fail",
            "3/4 answered 2xx in time (uptime 75.00 %)",
            id="one-failure",
        ),
        pytest.param(
            samples(attempt("success", 200), attempt("http_error", 503)),
            "fail",
            "Failed or late: 22:13:21.123 UTC HTTP 503. The endpoint must be available",
            id="failure-time",
        ),
        pytest.param(
            samples(attempt("timeout", ms=1000.0, reason="no answer within 1s")),
            "fail",
            "22:13:20.123 UTC timeout (no answer within 1s)",
            id="timeout",
        ),
        pytest.param(
            samples(attempt("success", 200), attempt("success", 200, ms=1500.0)),
            "fail",
            "22:13:21.123 UTC HTTP 200 after 1500 ms",
            id="late-but-2xx",
        ),
        pytest.param(
            samples(attempt("success", 200, ms=1000.0)), "pass", "1/1", id="exactly-on-time"
        ),
        pytest.param(
            samples(*[attempt("http_error", 500)] * 23), "fail", "(and 3 more)", id="many"
        ),
    ],
)
def test_availability_judge(given: list[Sample], verdict: Verdict, says: str) -> None:
    result = availability.judge("availability.soak", given, timeout=1.0)
    assert (result.id, result.verdict) == ("availability.soak", verdict)
    assert says in result.detail
    assert_consistent([result], "availability")


def test_availability_percentiles_in_the_detail() -> None:
    given = samples(*(attempt("success", 200, ms=float(n)) for n in range(100, 0, -1)))
    detail = availability.judge("availability.probes", given, timeout=10.0).detail
    assert "latency p50 50 ms, p95 95 ms, p99 99 ms, max 100 ms (timeout 10000 ms)" in detail


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [
        ([5.0], 0.5, 5.0),
        ([1.0, 2.0, 3.0, 4.0], 0.5, 2.0),
        ([4.0, 3.0, 2.0, 1.0], 0.95, 4.0),
        ([float(n) for n in range(1, 11)], 0.99, 10.0),
        ([float(n) for n in range(1, 11)], 0.0, 1.0),
    ],
)
def test_percentile_is_nearest_rank(values: list[float], q: float, expected: float) -> None:
    assert availability.percentile(values, q) == expected


OK = attempt("success", 200)
REFUSED = attempt("http_error", 409)
DOWN = attempt("connect_error", reason="refused")


@pytest.mark.parametrize(
    ("first", "second", "verdict"),
    [(OK, OK, "pass"), (OK, REFUSED, "warn"), (REFUSED, OK, "warn"), (DOWN, DOWN, "warn")],
)
def test_robustness_duplicate(first: AttemptResult, second: AttemptResult, verdict: str) -> None:
    result = robustness.judge_duplicate(first, second)
    assert (result.id, result.verdict) == ("robustness.duplicate", verdict)
    if verdict == "warn":
        assert "idempotency key" in result.detail
    assert_consistent([result], "robustness")


@pytest.mark.parametrize(("result", "verdict"), [(OK, "pass"), (REFUSED, "warn"), (DOWN, "warn")])
def test_robustness_unknown_field(result: AttemptResult, verdict: str) -> None:
    judged = robustness.judge_unknown_field(result)
    assert (judged.id, judged.verdict) == ("robustness.unknown_field", verdict)
    if verdict == "warn":
        assert "HTTP 409" in judged.detail or "connect_error (refused)" in judged.detail
    assert_consistent([judged], "robustness")


# --- model ----------------------------------------------------------------------------------


def check(check_id: str, verdict: Verdict, blocked_by: str | None = None) -> CheckResult:
    requirement = cast(Requirement, check_id.split(".", 1)[0])
    detail = f"blocked by {blocked_by}" if blocked_by else f"{check_id} {verdict}"
    return CheckResult(check_id, requirement, verdict, detail, 1.5, blocked_by)


@pytest.mark.parametrize(
    ("verdict", "strict_verdict", "severity", "strict_severity"),
    [
        ("pass", "pass", None, None),
        ("skip", "skip", None, None),
        ("fail", "fail", "fail", "fail"),
        ("warn", "fail", "warn", "warn"),
    ],
)
def test_strictly(
    verdict: Verdict, strict_verdict: str, severity: str | None, strict_severity: str | None
) -> None:
    result = check("url.public", verdict)
    assert result.severity == severity
    strict = strictly(result)
    assert (strict.verdict, strict.severity) == (strict_verdict, strict_severity)
    assert (strict.id, strict.detail, strict.duration_ms) == (
        result.id,
        result.detail,
        result.duration_ms,
    )


def test_report_verdict_counts_and_root_causes() -> None:
    checks = (
        check("url.absolute", "pass"),
        check("url.public", "warn"),
        check("https.handshake", "fail"),
        check("https.chain", "skip", "https.handshake"),
        check("https.hostname", "skip", "https.handshake"),
        check("oauth.token", "fail"),
        check("oauth.alg_confusion", "skip"),
    )
    report = Report("https://hooks.example.com/webhook", checks)
    assert report.verdict == "fail"
    assert report.counts() == {"pass": 1, "fail": 2, "warn": 1, "skip": 3}
    # oauth.token failed but blocked nothing: it is a failure, not a root cause.
    assert [c.id for c in report.root_causes()] == ["https.handshake"]
    assert reports.root_cause_lines(report) == [
        "Root cause: https.handshake (2 checks blocked): https.handshake fail"
    ]
    as_json = report.as_json()
    assert as_json["verdict"] == "fail"
    assert as_json["checks"][3] == {
        "id": "https.chain",
        "requirement": "https",
        "verdict": "skip",
        "severity": None,
        "detail": "blocked by https.handshake",
        "duration_ms": 1.5,
        "blocked_by": "https.handshake",
    }


@pytest.mark.parametrize(
    ("verdicts_", "strict", "expected"),
    [
        ((), False, "pass"),
        (("pass", "warn", "skip"), False, "pass"),
        (("pass", "warn", "skip"), True, "fail"),
        (("pass", "fail"), False, "fail"),
    ],
)
def test_report_verdict(verdicts_: tuple[Verdict, ...], strict: bool, expected: str) -> None:
    checks = tuple(check(f"oauth.c{n}", v) for n, v in enumerate(verdicts_))
    if strict:
        checks = tuple(strictly(c) for c in checks)
    report = Report("https://x.example/", checks, strict=strict)
    assert report.verdict == expected
    assert report.root_causes() == ()


def settings(token_url: str = TOKEN_URL, timeout: float = 10.0, **options: Any) -> CertifySettings:
    oauth_settings = OAuthSettings(token_url, "client", "s3cret-value", timeout=timeout)
    return CertifySettings("https://hooks.example.com/webhook", oauth_settings, **options)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        pytest.param({"timeout": 0.0}, "timeout", id="timeout-0"),
        pytest.param({"timeout": -1.0}, "timeout", id="timeout-negative"),
        pytest.param({"timeout": math.nan}, "timeout", id="timeout-nan"),
        pytest.param({"timeout": math.inf}, "timeout", id="timeout-inf"),
        pytest.param({"probes": 0}, "probes", id="probes-0"),
        pytest.param({"expiry_wait": -1.0}, "expiry wait", id="expiry-wait-negative"),
        pytest.param({"expiry_wait": math.nan}, "expiry wait", id="expiry-wait-nan"),
        pytest.param({"expiry_wait": 86401.0}, "expiry wait", id="expiry-wait-too-long"),
        pytest.param({"expiry_leeway": -1.0}, "leeway", id="leeway-negative"),
        pytest.param({"expiry_leeway": 3601.0}, "leeway", id="leeway-too-long"),
        pytest.param({"deadline": 0.0}, "deadline", id="deadline-0"),
        pytest.param({"deadline": math.nan}, "deadline", id="deadline-nan"),
        pytest.param({"token_url": ""}, "token URL or an issuer", id="no-token-url-no-issuer"),
    ],
)
def test_certify_settings_refuse(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        settings(**options)


def test_certify_settings_accept_and_budget() -> None:
    discovered = settings(token_url="", issuer="https://auth.example.com")
    assert discovered.oauth.token_url == ""
    s = settings(expiry_wait=90.0, soak=SoakSettings(600.0, 2.0), deadline=100.0, timeout=3.0)
    assert s.budget == 790.0
    assert s.timeout == 3.0
    assert s.with_oauth(auth_method="client_secret_post").oauth.auth_method == (
        "client_secret_post"
    )
    assert settings().budget == 300.0


@pytest.mark.parametrize(
    ("duration", "rate", "ok"),
    [
        (1.0, 1.0, True),
        (7 * 86400.0, 100.0, True),
        (0.5, 0.01, True),
        (0.0, 1.0, False),
        (-1.0, 1.0, False),
        (math.nan, 1.0, False),
        (math.inf, 1.0, False),
        (7 * 86400.0 + 1, 1.0, False),
        (60.0, 0.0, False),
        (60.0, -2.0, False),
        (60.0, math.nan, False),
        (60.0, 100.5, False),
    ],
)
def test_soak_settings_bounds(duration: float, rate: float, ok: bool) -> None:
    if ok:
        assert SoakSettings(duration, rate).rate == rate
    else:
        with pytest.raises(ConfigError, match="soak"):
            SoakSettings(duration, rate)


# --- report ---------------------------------------------------------------------------------


def sample_report(strict: bool = False) -> Report:
    checks: tuple[CheckResult, ...] = (
        check("url.absolute", "pass"),
        check("url.public", "warn"),
        check("https.handshake", "fail"),
        check("https.chain", "skip", "https.handshake"),
    )
    if strict:
        checks = tuple(strictly(c) for c in checks)
    return Report("https://hooks.example.com/webhook", checks, strict=strict)


@pytest.mark.parametrize("strict", [False, True])
def test_to_junit_parses_and_carries_severity(strict: bool) -> None:
    root = ET.fromstring(reports.to_junit(sample_report(strict)))
    suite = root.find("testsuite")
    assert suite is not None
    failures = 2 if strict else 1
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == (
        "4",
        str(failures),
        "1",
    )
    props = {p.get("name"): p.get("value") for p in suite.iterfind("properties/property")}
    assert props == {"url": "https://hooks.example.com/webhook", "strict": str(strict).lower()}
    cases = {c.get("name"): c for c in suite.iterfind("testcase")}
    assert list(cases) == ["url.absolute", "url.public", "https.handshake", "https.chain"]
    severity = {
        name: case.find("properties/property[@name='severity']") for name, case in cases.items()
    }
    assert {name: p.get("value") for name, p in severity.items() if p is not None} == {
        "url.absolute": "none",
        "url.public": "warn",
        "https.handshake": "fail",
        "https.chain": "none",
    }
    handshake = cases["https.handshake"].find("failure")
    assert handshake is not None and handshake.get("type") == "severity:fail"
    assert cases["https.chain"].find("skipped") is not None
    assert cases["url.absolute"].find("failure") is None
    public = cases["url.public"]
    if strict:
        failure = public.find("failure")
        assert failure is not None and failure.get("type") == "severity:warn"
    else:
        out = public.find("system-out")
        assert out is not None and out.text == "warn: url.public warn"
    assert cases["url.absolute"].get("classname") == "certify.url"


SECRET = "s3cret-value"
TOKEN = "tok-9f8e7d6c5b4a"
NASTY = f"got \x1b]52;c;cGF3bmVk\x07 \x00 \x1b[2J{SECRET} {TOKEN} [bold red]PASS[/]"


def fake_stage(verdict: Verdict) -> pipeline.Stage:
    async def stage(ctx: Context) -> list[CheckResult]:
        ctx.token = TOKEN
        return [CheckResult("url.absolute", "url", verdict, NASTY, 2.0)]

    return stage


@pytest.fixture
def one_stage(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The real runner (and its one cleaning step) over a stage that returns hostile text."""
    monkeypatch.setattr(pipeline, "STAGES", (("url", fake_stage("warn"), ("url.absolute",)),))
    yield


@pytest.mark.parametrize("strict", [False, True])
@pytest.mark.usefixtures("one_stage")
def test_runner_cleans_every_detail_before_any_report(strict: bool) -> None:
    report: Report = run(pipeline.certify(settings(strict=strict)))
    (result,) = report.checks
    assert (result.verdict, result.severity) == ("fail" if strict else "warn", "warn")
    for output in (reports.to_junit(report), reports.to_json(report), reports.to_text(report)):
        for control in RAW_CONTROLS:
            assert control not in output
        assert SECRET not in output
        assert TOKEN not in output
    ET.fromstring(reports.to_junit(report))
    detail = json.loads(reports.to_json(report))["checks"][0]["detail"]
    assert detail.startswith("got \\x1b]52;c;cGF3bmVk\\x07 \\x00 \\x1b[2J")
    assert "[bold red]PASS[/]" in reports.to_text(report, width=300)


def test_to_text_prints_markup_literally() -> None:
    checks = (
        CheckResult("oauth.token", "oauth", "fail", "closing [/] and [link=x]y[/link] as sent"),
        CheckResult("json.charset", "json", "warn", "[bold]not bold[/bold]"),
    )
    text = reports.to_text(Report("https://h.example/[/]", checks), width=200)
    assert "closing [/] and [link=x]y[/link] as sent" in text
    assert "[bold]not bold[/bold]" in text
    assert "https://h.example/[/]" in text
    assert "FAIL: https://h.example/[/] (0 passed, 1 failed, 1 warnings, 0 skipped)" in text


def test_to_text_and_to_json_never_carry_raw_controls_even_uncleaned() -> None:
    raw = Report("https://h.example/\x1b[31m", (CheckResult("url.public", "url", "warn", NASTY),))
    for output in (reports.to_text(raw), reports.to_json(raw)):
        for control in RAW_CONTROLS:
            assert control not in output
    # In colour, rich writes its own SGR sequences; none of the injected ones gets through.
    coloured = reports.to_text(raw, color=True)
    for injected in ("\x1b]52", "\x1b[2J", "\x1b[31m", "\x00", "\x07"):
        assert injected not in coloured
    assert json.loads(reports.to_json(raw))["checks"][0]["detail"] == NASTY


def test_to_text_marks_a_strict_failure() -> None:
    text = reports.to_text(sample_report(strict=True), width=200)
    assert "fail (strict)" in text
    assert "Root cause: https.handshake (1 checks blocked)" in text
    assert ", strict)" in text


def test_runner_check_ids_are_the_contract_order() -> None:
    ids = pipeline.CHECK_IDS
    assert ids[:9] == (*url.CHECK_IDS, *https.CHECK_IDS)
    assert ids[9:12] == oauth_token.CHECK_IDS
    assert ids[27:33] == binding_judges.CHECK_IDS  # after the receiver's token checks
    assert ids[-4:] == (*availability.CHECK_IDS, *robustness.CHECK_IDS)
    assert len(ids) == len(set(ids)) == 4 + 5 + 3 + 15 + 6 + 2 + 9 + 2 + 2


def test_an_accepted_fetched_key_says_it_was_fetched() -> None:
    answers = [("'jku' http://127.0.0.1:1/jwks.json", Answer(200))]
    judged = oauth.judge_refusal("oauth.jku", answers, fetched=True)
    assert judged.verdict == "fail"
    assert "FETCHED" in judged.detail and "ACCEPTED" in judged.detail
    assert "FETCHED" not in oauth.judge_refusal("oauth.jku", answers).detail
