"""The pure judges of the bound-token checks, and certify's sender-side judges for the methods
without a secret: every row could fail, and a false pass is the worst outcome."""

from __future__ import annotations

import pytest

from webhook_kit.certify.checks import binding_judges, oauth_token
from webhook_kit.certify.checks.binding_judges import (
    CHECK_IDS,
    DPOP_IDS,
    BindingFacts,
    judge_bound,
    judge_replay_first,
    plan,
)
from webhook_kit.certify.checks.oauth_judges import Answer
from webhook_kit.certify.checks.oauth_token import Refusal, TokenFacts
from webhook_kit.certify.model import Verdict
from webhook_kit.oauth.client_auth import Credential

DPOP_CHALLENGE = 'DPoP realm="webhook-kit", error="invalid_dpop_proof"'
BEARER_CHALLENGE = 'Bearer realm="webhook-kit", error="invalid_token"'


@pytest.mark.parametrize(
    ("check_id", "answers", "verdict", "says"),
    [
        pytest.param(
            "oauth.dpop_replay",
            [("again", Answer(401, challenge=DPOP_CHALLENGE))],
            "pass",
            "refused with 401 (invalid_dpop_proof)",
            id="401",
        ),
        pytest.param(
            "oauth.dpop_replay",
            [("again", Answer(200))],
            "fail",
            "ACCEPTED (again -> HTTP 200)",
            id="replay-accepted",
        ),
        pytest.param(
            "oauth.bound_token_bare",
            [
                ("as Bearer, no proof", Answer(401, challenge=BEARER_CHALLENGE)),
                ("as DPoP, no proof", Answer(204)),
            ],
            "fail",
            "as DPoP, no proof -> HTTP 204",
            id="one-variant-accepted-fails",
        ),
        pytest.param(
            "oauth.mtls_other_cert",
            [("other", Answer(None, "connect_error: alert", handshake_refused=True))],
            "pass",
            "the TLS handshake refused it (other)",
            id="handshake-refusal-passes",
        ),
        pytest.param(
            "oauth.mtls_other_cert",
            [("other", Answer(None, "connect_error: reset"))],
            "warn",
            "no answer",
            id="no-answer-warns",
        ),
        pytest.param(
            "oauth.dpop_wrong_htm",
            [("htm GET", Answer(403)), ("htm PUT", Answer(401))],
            "warn",
            "HTTP 403",
            id="403-warns",
        ),
        pytest.param(
            "oauth.dpop_wrong_htu",
            [("htu x", Answer(500))],
            "warn",
            "the expected answer is 401",
            id="5xx-warns",
        ),
        pytest.param(
            "oauth.dpop_wrong_key",
            [("another key", Answer(401))],
            "pass",
            "no error code",
            id="401-without-error-code",
        ),
        pytest.param("oauth.dpop_wrong_key", [], "skip", "nothing could be sent", id="empty"),
    ],
)
def test_judge_bound(
    check_id: str, answers: list[tuple[str, Answer]], verdict: Verdict, says: str
) -> None:
    result = judge_bound(check_id, answers)
    assert (result.id, result.requirement, result.verdict) == (check_id, "oauth", verdict)
    assert says in result.detail
    if verdict == "fail":
        assert "Someone who has the token but not what it is bound to gets in" in result.detail
        assert binding_judges.FIXES[check_id] in result.detail
        assert result.severity == "fail"


DPOP_READY = BindingFacts(dpop_key=True, dpop_bound=True, unbound_dpop_accepted=False)
CERT_READY = BindingFacts(certificate=True, certificate_bound=True)


