"""oauth, sender side: the token URL is HTTPS, the credentials get a token (with advice drawn
from the endpoint's own error when they do not), and a wrong credential gets none.

Every client authentication method of the registry works here, exactly as the dispatcher uses
it; the wrong credential is the method's own (a wrong secret, an assertion signed by another
key, another certificate under the same subject).

The judges are pure; ``obtain`` does the I/O."""

from __future__ import annotations

import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from webhook_kit.certify import impostor
from webhook_kit.certify.context import Context, Timer, blocked
from webhook_kit.certify.discovery import discover
from webhook_kit.certify.forge import parse
from webhook_kit.certify.model import CertifySettings, CheckResult
from webhook_kit.delivery.guard import url_problem
from webhook_kit.display import visible
from webhook_kit.errors import ConfigError, DiscoveryError, TokenFetchError
from webhook_kit.oauth import client_auth
from webhook_kit.oauth.client import OAuthClient
from webhook_kit.oauth.client_auth import Credential

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
        return _client_advice(facts.method)
    if refusal.error in ("unauthorized_client", "unsupported_grant_type"):
        return "allow the client credentials grant for this client"
    return (
        "check the client id and secret, and that the endpoint allows the client credentials grant"
    )


def _client_advice(method: str) -> str:
    """What to check when the endpoint did not recognise the client, by what the method uses."""
    info = client_auth.REGISTRY.get(method)  # type: ignore[call-overload]
    if info is None or info.credential is Credential.SECRET:
        return (
            "check the client id and secret, and the client authentication method "
            "(--auth-method client_secret_basic or client_secret_post)"
        )
    if info.credential is Credential.PRIVATE_KEY:
        return (
            "check the client id, that the authorization server has this client's public key "
            "(or its JWKS URL) registered for private_key_jwt, the key id (--key-id), the "
            "algorithm (--assertion-alg) and the assertion's audience (--assertion-audience)"
        )
    return (
        f"check the client id and that the authorization server has this client registered "
        f"for {method} with this certificate (tls_client_auth: its CA and subject; "
        "self_signed_tls_client_auth: the certificate itself)"
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


#: What ``oauth.wrong_secret`` sends, by what the method proves the client with.
WRONG_CREDENTIAL = {
    Credential.SECRET: ("a WRONG client secret", "anyone who knows the client id"),
    Credential.PRIVATE_KEY: (
        "an assertion signed by a WRONG private key (same client id and kid)",
        "anyone who knows the client id and key id",
    ),
    Credential.CLIENT_CERTIFICATE: (
        "a WRONG client certificate (self-signed, the same subject)",
        "anyone who can make a certificate with the client's subject",
    ),
}


def judge_wrong_secret(
    refusal: Refusal | None, credential: Credential = Credential.SECRET
) -> CheckResult:
    sent, who = WRONG_CREDENTIAL[credential]
    if refusal is None:
        return CheckResult(
            "oauth.wrong_secret",
            "oauth",
            "fail",
            f"the token endpoint issued a token for {sent}: {who} can get tokens. Check "
            "client authentication",
        )
    return CheckResult(
        "oauth.wrong_secret", "oauth", "pass", f"{sent}: refused ({refusal.message})"
    )


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
    wrong_result = timer.stamp(await _wrong_credential(ctx.settings, ctx))
    return [first, token_result, wrong_result]


async def _wrong_credential(s: CertifySettings, ctx: Context) -> CheckResult:
    """A token request with the method's credential replaced; any token is a failure."""
    credential = client_auth.needs(s.oauth.auth_method)
    refusal: Refusal | None = None
    with tempfile.TemporaryDirectory(prefix="webhook-kit-certify-") as directory:
        try:
            wrong = _wrong_settings(s, credential, Path(directory))
            await OAuthClient(wrong.oauth, ctx.session, ca_file=s.ca_file).token()
        except TokenFetchError as exc:
            refusal = Refusal.of(exc)
    return judge_wrong_secret(refusal, credential)


def _wrong_settings(s: CertifySettings, credential: Credential, directory: Path) -> CertifySettings:
    c = s.oauth.credentials
    if credential is Credential.SECRET:
        return s.with_credentials(secret=s.oauth.client_secret + "-wrong")
    if c is None:  # pragma: no cover - OAuthSettings requires credentials for these methods
        raise ConfigError("credentials: missing")
    if credential is Credential.PRIVATE_KEY:
        return s.with_credentials(private_key=impostor.private_key_pem(c.algorithm))
    other = impostor.other_certificate(directory, like=c.cert_file)
    return s.with_credentials(cert_file=other.cert_file, key_file=other.key_file)


def _origin(url: str) -> tuple[str, str | None, int | None]:
    try:
        parts = urlsplit(url)
        return parts.scheme, parts.hostname, parts.port or 443
    except ValueError:
        return "", None, None


async def obtain(ctx: Context) -> TokenFacts:
    """Get a token with the configured method; when the endpoint refuses a secret method as
    invalid_client, try the other secret method, as many post-only endpoints need."""
    s = ctx.settings
    method = s.oauth.auth_method
    audience, scope = bool(s.oauth.audience), bool(s.oauth.scope)
    try:
        await _fetch(ctx)
        return TokenFacts(method, jwt=parse(ctx.token) is not None, audience_given=audience)
    except TokenFetchError as exc:
        refusal = Refusal.of(exc)
    unrecognised = refusal.error == "invalid_client" or (
        refusal.error is None and "answered 401" in refusal.message
    )
    others = [m for m in client_auth.METHODS if m in client_auth.SECRET_METHODS and m != method]
    if unrecognised and method in client_auth.SECRET_METHODS:
        previous = ctx.settings
        for other in others:
            ctx.settings = previous.with_credentials(method=other)
            try:
                await _fetch(ctx)
                jwt = parse(ctx.token) is not None
                return TokenFacts(method, refusal, fallback=other, jwt=jwt)
            except TokenFetchError:
                ctx.settings = previous
    return TokenFacts(method, refusal, audience_given=audience, scope_given=scope)


async def _fetch(ctx: Context) -> None:
    client = OAuthClient(ctx.settings.oauth, ctx.session, ca_file=ctx.settings.ca_file)
    started = time.monotonic()
    ctx.token = await client.token()
    ctx.oauth_client = client
    ctx.tokens_seen.append(ctx.token)
    ctx.token_obtained_at = started
    ctx.token_expires_in = client.expires_in
