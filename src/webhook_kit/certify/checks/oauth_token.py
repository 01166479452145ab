"""oauth, sender side: the token URL is HTTPS, the credentials get a token (with advice drawn
from the endpoint's own error when they do not), and a wrong secret gets none.

The judges are pure; ``obtain`` does the I/O."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from webhook_kit.certify.context import Context, Timer, blocked
from webhook_kit.certify.discovery import discover
from webhook_kit.certify.forge import parse
from webhook_kit.certify.model import CheckResult
from webhook_kit.delivery.guard import url_problem
from webhook_kit.display import visible
from webhook_kit.errors import DiscoveryError, TokenFetchError
from webhook_kit.oauth.client import AuthMethod, OAuthClient

CHECK_IDS = ("oauth.token_url", "oauth.token", "oauth.wrong_secret")
_AUDIENCE = re.compile(r"audience|\baud\b|resource", re.IGNORECASE)


@dataclass(frozen=True)
class Refusal:
    """A token endpoint's refusal, as the OAuth client reported it (already secret-free)."""

    message: str
    error: str | None = None
    description: str | None = None

    @classmethod
    def of(cls, exc: TokenFetchError) -> Refusal:
        return cls(str(exc), exc.error, exc.description)

    def words(self) -> str:
        shown = self.message
        if self.description:
            shown += f": {self.description}"
        return shown


@dataclass(frozen=True)
class TokenFacts:
    method: str
    refusal: Refusal | None = None
    #: When the configured method was refused: another method that worked.
    fallback: str | None = None
    jwt: bool = False
    audience_given: bool = False
    scope_given: bool = False


def advice(refusal: Refusal, facts: TokenFacts) -> str:
    """Turn the common refusals into the flag that fixes them."""
    text = f"{refusal.error or ''} {refusal.description or ''}"
    if refusal.error == "invalid_scope":
        return "the scope was refused: pass --scope with a scope this client may request"
    if _AUDIENCE.search(text) or refusal.error == "invalid_target":
        if facts.audience_given:
            return "the endpoint refused the audience: check --audience"
        return "the token endpoint requires an audience (or resource): pass --audience"
    if refusal.error == "invalid_client":
        return (
            "check the client id and secret, and the client authentication method "
            "(--auth-method client_secret_basic or client_secret_post)"
        )
    if refusal.error in ("unauthorized_client", "unsupported_grant_type"):
        return "allow the client credentials grant for this client"
    return (
        "check the client id and secret, and that the endpoint allows the client credentials grant"
    )


def judge_token(facts: TokenFacts, token_url: str) -> CheckResult:
    kind = "a JWT" if facts.jwt else "an opaque token"
    if facts.refusal is None:
        return CheckResult(
            "oauth.token", "oauth", "pass", f"client credentials ({facts.method}) got {kind}"
        )
    if facts.fallback is not None:
        return CheckResult(
            "oauth.token",
            "oauth",
            "warn",
            f"{facts.method} was refused ({facts.refusal.words()}); {facts.fallback} works and "
            f"got {kind}, so certify went on with it. Configure the sender with "
            f"client_auth_method {facts.fallback} (or pass --auth-method {facts.fallback})",
        )
    return CheckResult(
        "oauth.token",
        "oauth",
        "fail",
        f"POST {token_url} (grant_type=client_credentials, {facts.method}) failed: "
        f"{facts.refusal.words()}. {advice(facts.refusal, facts)}",
    )


def judge_wrong_secret(refusal: Refusal | None) -> CheckResult:
    if refusal is None:
        return CheckResult(
            "oauth.wrong_secret",
            "oauth",
            "fail",
            "the token endpoint issued a token for a WRONG client secret: anyone who knows the "
            "client id can get tokens. Check client authentication",
        )
    return CheckResult("oauth.wrong_secret", "oauth", "pass", f"refused ({refusal.message})")