@pytest.mark.parametrize(
    ("facts", "runs", "reason"),
    [
        pytest.param(BindingFacts(), set(), "pass --dpop ES256", id="nothing-bound"),
        pytest.param(DPOP_READY, {"oauth.bound_token_bare", *DPOP_IDS}, None, id="dpop"),
        pytest.param(
            BindingFacts(dpop_key=True, dpop_bound=True),
            {"oauth.bound_token_bare", *DPOP_IDS},
            None,
            id="dpop-no-unbound-token-to-compare",
        ),
        pytest.param(
            BindingFacts(dpop_key=True, dpop_bound=True, unbound_dpop_accepted=True),
            set(),
            "does not require DPoP-bound tokens",
            id="dpop-not-required",
        ),
        pytest.param(
            BindingFacts(dpop_key=True),
            set(),
            "did not bind the token",
            id="dpop-not-bound",
        ),
        pytest.param(
            CERT_READY, {"oauth.bound_token_bare", "oauth.mtls_other_cert"}, None, id="cert"
        ),
        pytest.param(
            BindingFacts(certificate=True, certificate_bound=None),
            set(),
            "the token is opaque",
            id="cert-opaque",
        ),
        pytest.param(
            BindingFacts(certificate=True, certificate_bound=False),
            set(),
            "not bound to the client certificate (no cnf.x5t#S256)",
            id="cert-not-bound",
        ),
        pytest.param(
            BindingFacts(
                certificate=True, certificate_bound=True, unbound_certificate_accepted=True
            ),
            set(),
            "does not require certificate-bound tokens",
            id="cert-not-required",
        ),
        pytest.param(
            BindingFacts(
                dpop_key=True,
                dpop_bound=True,
                unbound_dpop_accepted=False,
                certificate=True,
                certificate_bound=True,
            ),
            set(CHECK_IDS),
            None,
            id="both",
        ),
    ],
)
def test_plan(facts: BindingFacts, runs: set[str], reason: str | None) -> None:
    planned = plan(facts)
    assert set(planned) == set(CHECK_IDS)
    assert {i for i, why in planned.items() if why is None} == runs
    if reason is not None:
        # The reason of the binding the row is about (the other binding names its own).
        about = (
            "oauth.mtls_other_cert"
            if "cert" in reason or "opaque" in reason
            else "oauth.dpop_replay"
        )
        assert reason in str(planned[about])
        assert reason in str(planned["oauth.bound_token_bare"])


def test_the_replay_needs_an_accepted_first_proof() -> None:
    assert judge_replay_first(Answer(202)) is None
    skipped = judge_replay_first(Answer(401, challenge=DPOP_CHALLENGE))
    assert skipped is not None and skipped.verdict == "skip" and "HTTP 401" in skipped.detail


@pytest.mark.parametrize(
    ("credential", "says"),
    [
        (Credential.SECRET, "WRONG client secret"),
        (Credential.PRIVATE_KEY, "WRONG private key"),
        (Credential.CLIENT_CERTIFICATE, "WRONG client certificate"),
    ],
)
def test_wrong_credential_of_each_kind(credential: Credential, says: str) -> None:
    issued = oauth_token.judge_wrong_secret(None, credential)
    assert issued.verdict == "fail" and says in issued.detail
    refused = oauth_token.judge_wrong_secret(Refusal("answered 401", "invalid_client"), credential)
    assert refused.verdict == "pass" and says in refused.detail


@pytest.mark.parametrize(
    ("method", "says"),
    [
        ("private_key_jwt", "--assertion-audience"),
        ("tls_client_auth", "tls_client_auth: its CA and subject"),
        ("self_signed_tls_client_auth", "with this certificate"),
        ("client_secret_post", "--auth-method client_secret_basic or client_secret_post"),
    ],
)
def test_invalid_client_advice_names_what_the_method_uses(method: str, says: str) -> None:
    facts = TokenFacts(method, Refusal("answered 401", "invalid_client"))
    result = oauth_token.judge_token(facts, "https://auth.example/token")
    assert result.verdict == "fail" and says in result.detail


@pytest.mark.parametrize(("scheme", "hinted"), [("DPoP", True), ("Bearer", False)])
def test_a_refused_dpop_token_says_how_it_was_presented(scheme: str, hinted: bool) -> None:
    from webhook_kit.certify.checks.oauth_judges import judge_valid_token

    result = judge_valid_token(Answer(401, challenge="Bearer"), None, scheme)
    assert result.verdict == "fail"
    assert ("certify without --dpop" in result.detail) is hinted
