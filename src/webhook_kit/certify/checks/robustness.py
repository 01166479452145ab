"""robustness: a duplicate delivery and an unknown extra field are accepted. Warnings only."""

from __future__ import annotations

from webhook_kit.certify.context import Context, Timer, describe, skipped
from webhook_kit.certify.model import CheckResult

CHECK_IDS = ("robustness.duplicate", "robustness.unknown_field")


async def run(ctx: Context) -> list[CheckResult]:
    if not ctx.reachable or ctx.token is None:
        return [
            skipped(i, "robustness", "needs a verified HTTPS endpoint and a token")
            for i in CHECK_IDS
        ]
    out = []
    timer = Timer()
    body = ctx.notification()
    first = await ctx.post(body, token=ctx.token)
    second = await ctx.post(body, token=ctx.token)
    if first.ok and second.ok:
        out.append(
            timer.result(
                "robustness.duplicate",
                "robustness",
                "pass",
                "the same Webhook-Id twice: both answered 2xx",
            )
        )
    else:
        out.append(
            timer.result(
                "robustness.duplicate",
                "robustness",
                "warn",
                f"sent the same notification twice (same Webhook-Id): {describe(first)}, then "
                f"{describe(second)}. Retries repeat the Webhook-Id: treat it as an "
                "idempotency key and answer 2xx again",
            )
        )
    timer = Timer()
    extended = ctx.notification(x_future_field={"added": "in a later version"})
    result = await ctx.post(extended, token=ctx.token)
    if result.ok:
        out.append(
            timer.result(
                "robustness.unknown_field",
                "robustness",
                "pass",
                "an unknown extra field was accepted",
            )
        )
    else:
        out.append(
            timer.result(
                "robustness.unknown_field",
                "robustness",
                "warn",
                f"a notification with an unknown field got {describe(result)}; ignore "
                "fields you do not know (forward compatibility)",
            )
        )
    return out
