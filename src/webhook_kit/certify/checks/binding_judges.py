"""The pure judges of the bound-token checks: when they can run, and what an answer to a token
presented away from its sender means. No I/O; table-tested.

A bound token (RFC 8705 ``cnf.x5t#S256``, RFC 9449 ``cnf.jkt``) is only worth its binding if
the receiver refuses it without what it is bound to. Accepting it bare, with a proof for another
URL or method, with a proof by another key, with a replayed proof, or over a connection with
another certificate lets someone who has the token but not the key in: ``fail``. A refusal other
than 401 lets nobody in: ``warn``. A TLS handshake that refuses another certificate is a
refusal too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from webhook_kit.certify.checks.oauth_judges import Answer, challenge_params
from webhook_kit.certify.model import CheckResult, Verdict

DPOP_IDS = (
    "oauth.dpop_wrong_htu",
    "oauth.dpop_wrong_htm",
    "oauth.dpop_wrong_key",
    "oauth.dpop_replay",
)
MTLS_IDS = ("oauth.mtls_other_cert",)
CHECK_IDS = ("oauth.bound_token_bare", *DPOP_IDS, *MTLS_IDS)

SENT = {
    "oauth.bound_token_bare": "the bound token without what it is bound to",
    "oauth.dpop_wrong_htu": "the DPoP-bound token with a proof for another URL (htu)",
    "oauth.dpop_wrong_htm": "the DPoP-bound token with a proof for another method (htm)",
    "oauth.dpop_wrong_key": "the DPoP-bound token with a valid proof by another key",
    "oauth.dpop_replay": "the DPoP-bound token with a proof already used once",
    "oauth.mtls_other_cert": "the certificate-bound token over a connection with another "
    "client certificate",
}
FIXES = {
    "oauth.bound_token_bare": "A bound token was accepted without its proof of possession: "
    "check cnf.jkt against a DPoP proof (RFC 9449 section 7) and cnf.x5t#S256 against the "
    "connection's client certificate (RFC 8705 section 3)",
    "oauth.dpop_wrong_htu": "Check that the proof's htu is this request's URL (RFC 9449 "
    "section 4.3), or a proof captured for one URL works at another",
    "oauth.dpop_wrong_htm": "Check that the proof's htm is this request's method (RFC 9449 "
    "section 4.3)",
    "oauth.dpop_wrong_key": "Check that the proof's key is the one the token is bound to: its "
    "RFC 7638 thumbprint must equal cnf.jkt",
    "oauth.dpop_replay": "Remember each proof's jti for as long as its iat is acceptable and "
    "refuse it a second time (RFC 9449 section 11.1)",
    "oauth.mtls_other_cert": "Compare the SHA-256 thumbprint of the connection's client "
    "certificate with the token's cnf.x5t#S256 (RFC 8705 section 3)",
}


@dataclass(frozen=True)
class BindingFacts:
    """What certify knows before the bound-token checks run."""

    #: certify holds a DPoP key (``--dpop``).
    dpop_key: bool = False
    #: The token is DPoP-bound (``token_type`` DPoP, or ``cnf.jkt``).
    dpop_bound: bool = False
    #: certify presents a client certificate.
    certificate: bool = False
    #: The token carries ``cnf.x5t#S256``; ``None`` for an opaque token (unknown).
    certificate_bound: bool | None = False
    #: The receiver accepted a token of the same client without that binding (``None``: certify
    #: could not get one, as when every token of the client is bound).
    unbound_dpop_accepted: bool | None = None
    unbound_certificate_accepted: bool | None = None


def dpop_skip(facts: BindingFacts) -> str | None:
    """Why the DPoP checks cannot run, or ``None`` when they can."""
    if not facts.dpop_key:
        return "certify holds no DPoP key: pass --dpop ES256 to check DPoP-bound tokens"
    if not facts.dpop_bound:
        return (
            "the authorization server did not bind the token to certify's DPoP key "
            "(token_type Bearer): there is no DPoP binding to check"
        )
    if facts.unbound_dpop_accepted:
        return (
            "the receiver accepted an unbound Bearer token of the same client, so it does not "
            "require DPoP-bound tokens (as serve --token-binding dpop does)"
        )
    return None


def certificate_skip(facts: BindingFacts) -> str | None:
    """Why the certificate checks cannot run, or ``None`` when they can."""
    if not facts.certificate:
        return (
            "certify presents no client certificate: pass --client-cert and --client-key to "
            "check certificate-bound tokens"
        )
    if facts.certificate_bound is None:
        return "the token is opaque: certify cannot tell whether it is bound to the certificate"
    if not facts.certificate_bound:
        return "the token is not bound to the client certificate (no cnf.x5t#S256)"
    if facts.unbound_certificate_accepted:
        return (
            "the receiver accepted a token of the same client obtained without the certificate, "
            "so it does not require certificate-bound tokens (as serve --token-binding mtls does)"
        )
    return None


def plan(facts: BindingFacts) -> dict[str, str | None]:
    """For each check, why it is skipped, or ``None`` when it runs."""
    dpop, certificate = dpop_skip(facts), certificate_skip(facts)
    out: dict[str, str | None] = dict.fromkeys(DPOP_IDS, dpop)
    out.update(dict.fromkeys(MTLS_IDS, certificate))
    out["oauth.bound_token_bare"] = (
        None if dpop is None or certificate is None else f"{dpop}; {certificate}"
    )
    return out


def judge_bound(check_id: str, answers: Sequence[tuple[str, Answer]]) -> CheckResult:
    """Any 2xx fails; 401 or a refused TLS handshake everywhere passes; other refusals warn."""
    sent = SENT[check_id]
    if not answers:
        return CheckResult(check_id, "oauth", "skip", f"{sent}: nothing could be sent")
    accepted = [(label, a) for label, a in answers if a.accepted]
    if accepted:
        which = "; ".join(f"{label} -> {a.words()}" for label, a in accepted)
        return CheckResult(
            check_id,
            "oauth",
            "fail",
            f"sent a valid notification with {sent}: ACCEPTED ({which}). Someone who has the "
            f"token but not what it is bound to gets in. {FIXES[check_id]}",
        )
    verdict, detail = _refused(answers)
    return CheckResult(check_id, "oauth", verdict, f"{sent}: {detail}")


def _refused(answers: Sequence[tuple[str, Answer]]) -> tuple[Verdict, str]:
    handshakes = [label for label, a in answers if a.handshake_refused]
    statuses = [a for _, a in answers if not a.handshake_refused]
    if all(a.status == 401 for a in statuses):
        parts = []
        if statuses:
            errors = sorted(
                {challenge_params(a.challenge).get("error", "no error code") for a in statuses}
            )
            parts.append(f"refused with 401 ({', '.join(errors)})")
        if handshakes:
            parts.append(f"the TLS handshake refused it ({', '.join(handshakes)})")
        return "pass", "; ".join(parts)
    words = ", ".join(sorted({a.words() for a in statuses}))
    if any(a.status is None for a in statuses):
        return "warn", f"no answer ({words}); the expected answer is 401"
    return "warn", f"refused with {words}; the expected answer is 401 with WWW-Authenticate"


def judge_replay_first(answer: Answer) -> CheckResult | None:
    """The replay needs a proof the receiver accepted once: a skip saying why not, or
    ``None`` when the first request was accepted."""
    if answer.accepted:
        return None
    return CheckResult(
        "oauth.dpop_replay",
        "oauth",
        "skip",
        f"a fresh proof was not accepted ({answer.words()}), so a replay of it cannot be judged",
    )