def judge_token_url(token_url: str, discovery_error: str | None = None) -> CheckResult:
    if discovery_error is not None:
        return CheckResult(
            "oauth.token_url",
            "oauth",
            "fail",
            f"no token endpoint found from --issuer: {discovery_error}. Pass --token-url, or "
            "publish RFC 8414 or OpenID metadata at the issuer",
        )
    problem = url_problem(token_url)
    if problem is None:
        return CheckResult("oauth.token_url", "oauth", "pass", token_url)
    clear = urlsplit(token_url).scheme.lower() == "http"
    return CheckResult(
        "oauth.token_url",
        "oauth",
        "fail",
        f"the token URL {visible(token_url)!r} {problem}"
        + (
            "; the client secret would travel in clear. Serve the token endpoint over TLS"
            if clear
            else ""
        ),
    )


async def run(ctx: Context) -> list[CheckResult]:
    s = ctx.settings
    timer = Timer()
    discovery_error = None
    if s.issuer:
        try:
            meta = await discover(ctx.session, s.issuer, s.timeout)
            ctx.issuer_jwks_uri = meta.jwks_uri
            if not s.oauth.token_url:
                if meta.token_endpoint is None:
                    raise DiscoveryError(f"{meta.source} has no token_endpoint")
                ctx.settings = s = s.with_oauth(token_url=meta.token_endpoint)
        except DiscoveryError as exc:
            if not s.oauth.token_url:
                discovery_error = str(exc)
    first = judge_token_url(s.oauth.token_url, discovery_error)
    first = timer.stamp(first)
    if first.verdict == "fail":
        ctx.token_blocker = "oauth.token_url"
        return [first, *(blocked(i, "oauth", "oauth.token_url") for i in CHECK_IDS[1:])]

    same_origin = _origin(s.oauth.token_url) == _origin(s.url)
    if same_origin and ctx.connection_blocker and ctx.connection_blocker.startswith("https."):
        # The token endpoint shares the endpoint's host and port, so its TLS fails the same way:
        # one root cause, not a second failure.
        ctx.token_blocker = ctx.connection_blocker
        return [first, *(blocked(i, "oauth", ctx.connection_blocker) for i in CHECK_IDS[1:])]

    timer = Timer()
    facts = await obtain(ctx)
    token_result = timer.stamp(judge_token(facts, ctx.settings.oauth.token_url))
    if ctx.token is None:
        ctx.token_blocker = "oauth.token"

    timer = Timer()
    wrong = ctx.settings.with_oauth(client_secret=ctx.settings.oauth.client_secret + "-wrong")
    refusal: Refusal | None = None
    try:
        await OAuthClient(wrong.oauth, ctx.session).token()
    except TokenFetchError as exc:
        refusal = Refusal.of(exc)
    wrong_result = timer.stamp(judge_wrong_secret(refusal))
    return [first, token_result, wrong_result]


def _origin(url: str) -> tuple[str, str | None, int | None]:
    try:
        parts = urlsplit(url)
        return parts.scheme, parts.hostname, parts.port or 443
    except ValueError:
        return "", None, None


async def obtain(ctx: Context) -> TokenFacts:
    """Get a token with the configured method; when the endpoint refuses it as invalid_client,
    try the other secret method, as many post-only endpoints need."""
    s = ctx.settings
    method = s.oauth.auth_method
    audience, scope = bool(s.oauth.audience), bool(s.oauth.scope)
    try:
        await _fetch(ctx)
        return TokenFacts(method, jwt=parse(ctx.token) is not None, audience_given=audience)
    except TokenFetchError as exc:
        refusal = Refusal.of(exc)
    if refusal.error == "invalid_client" or (
        refusal.error is None and "answered 401" in refusal.message
    ):
        other: AuthMethod = (
            "client_secret_post" if method == "client_secret_basic" else "client_secret_basic"
        )
        previous = ctx.settings
        ctx.settings = previous.with_oauth(auth_method=other)
        try:
            await _fetch(ctx)
            return TokenFacts(method, refusal, fallback=other, jwt=parse(ctx.token) is not None)
        except TokenFetchError:
            ctx.settings = previous
    return TokenFacts(method, refusal, audience_given=audience, scope_given=scope)


async def _fetch(ctx: Context) -> None:
    client = OAuthClient(ctx.settings.oauth, ctx.session)
    started = time.monotonic()
    ctx.token = await client.token()
    ctx.oauth_client = client
    ctx.tokens_seen.append(ctx.token)
    ctx.token_obtained_at = started
    ctx.token_expires_in = client.expires_in
