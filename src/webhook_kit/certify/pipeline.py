"""Run every check in order, sharing what earlier ones found; report progress as it goes.

One overall deadline bounds the run: an endpoint that completes TLS and then never answers
must not hold certify (or a CI job) for many minutes."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from webhook_kit.certify.checks import (
    availability,
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
        ctx = Context(settings=settings, session=session)

        def clean(result: CheckResult) -> CheckResult:
            # The one place details are cleaned: no check needs to remember to. Secrets go,
            # and remote text can no longer drive a terminal or break XML.
            s = ctx.settings
            secrets = [s.oauth.client_secret, ctx.token, *ctx.tokens_seen]
            detail = visible(scrub(result.detail, secrets))
            cleaned = CheckResult(
                result.id,
                result.requirement,
                result.verdict,
                detail,
                result.duration_ms,
                result.blocked_by,
                result.severity,
            )
            return strictly(cleaned) if s.strict else cleaned

        async def stages() -> None:
            for _, run, _ids in STAGES:
                if run is availability.run:
                    found = await availability.run(ctx, soak_progress)
                else:
                    found = await run(ctx)
                for result in found:
                    result = clean(result)
                    results.append(result)
                    if progress is not None:
                        progress(result)

        try:
            async with asyncio.timeout(settings.budget):
                await stages()
        except TimeoutError:
            done = {r.id for r in results}
            for requirement, _, ids in STAGES:
                for check_id in ids:
                    if check_id in done:
                        continue
                    late = clean(
                        CheckResult(
                            check_id,
                            requirement,
                            "fail",
                            f"not finished within certify's overall deadline of "
                            f"{settings.budget:g} s: the endpoint answers too slowly to be "
                            "certified (see the checks before this one)",
                        )
                    )
                    results.append(late)
                    if progress is not None:
                        progress(late)
    return Report(settings.url, tuple(results), strict=settings.strict)
