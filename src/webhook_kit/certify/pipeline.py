"""Run every check in order, sharing what earlier ones found; report progress as it goes.

One overall deadline bounds the run: an endpoint that completes TLS and then never answers
must not hold certify (or a CI job) for many minutes."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import replace

from webhook_kit.certify.checks import (
    availability,
    binding,
    binding_judges,
    delivery,
    https,
    json_body,
    oauth,
    oauth_token,
    robustness,
    url,
)
from webhook_kit.certify.context import Context
from webhook_kit.certify.model import CertifySettings, CheckResult, Report, Requirement, strictly
from webhook_kit.delivery import transport
from webhook_kit.display import visible
from webhook_kit.redact import scrub
from webhook_kit.tls import client_context

Progress = Callable[[CheckResult], None]
Stage = Callable[[Context], Awaitable[list[CheckResult]]]

#: In order: later checks use what earlier ones learned (reachability, the token, acceptance).
STAGES: tuple[tuple[Requirement, Stage, tuple[str, ...]], ...] = (
    ("url", url.run, url.CHECK_IDS),
    ("https", https.run, https.CHECK_IDS),
    ("oauth", oauth_token.run, oauth_token.CHECK_IDS),
    ("oauth", oauth.run, oauth.RECEIVER_IDS),
    ("oauth", binding.run, binding_judges.CHECK_IDS),
    ("json", json_body.run, json_body.CHECK_IDS),
    ("delivery", delivery.run, delivery.CHECK_IDS),
    ("availability", availability.run, availability.CHECK_IDS),
    ("robustness", robustness.run, robustness.CHECK_IDS),
)
#: Every check id, in the order reports list them (the pytest plugin makes one item per id).
CHECK_IDS: tuple[str, ...] = tuple(i for _, _, ids in STAGES for i in ids)


async def certify(
    settings: CertifySettings,
    progress: Progress | None = None,
    soak_progress: availability.SoakProgress | None = None,
) -> Report:
    """Certify ``settings.url``; never raises for what the endpoint does, only reports it."""
    session = transport.make_session(client_context(settings.ca_file), limit=8)
    results: list[CheckResult] = []
    async with session:
        # The checks see what earlier ones found (binding checks skip after oauth.no_token).
        ctx = Context(settings=settings, session=session, results=results)

        def record(result: CheckResult) -> None:
            results.append(clean(ctx, result))
            if progress is not None:
                progress(results[-1])

        try:
            async with asyncio.timeout(settings.budget):
                for _, run, _ids in STAGES:
                    if run is availability.run:
                        found = await availability.run(ctx, soak_progress)
                    else:
                        found = await run(ctx)
                    for result in found:
                        record(result)
        except TimeoutError:
            for late in unfinished(settings, {r.id for r in results}):
                record(late)
    return Report(settings.url, tuple(results), strict=settings.strict)


def clean(ctx: Context, result: CheckResult) -> CheckResult:
    """The one place details are cleaned, so no check needs to remember to: secrets go, and
    remote text can no longer drive a terminal or break XML. ``--strict`` applies here too."""
    s = ctx.settings
    secrets = [*s.oauth.secrets, ctx.token, *ctx.tokens_seen]
    cleaned = replace(result, detail=visible(scrub(result.detail, secrets)))
    return strictly(cleaned) if s.strict else cleaned


def unfinished(settings: CertifySettings, done: set[str]) -> list[CheckResult]:
    """The checks the overall deadline cut off: an endpoint too slow to certify is not
    available, so they fail, saying why."""
    return [
        CheckResult(
            check_id,
            requirement,
            "fail",
            f"not finished within certify's overall deadline of {settings.budget:g} s: the "
            "endpoint answers too slowly to be certified (see the checks before this one)",
        )
        for requirement, _, ids in STAGES
        for check_id in ids
        if check_id not in done
    ]
