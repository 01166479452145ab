"""oauth, receiver side: a valid token is accepted, and nothing else is.

Every forgery keeps the real token's claims, so only checking who signed it can refuse it:
``alg: none``, HMAC keyed with the receiver's own public key, keys carried in or pointed to by
the header, unknown or injected ``kid``\\s, an expired token. Each forgery answered 2xx fails.

The judges are pure and table-tested; ``run`` gathers the answers.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

from webhook_kit.certify import forge, presenting
from webhook_kit.certify.checks.oauth_judges import (
    SENT,
    Answer,
    expiry_plan,
    judge_query_token,
    judge_refusal,
    judge_valid_token,
)
from webhook_kit.certify.context import Context, Timer, blocked, skipped
from webhook_kit.certify.discovery import discover, fetch_jwks
from webhook_kit.certify.keyserver import key_server
from webhook_kit.certify.model import CheckResult
from webhook_kit.display import visible
from webhook_kit.errors import DiscoveryError

RECEIVER_IDS = (
    "oauth.valid_token",
    "oauth.no_token",
    "oauth.garbage_token",
    "oauth.tampered_token",
    "oauth.alg_none",
    "oauth.alg_confusion",
    "oauth.embedded_jwk",
    "oauth.embedded_x5c",
    "oauth.jku",
    "oauth.x5u",
    "oauth.unknown_kid",
    "oauth.no_kid",
    "oauth.kid_injection",
    "oauth.expired_token",
    "oauth.query_token",
)


async def _send(ctx: Context, token: str | None, url: str | None = None) -> Answer:
    """One valid notification with ``token`` presented as the sender presents its own (over
    its client certificate; as ``DPoP`` with a proof when its token is DPoP-bound)."""
    target = url or ctx.settings.url
    return await presenting.send(
        ctx, lambda: presenting.as_sender(ctx.oauth_client, token, target), target
    )


async def _send_all(ctx: Context, forgeries: Sequence[forge.Forgery]) -> list[tuple[str, Answer]]:
    limit = asyncio.Semaphore(4)

    async def one(f: forge.Forgery) -> tuple[str, Answer]:
        async with limit:
            return f.label, await _send(ctx, f.token)

    return list(await asyncio.gather(*(one(f) for f in forgeries)))


async def _find_jwks(
    ctx: Context, claims: dict[str, Any] | None
) -> tuple[dict[str, Any] | None, str]:
    s = ctx.settings
    sources: list[str] = []
    if s.jwks_url:
        sources.append(s.jwks_url)
    issuer = claims.get("iss") if claims else None
    if not sources and isinstance(issuer, str) and issuer.startswith("https://"):
        try:
            meta = await discover(ctx.session, issuer, s.timeout)
            if meta.jwks_uri:
                sources.append(meta.jwks_uri)
        except DiscoveryError:
            pass
    if not sources and ctx.issuer_jwks_uri:
        sources.append(ctx.issuer_jwks_uri)
    errors = []
    for url in sources:
        try:
            return await fetch_jwks(ctx.session, url, s.timeout), url
        except DiscoveryError as exc:
            errors.append(str(exc))
    if errors:
        return None, "; ".join(errors)
    return None, (
        "no JWKS found: the token's iss has no RFC 8414/OpenID metadata with a jwks_uri; pass "
        "--jwks-url"
    )


async def run(ctx: Context) -> list[CheckResult]:
    out: dict[str, CheckResult] = {}
    connection = ctx.connection_blocker
    if connection is not None:
        return [blocked(i, "oauth", connection) for i in RECEIVER_IDS]
    real = forge.parse(ctx.token)
    claims = real.claims if real else None

    timer = Timer()
    if ctx.token is None:
        out["oauth.valid_token"] = blocked(
            "oauth.valid_token", "oauth", ctx.token_blocker or "oauth.token"
        )
    else:
        scheme = ctx.oauth_client.token_scheme if ctx.oauth_client else "Bearer"
        result = judge_valid_token(await _send(ctx, ctx.token), claims, scheme)
        out["oauth.valid_token"] = timer.stamp(result)
        if result.verdict == "fail":
            ctx.acceptance_blocker = "oauth.valid_token"

    for check_id, token in (("oauth.no_token", None), ("oauth.garbage_token", "not-a-valid-token")):
        timer = Timer()
        out[check_id] = timer.stamp(
            judge_refusal(check_id, [(SENT[check_id], await _send(ctx, token))])
        )
        if out[check_id].verdict == "fail":
            break

    token_ids = [i for i in RECEIVER_IDS if i not in out and i != "oauth.query_token"]
    # One root cause: an endpoint that takes requests without a token (or with any token) takes
    # every forgery too; saying so eleven more times would hide the one fix.
    if out["oauth.no_token"].verdict == "fail":
        return [out.get(i) or blocked(i, "oauth", "oauth.no_token") for i in RECEIVER_IDS]
    if out["oauth.garbage_token"].verdict == "fail":
        for i in token_ids:
            out[i] = blocked(i, "oauth", "oauth.garbage_token")
    elif ctx.token is None:
        for i in token_ids:
            out[i] = blocked(i, "oauth", ctx.token_blocker or "oauth.token")
    elif real is None:
        for i in token_ids:
            if i != "oauth.expired_token":
                out[i] = skipped(
                    i, "oauth", "the token is opaque, not a JWT: there is no signature to forge"
                )
    else:
        await _forgeries(ctx, real, out)
    if "oauth.expired_token" not in out:
        out["oauth.expired_token"] = await _expired(ctx, claims)

    timer = Timer()
    if ctx.token is None:
        out["oauth.query_token"] = blocked(
            "oauth.query_token", "oauth", ctx.token_blocker or "oauth.token"
        )
    else:
        separator = "&" if "?" in ctx.settings.url else "?"
        url = f"{ctx.settings.url}{separator}access_token={await ctx.valid_token()}"
        out["oauth.query_token"] = timer.stamp(judge_query_token(await _send(ctx, None, url)))
    return [out[i] for i in RECEIVER_IDS]


async def _forgeries(ctx: Context, real: forge.Parsed, out: dict[str, CheckResult]) -> None:
    timer = Timer()
    tampered = _tamper(ctx.token or "")
    if tampered is None:
        out["oauth.tampered_token"] = skipped(
            "oauth.tampered_token", "oauth", "the signature is too short to alter"
        )
    else:
        out["oauth.tampered_token"] = timer.stamp(
            judge_refusal(
                "oauth.tampered_token",
                await _send_all(ctx, [forge.Forgery("altered signature", tampered)]),
            )
        )
    timer = Timer()
    out["oauth.alg_none"] = timer.stamp(
        judge_refusal("oauth.alg_none", await _send_all(ctx, forge.alg_none(real)))
    )

    timer = Timer()
    jwks, source = await _find_jwks(ctx, real.claims)
    if jwks is None:
        out["oauth.alg_confusion"] = skipped("oauth.alg_confusion", "oauth", source)
    else:
        variants = forge.alg_confusion(real, jwks)
        if not variants:
            out["oauth.alg_confusion"] = skipped(
                "oauth.alg_confusion", "oauth", f"{visible(source)} has no RSA or EC key"
            )
        else:
            out["oauth.alg_confusion"] = timer.stamp(
                judge_refusal("oauth.alg_confusion", await _send_all(ctx, variants))
            )

    key = forge.ForgingKey()
    async with key_server(key) as server:
        by_check = forge.self_keyed(real, key, server.jku, server.x5u)
        for check_id, variants in by_check.items():
            timer = Timer()
            before = len(server.fetched)
            answers = await _send_all(ctx, variants)
            fetched = check_id in ("oauth.jku", "oauth.x5u") and len(server.fetched) > before
            out[check_id] = timer.stamp(judge_refusal(check_id, answers, fetched=fetched))


async def _expired(ctx: Context, claims: dict[str, Any] | None) -> CheckResult:
    s = ctx.settings
    wait, why = expiry_plan(
        claims,
        ctx.token_expires_in,
        ctx.token_obtained_at,
        time.time(),
        time.monotonic(),
        wait_limit=s.expiry_wait,
        leeway=s.expiry_leeway,
    )
    if wait is None:
        return skipped("oauth.expired_token", "oauth", why)
    timer = Timer()
    await asyncio.sleep(wait)  # the token's own clock: nothing to poll, its expiry is the event
    answer = await _send(ctx, ctx.token)
    return timer.stamp(judge_refusal("oauth.expired_token", [("the expired token", answer)]))


def _tamper(token: str) -> str | None:
    parts = token.split(".")
    if len(parts) != 3 or len(parts[2]) < 8:
        return None
    signature = parts[2]
    middle = len(signature) // 2
    # A middle character: the last one may only carry padding bits and change nothing.
    flipped = "A" if signature[middle] != "A" else "B"
    return f"{parts[0]}.{parts[1]}.{signature[:middle]}{flipped}{signature[middle + 1 :]}"
