"""oauth, bound tokens: a receiver that requires them refuses a token away from its sender.

Runs after the receiver-side oauth checks, with the token certify got as the sender gets it.
It first asks whether the receiver requires a binding at all (a token of the same client
without that binding is presented); then sends the bound token bare, with DPoP proofs for
another URL, another method, by another key, a replayed proof, and over a connection with
another client certificate. The judges are in :mod:`binding_judges`.
"""

from __future__ import annotations

import base64
import json
import tempfile
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from webhook_kit.certify import impostor
from webhook_kit.certify.checks.binding_judges import (
    CHECK_IDS,
    BindingFacts,
    judge_bound,
    judge_replay_first,
    plan,
)
from webhook_kit.certify.checks.oauth_judges import Answer
from webhook_kit.certify.context import Context, Timer, blocked, skipped
from webhook_kit.certify.forge import parse
from webhook_kit.certify.model import CheckResult
from webhook_kit.certify.presenting import Build, Presentation, as_sender, post, send
from webhook_kit.errors import ConfigError, TokenFetchError
from webhook_kit.oauth import dpop
from webhook_kit.oauth.client import OAuthClient
from webhook_kit.oauth.client_auth import TLS_METHODS
from webhook_kit.oauth.mtls import load_client_identity


async def run(ctx: Context) -> list[CheckResult]:
    by = ctx.needs_acceptance()
    if by is not None:
        return [blocked(i, "oauth", by) for i in CHECK_IDS]
    if any(r.id == "oauth.no_token" and r.verdict == "fail" for r in ctx.results):
        return [blocked(i, "oauth", "oauth.no_token") for i in CHECK_IDS]
    client, token = ctx.oauth_client, await ctx.valid_token()
    if client is None or token is None:  # pragma: no cover - needs_acceptance covers it
        return [skipped(i, "oauth", "no token") for i in CHECK_IDS]
    facts = await _facts(ctx, client, token)
    reasons = plan(facts)
    out: dict[str, CheckResult] = {
        i: skipped(i, "oauth", why) for i, why in reasons.items() if why is not None
    }
    url = ctx.settings.url
    dpop_runs = reasons["oauth.dpop_wrong_htu"] is None
    certificate_runs = reasons["oauth.mtls_other_cert"] is None
    if "oauth.bound_token_bare" not in out:
        variants = _bare(client, token, url, dpop=dpop_runs, certificate=certificate_runs)
        out["oauth.bound_token_bare"] = await _judged(ctx, "oauth.bound_token_bare", variants)
    if dpop_runs:
        out.update(await _dpop_checks(ctx, client, token))
    if certificate_runs:
        out["oauth.mtls_other_cert"] = await _other_certificate(ctx, client, token)
    return [out[i] for i in CHECK_IDS]


async def _judged(ctx: Context, check_id: str, variants: list[tuple[str, Build]]) -> CheckResult:
    timer = Timer()
    answers = [(label, await send(ctx, build)) for label, build in variants]
    return timer.stamp(judge_bound(check_id, answers))


# -- does the receiver require the binding? ---------------------------------------------------


def _claims_cnf(token: str) -> dict[str, object] | None:
    parsed = parse(token)
    if parsed is None:
        return None
    cnf = parsed.claims.get("cnf")
    return cnf if isinstance(cnf, dict) else {}


async def _facts(ctx: Context, client: OAuthClient, token: str) -> BindingFacts:
    cnf = _claims_cnf(token)
    facts = BindingFacts(
        dpop_key=client.dpop_key is not None,
        dpop_bound=client.token_scheme == "DPoP" or bool(cnf and "jkt" in cnf),
        certificate=client.tls_context is not None,
        certificate_bound=None if cnf is None else "x5t#S256" in cnf,
    )
    if facts.dpop_key and facts.dpop_bound:
        facts = replace(facts, unbound_dpop_accepted=await _unbound_accepted(ctx, dpop=True))
    settings = ctx.settings.oauth
    if facts.certificate and facts.certificate_bound and settings.auth_method not in TLS_METHODS:
        accepted = await _unbound_accepted(ctx, dpop=False)
        facts = replace(facts, unbound_certificate_accepted=accepted)
    return facts


async def _unbound_accepted(ctx: Context, *, dpop: bool) -> bool | None:
    """Whether the receiver takes a token of the same client without the binding (a Bearer
    token for DPoP; a token got without the certificate); ``None`` when there is none to get."""
    oauth = ctx.settings.oauth
    try:
        if dpop:
            oauth = replace(oauth, dpop=None)
        else:
            oauth = oauth.with_credentials(cert_file=None, key_file=None)
        client = OAuthClient(oauth, ctx.session, ca_file=ctx.settings.ca_file)
        token = await client.token()
    except (ConfigError, TokenFetchError):
        return None
    ctx.tokens_seen.append(token)
    if dpop and client.token_scheme != "Bearer":
        return None
    answer = await send(ctx, lambda: as_sender(client, token, ctx.settings.url))
    return answer.accepted


