"""The pure judges of the receiver-side oauth checks: what an answer to a forged, valid or
query-string token means under the severity policy. No I/O; table-tested."""

from __future__ import annotations

import math
import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from webhook_kit.certify.model import CheckResult, Verdict
from webhook_kit.display import visible

#: Libraries commonly allow some clock skew after ``exp`` (express-oauth2-jwt-bearer 5 s,
#: Spring 60 s): the replay waits past it, so a correct receiver is never failed for it.
DEFAULT_EXPIRY_LEEWAY = 60.0
MAX_EXPIRY_WAIT = 86400

FIXES = {
    "oauth.no_token": "Protect the endpoint with OAuth: only requests with a valid bearer token "
    "may be accepted",
    "oauth.garbage_token": "Verify every bearer token (signature, issuer, audience, expiry) "
    "before accepting",
    "oauth.tampered_token": "The endpoint does not check JWT signatures: verify them against the "
    "issuer's JWKS",
    "oauth.alg_none": "The endpoint accepts unsigned tokens: allow only the issuer's signing "
    "algorithms (e.g. RS256), in any spelling of 'none' refused",
    "oauth.alg_confusion": "The verifier uses the RSA/EC public key as an HMAC secret: pin the "
    "accepted algorithms (e.g. algorithms=['RS256']) and never let the token's 'alg' choose",
    "oauth.embedded_jwk": "The verifier trusts a key carried in the token itself: use only the "
    "issuer's published keys (CVE-2018-0114 class)",
    "oauth.embedded_x5c": "The verifier trusts a certificate carried in the token itself: use "
    "only the issuer's published keys",
    "oauth.jku": "The verifier fetches keys from a URL named by the token: use only the "
    "issuer's configured JWKS URL",
    "oauth.x5u": "The verifier fetches a certificate from a URL named by the token: use only "
    "the issuer's configured keys",
    "oauth.unknown_kid": "A token whose kid is not in the issuer's JWKS was accepted: refuse it "
    "(never skip the signature when no key matches)",
    "oauth.no_kid": "A token without a kid, signed by a foreign key, was accepted: verify the "
    "signature with the issuer's keys only",
    "oauth.kid_injection": "The kid is used unsafely (file path, SQL or shell): look it up only "
    "in the issuer's JWKS",
    "oauth.expired_token": "Expired tokens are accepted: check 'exp' (with at most a small "
    "clock-skew leeway)",
}
SENT = {
    "oauth.no_token": "no Authorization header",
    "oauth.garbage_token": "'Bearer not-a-valid-token'",
    "oauth.tampered_token": "the real token with its signature altered",
    "oauth.alg_none": "the real claims as 'alg: none'",
    "oauth.alg_confusion": "the real claims as HS256/384/512, keyed with the receiver's public key",
    "oauth.embedded_jwk": "the real claims signed by certify's key, that key in the 'jwk' header",
    "oauth.embedded_x5c": "the real claims signed by certify's key, its certificate in 'x5c'",
    "oauth.jku": "the real claims signed by certify's key, 'jku' pointing to certify's JWKS",
    "oauth.x5u": "the real claims signed by certify's key, 'x5u' pointing to its certificate",
    "oauth.unknown_kid": "the real claims signed by certify's key with an unknown kid",
    "oauth.no_kid": "the real claims signed by certify's key, without kid",
    "oauth.kid_injection": "the real claims with injection strings as kid",
    "oauth.expired_token": "the real token, replayed after it expired",
}


