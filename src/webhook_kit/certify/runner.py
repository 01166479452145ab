"""Run every check in order, sharing what earlier ones found; report progress as it goes."""

from __future__ import annotations

from collections.abc import Callable

from webhook_kit.certify.checks import (
    availability,
    delivery,
    https,
    json_body,
    oauth,
    robustness,
    url,
)
from webhook_kit.certify.context import Check, Context
from webhook_kit.certify.model import CertifySettings, CheckResult, Report
from webhook_kit.delivery import transport
from webhook_kit.tls import client_context

#: In order: later checks use what earlier ones learned (reachability, the token).
STAGES: tuple[tuple[str, Check, tuple[str, ...]], ...] = (
    ("url", url.run, url.CHECK_IDS),
    ("https", https.run, https.CHECK_IDS),
    ("oauth", oauth.run, oauth.CHECK_IDS),
    ("json", json_body.run, json_body.CHECK_IDS),
    ("delivery", delivery.run, delivery.CHECK_IDS),
    ("availability", availability.run, availability.CHECK_IDS),
    ("robustness", robustness.run, robustness.CHECK_IDS),
)
#: Every check id, in the order reports list them (the pytest plugin makes one item per id).
CHECK_IDS: tuple[str, ...] = tuple(i for _, _, ids in STAGES for i in ids)

Progress = Callable[[CheckResult], None]


async def certify(settings: CertifySettings, progress: Progress | None = None) -> Report:
    """Certify ``settings.url``; never raises for what the endpoint does, only reports it."""
    session = transport.make_session(client_context(settings.ca_file), limit=8)
    results: list[CheckResult] = []
    async with session:
        ctx = Context(settings=settings, session=session)
        for _, run, _ids in STAGES:
            for result in await run(ctx):
                # The one place details are cleaned: no check needs to remember to.
                clean = CheckResult(
                    result.id,
                    result.requirement,
                    result.verdict,
                    ctx.clean(result.detail),
                    result.duration_ms,
                )
                results.append(clean)
                if progress is not None:
                    progress(clean)
    return Report(settings.url, tuple(results))