# -- the checks ------------------------------------------------------------------------------


def _bare(
    client: OAuthClient, token: str, url: str, *, dpop: bool, certificate: bool
) -> list[tuple[str, Build]]:
    tls = client.tls_context
    variants: list[tuple[str, Build]] = []
    if dpop:
        variants.append(
            ("as Bearer, no proof", lambda: Presentation({"Authorization": f"Bearer {token}"}, tls))
        )
        variants.append(
            ("as DPoP, no proof", lambda: Presentation({"Authorization": f"DPoP {token}"}, tls))
        )
    if certificate:
        variants.append(
            (
                "without the client certificate",
                lambda: Presentation(client.resource_headers(token, "POST", url)),
            )
        )
    return variants


def _with_proof(client: OAuthClient, token: str, proof: str) -> Presentation:
    return Presentation({"Authorization": f"DPoP {token}", "DPoP": proof}, client.tls_context)


def _other_url(url: str) -> str:
    """Another path at the same origin (so the receiver's nonce still applies)."""
    parts = urlsplit(url)
    path = parts.path.rstrip("/")
    other = f"{path}-certify-other" if path else "/certify-other"
    return urlunsplit((parts.scheme, parts.netloc, other, "", ""))


def _proof_for(client: OAuthClient, token: str, method: str, url: str) -> Build:
    return lambda: _with_proof(client, token, client.proof(method, url, token))


def _nonce_in(proof: str) -> str | None:
    """The nonce certify's own client put in a proof it made (so another key's proof can
    carry the receiver's current nonce too)."""
    payload = proof.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    nonce = claims.get("nonce") if isinstance(claims, dict) else None
    return nonce if isinstance(nonce, str) else None


async def _dpop_checks(ctx: Context, client: OAuthClient, token: str) -> dict[str, CheckResult]:
    url = ctx.settings.url
    other_url = _other_url(url)
    key = client.dpop_key
    assert key is not None  # the DPoP checks run only with a DPoP key
    spare = dpop.DPoPKey.generate(key.algorithm)

    def other_key() -> Presentation:
        nonce = _nonce_in(client.proof("POST", url, token))
        proof = dpop.make_proof(spare, method="POST", url=url, access_token=token, nonce=nonce)
        return _with_proof(client, token, proof)

    checks: dict[str, list[tuple[str, Build]]] = {
        "oauth.dpop_wrong_htu": [
            (f"htu {other_url}", _proof_for(client, token, "POST", other_url)),
        ],
        "oauth.dpop_wrong_htm": [
            (f"htm {m}", _proof_for(client, token, m, url)) for m in ("GET", "PUT")
        ],
        "oauth.dpop_wrong_key": [("a proof by another key", other_key)],
    }
    out = {i: await _judged(ctx, i, variants) for i, variants in checks.items()}
    out["oauth.dpop_replay"] = await _replay(ctx, client, token)
    return out


async def _replay(ctx: Context, client: OAuthClient, token: str) -> CheckResult:
    timer = Timer()
    url = ctx.settings.url
    sent: list[Presentation] = []

    def fresh() -> Presentation:
        sent.append(as_sender(client, token, url))
        return sent[-1]

    first = await send(ctx, fresh)
    not_judged = judge_replay_first(first)
    if not_judged is not None:
        return timer.stamp(not_judged)
    again: Answer = await post(ctx, sent[-1], url)
    return timer.stamp(judge_bound("oauth.dpop_replay", [("the same proof again", again)]))


async def _other_certificate(ctx: Context, client: OAuthClient, token: str) -> CheckResult:
    s = ctx.settings
    url = s.url
    with tempfile.TemporaryDirectory(prefix="webhook-kit-certify-") as directory:
        if s.other_client_cert is not None and s.other_client_key is not None:
            cert_file, key_file = s.other_client_cert, s.other_client_key
            label = f"the certificate in {cert_file}"
        else:
            like = s.oauth.credentials.cert_file if s.oauth.credentials else None
            files = impostor.other_certificate(Path(directory), like=like)
            cert_file, key_file = files.cert_file, files.key_file
            label = "a self-signed certificate with the same subject"
        try:
            tls = load_client_identity(cert_file, key_file).ssl_context(s.ca_file)
        except ConfigError as exc:
            return skipped("oauth.mtls_other_cert", "oauth", f"the other certificate: {exc}")

        def other() -> Presentation:
            return Presentation(
                client.resource_headers(token, "POST", url), tls, foreign_certificate=True
            )

        return await _judged(ctx, "oauth.mtls_other_cert", [(label, other)])
