"""oauth: the token URL is HTTPS, the credentials get a token, a wrong secret is refused, and the
endpoint refuses requests without a token, with a garbage or tampered token, or with the token in
the query string."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from urllib.parse import urlsplit

from webhook_kit.certify.context import Context, Timer, describe, skipped
from webhook_kit.certify.model import CheckResult, Verdict
from webhook_kit.delivery.outcome import AttemptResult
from webhook_kit.errors import TokenFetchError
from webhook_kit.oauth.client import OAuthClient, OAuthSettings

CHECK_IDS = (
    "oauth.token_url",
    "oauth.token",
    "oauth.wrong_secret",
    "oauth.no_token",
    "oauth.garbage_token",
    "oauth.tampered_token",
    "oauth.alg_none",
    "oauth.query_token",
)


def _refusal_verdict(result: AttemptResult) -> tuple[Verdict, str]:
    """401 passes, 403 warns, 2xx fails; anything else is judged by what it means."""
    status = result.http_status
    if status == 401:
        return "pass", "refused with 401"
    if status == 403:
        return "warn", "refused with 403; RFC 6750 says 401 with a WWW-Authenticate challenge"
    if status is not None and 200 <= status < 300:
        return "fail", f"ACCEPTED with HTTP {status}"
    if status is not None and 300 <= status < 400:
        return "warn", f"answered a redirect (HTTP {status}) instead of 401"
    if status is not None and 400 <= status < 500:
        return "warn", f"refused with HTTP {status}; the expected answer is 401"
    if status is not None:
        return "fail", f"HTTP {status}: the endpoint errors instead of refusing with 401"
    return "fail", f"no answer ({result.outcome}: {result.reason})"


def _unsigned(token: str) -> str | None:
    """The real token's claims under ``alg: none`` with no signature (the classic JWT forgery)."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        header = json.loads(base64.urlsafe_b64decode(parts[0] + "=" * (-len(parts[0]) % 4)))
    except ValueError:
        return None
    if not isinstance(header, dict):
        return None
    header["alg"] = "none"
    encoded = base64.urlsafe_b64encode(json.dumps(header).encode()).rstrip(b"=").decode()
    return f"{encoded}.{parts[1]}."


class Skip:
    """Why a forged-token check cannot run (no token, or an opaque one)."""

    def __init__(self, why: str) -> None:
        self.why = why


def _forge(token: str | None, forge: Callable[[str], str | None]) -> str | Skip:
    if token is None:
        return Skip("no token was obtained")
    forged = forge(token)
    return Skip("the token is opaque, not a JWT") if forged is None else forged


def _tamper(token: str) -> str | None:
    parts = token.split(".")
    if len(parts) != 3 or len(parts[2]) < 8:
        return None
    signature = parts[2]
    middle = len(signature) // 2
    # A middle character: the last one may only carry padding bits and change nothing.
    flipped = "A" if signature[middle] != "A" else "B"
    return f"{parts[0]}.{parts[1]}.{signature[:middle]}{flipped}{signature[middle + 1 :]}"