@dataclass(frozen=True)
class Answer:
    """What the endpoint did with one request: pure data for the judges."""

    status: int | None
    #: For no answer: the failure class and reason.
    failure: str | None = None
    #: The ``WWW-Authenticate`` header, if any.
    challenge: str | None = None
    #: The receiver's ``DPoP-Nonce`` header, if any.
    nonce: str | None = None
    #: The TLS handshake refused the client (its certificate): a refusal, not an outage.
    handshake_refused: bool = False

    @property
    def accepted(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    def words(self) -> str:
        return f"HTTP {self.status}" if self.status is not None else str(self.failure)


def judge_refusal(
    check_id: str, answers: Sequence[tuple[str, Answer]], fetched: bool = False
) -> CheckResult:
    """2xx to any forgery fails; 401 to all passes; other refusals warn (nobody got in)."""
    sent = SENT.get(check_id, "a forged token")
    if not answers:
        # all() of nothing is True: a pass needs evidence.
        return CheckResult(check_id, "oauth", "skip", f"{sent}: nothing could be sent")
    accepted = [(label, a) for label, a in answers if a.accepted]
    if accepted:
        which = "; ".join(f"{label} -> {a.words()}" for label, a in accepted[:4])
        more = f" (and {len(accepted) - 4} more)" if len(accepted) > 4 else ""
        seen = (
            " certify's key server saw the receiver fetch the key URL in the token (FETCHED)."
            if fetched
            else ""
        )
        return CheckResult(
            check_id,
            "oauth",
            "fail",
            f"sent a valid notification with {sent}: ACCEPTED ({which}{more}).{seen} "
            f"{FIXES.get(check_id, '')}".rstrip(),
        )
    verdict, detail = _refused(answers, fetched)
    return CheckResult(check_id, "oauth", verdict, f"{sent}: {detail}")


def _refused(answers: Sequence[tuple[str, Answer]], fetched: bool) -> tuple[Verdict, str]:
    """Nobody got in: 401 everywhere passes; any other refusal is advice (warn)."""
    statuses = ", ".join(sorted({a.words() for _, a in answers}))
    if fetched:
        return "warn", (
            f"refused ({statuses}), but the receiver FETCHED the key URL named in the token's "
            "header: that lets anyone make it send requests (SSRF) and is one step from "
            "trusting an attacker's key. Use only the issuer's configured keys"
        )
    codes = [a.status for _, a in answers]
    if all(code == 401 for code in codes):
        count = f"{len(answers)} variant{'s' if len(answers) != 1 else ''}"
        return "pass", f"refused with 401 ({count})"
    if 403 in codes and all(code in (401, 403) for code in codes):
        return "warn", (
            f"refused with {statuses}; RFC 6750 says 401 with a WWW-Authenticate challenge for "
            "a bad token (403 is for a valid token lacking scope)"
        )
    if any(code is not None and code >= 500 for code in codes):
        return "warn", (
            f"not accepted, but answered {statuses}: the endpoint errors instead of refusing "
            "with 401"
        )
    if None in codes:
        return "warn", f"no answer ({statuses}); the expected answer is 401"
    return "warn", f"refused with {statuses}; the expected answer is 401"


# RFC 7235 auth-param: token = ( token / quoted-string ).
_PARAM = re.compile(r'(\w+)\s*=\s*(?:"([^"]*)"|([^\s,"]+))')


def challenge_params(challenge: str | None) -> dict[str, str]:
    return {k.lower(): quoted or bare for k, quoted, bare in _PARAM.findall(challenge or "")}


def judge_valid_token(
    answer: Answer, claims: dict[str, Any] | None, scheme: str = "Bearer"
) -> CheckResult:
    """A valid notification with the token certify got: refused for auth means the sender can
    never deliver. Other errors belong to the json and delivery checks. ``scheme`` is how the
    token went (``DPoP``: with a proof, which a receiver without DPoP support refuses)."""
    params = challenge_params(answer.challenge)
    said = (
        f" ({visible(params['error_description'][:200])})"
        if params.get("error_description")
        else ""
    )
    if answer.status == 403 and params.get("error") == "insufficient_scope":
        needed = params.get("scope")
        scope = (
            f"the token lacks the scope '{visible(needed)}' the receiver requires: pass --scope "
            f"{visible(shlex.quote(needed))}"
            if needed
            else "the token lacks a scope the receiver requires: pass --scope with it"
        )
        return CheckResult(
            "oauth.valid_token",
            "oauth",
            "fail",
            f"a valid token was refused with 403 insufficient_scope{said}; {scope} (and make the "
            "sender request it)",
        )
    if answer.status in (401, 403):
        who = ""
        if claims:
            who = (
                f" The token has iss={visible(claims.get('iss'))}, aud={visible(claims.get('aud'))}"
            )
        dpop = (
            " certify presented it as a DPoP-bound token (Authorization: DPoP and a proof, as "
            "--dpop asks): a receiver without DPoP support refuses that; add it, or certify "
            "without --dpop"
            if scheme == "DPoP"
            else ""
        )
        demands_dpop = scheme != "DPoP" and (answer.challenge or "").lstrip().lower().startswith(
            "dpop"
        )
        if demands_dpop:
            # The receiver asks for DPoP-bound tokens: certify's own token was the problem.
            return CheckResult(
                "oauth.valid_token",
                "oauth",
                "fail",
                f"a bearer token was refused with HTTP {answer.status}{said}: this endpoint "
                "requires DPoP-bound tokens (its challenge is DPoP). Certify it with --dpop "
                "ES256 (and the sender must use DPoP too).",
            )
        return CheckResult(
            "oauth.valid_token",
            "oauth",
            "fail",
            f"a valid token from the token URL was refused with HTTP {answer.status}{said}: the "
            "sender could never deliver. Make the receiver trust this authorization server "
            f"(issuer, audience, JWKS).{who}{dpop}",
        )
    if answer.status is None:
        return CheckResult(
            "oauth.valid_token",
            "oauth",
            "skip",
            f"no answer ({answer.failure}); the availability checks report it",
        )
    if answer.accepted:
        return CheckResult("oauth.valid_token", "oauth", "pass", f"accepted ({answer.words()})")
    return CheckResult(
        "oauth.valid_token",
        "oauth",
        "pass",
        f"not refused for authentication ({answer.words()}); the json and delivery checks judge "
        "the rest",
    )


def judge_query_token(answer: Answer) -> CheckResult:
    if answer.accepted:
        return CheckResult(
            "oauth.query_token",
            "oauth",
            "warn",
            f"a token in the query string (?access_token=...) was accepted ({answer.words()}). "
            "RFC 6750 section 2.3 allows it and only the sender holds tokens, so nobody gets "
            "in; but URLs end up in logs: accept tokens only in the Authorization header",
        )
    return CheckResult(
        "oauth.query_token",
        "oauth",
        "pass",
        f"a token in the query string was not accepted ({answer.words()})",
    )


def expiry_plan(
    claims: dict[str, Any] | None,
    expires_in: float | None,
    obtained_at: float,
    now_wall: float,
    now_mono: float,
    *,
    wait_limit: float,
    leeway: float,
) -> tuple[float | None, str]:
    """Seconds to wait before replaying the real token (None: skip, with why). Pure."""
    remaining: float | None = None
    if claims is not None and isinstance(claims.get("exp"), (int, float)):
        remaining = float(claims["exp"]) - now_wall
    elif expires_in is not None:
        remaining = obtained_at + expires_in - now_mono
    if remaining is None:
        return None, "the token says nothing of when it expires (no exp, no expires_in)"
    wait = max(0.0, remaining) + leeway
    needed = math.ceil(wait)
    if needed > MAX_EXPIRY_WAIT:
        return None, (
            f"the token expires in {max(0.0, remaining):.0f} s, longer than certify waits "
            f"(--expiry-wait at most {MAX_EXPIRY_WAIT}): issue shorter-lived tokens to test it"
        )
    if wait_limit <= 0:
        return None, (
            f"the token expires in {max(0.0, remaining):.0f} s; pass --expiry-wait "
            f"{needed} (or more) to wait for it and replay it"
        )
    if wait > wait_limit:
        return None, (
            f"the token expires in {max(0.0, remaining):.0f} s (+{leeway:g} s leeway), more "
            f"than --expiry-wait {wait_limit:g}; raise it, or issue shorter-lived tokens to test"
        )
    return wait, ""