async def run(ctx: Context) -> list[CheckResult]:
    s = ctx.settings
    out: list[CheckResult] = []
    timer = Timer()
    token_parts = urlsplit(s.token_url)
    token_url_ok = token_parts.scheme == "https" and bool(token_parts.hostname)
    if token_url_ok:
        out.append(timer.result("oauth.token_url", "oauth", "pass", s.token_url))
    else:
        out.append(
            timer.result(
                "oauth.token_url",
                "oauth",
                "fail",
                f"the token URL {s.token_url!r} is not https://; the client secret would "
                "travel in clear. Serve the token endpoint over TLS",
            )
        )

    timer = Timer()
    if not token_url_ok:
        out.append(
            skipped("oauth.token", "oauth", "the secret is never sent to a non-HTTPS token URL")
        )
        out.append(skipped("oauth.wrong_secret", "oauth", "the token URL is not HTTPS"))
    else:
        try:
            ctx.token = await OAuthClient(ctx.oauth_settings, ctx.session).token()
            kind = "a JWT" if _tamper(ctx.token) else "an opaque token"
            out.append(
                timer.result(
                    "oauth.token",
                    "oauth",
                    "pass",
                    f"client credentials ({s.auth_method}) got {kind}",
                )
            )
        except TokenFetchError as exc:
            out.append(
                timer.result(
                    "oauth.token",
                    "oauth",
                    "fail",
                    f"POST {s.token_url} (grant_type=client_credentials, {s.auth_method}) "
                    f"failed: {exc}. Check the client id and secret, "
                    "and that the token endpoint allows the client credentials grant",
                )
            )

        timer = Timer()
        wrong = OAuthSettings(
            s.token_url,
            s.client_id,
            s.client_secret + "-wrong",
            scope=s.scope,
            audience=s.audience,
            auth_method=s.auth_method,
            timeout=s.timeout,
        )
        try:
            await OAuthClient(wrong, ctx.session).token()
            out.append(
                timer.result(
                    "oauth.wrong_secret",
                    "oauth",
                    "fail",
                    "the token endpoint issued a token for a WRONG client secret: anyone "
                    "who knows the client id can get tokens. Check client authentication",
                )
            )
        except TokenFetchError as exc:
            out.append(timer.result("oauth.wrong_secret", "oauth", "pass", f"refused ({exc})"))

    if not ctx.reachable:
        why = "the endpoint is not reachable over verified HTTPS"
        out.extend(skipped(i, "oauth", why) for i in CHECK_IDS[3:])
        return out

    # (check, the token sent or why there is none, what was sent, how to fix an acceptance)
    forged = [
        (
            "oauth.no_token",
            None,
            "no Authorization header",
            "Protect the endpoint with OAuth: only requests with a valid bearer token may be "
            "accepted",
        ),
        (
            "oauth.garbage_token",
            "not-a-valid-token",
            "'Bearer not-a-valid-token'",
            "Verify every bearer token (signature, issuer, audience, expiry) before accepting",
        ),
        (
            "oauth.tampered_token",
            _forge(ctx.token, _tamper),
            "the real token's signature altered",
            "The endpoint does not check JWT signatures: verify them against the issuer's JWKS",
        ),
        (
            "oauth.alg_none",
            _forge(ctx.token, _unsigned),
            "the real token's claims re-signed as 'alg: none' (no signature)",
            "The endpoint accepts unsigned tokens: allow only the issuer's signing algorithms "
            "(e.g. RS256) when verifying",
        ),
    ]
    for check_id, token, what_was_sent, fix in forged:
        if isinstance(token, Skip):
            out.append(skipped(check_id, "oauth", token.why))
            continue
        timer = Timer()
        result = await ctx.post(ctx.notification(), token=token)
        verdict, what = _refusal_verdict(result)
        detail = f"sent a valid notification with {what_was_sent}: {what}"
        out.append(
            timer.result(
                check_id, "oauth", verdict, detail + (f". {fix}" if verdict == "fail" else "")
            )
        )

    timer = Timer()
    if ctx.token is None:
        out.append(skipped("oauth.query_token", "oauth", "no token was obtained"))
    else:
        separator = "&" if "?" in s.url else "?"
        result = await ctx.post(
            ctx.notification(), token=None, url=f"{s.url}{separator}access_token={ctx.token}"
        )
        status = result.http_status
        if status is not None and 200 <= status < 300:
            out.append(
                timer.result(
                    "oauth.query_token",
                    "oauth",
                    "fail",
                    f"a token in the query string (?access_token=...) was ACCEPTED with "
                    f"HTTP {status}; URLs end up in logs: accept tokens only in the "
                    "Authorization header",
                )
            )
        else:
            out.append(
                timer.result(
                    "oauth.query_token",
                    "oauth",
                    "pass",
                    f"a token in the query string was not accepted ({describe(result)})",
                )
            )
    return out
