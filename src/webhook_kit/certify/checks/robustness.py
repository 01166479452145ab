"""robustness: a duplicate delivery and an unknown extra field are accepted. Warnings only:
neither lets anybody in, and the documented requirements do not name them."""

from __future__ import annotations

from webhook_kit.certify.context import Context, Timer, blocked, describe
from webhook_kit.certify.model import CheckResult
from webhook_kit.delivery.outcome import AttemptResult

CHECK_IDS = ("robustness.duplicate", "robustness.unknown_field")


def judge_duplicate(first: AttemptResult, second: AttemptResult) -> CheckResult:
    if first.ok and second.ok:
        return CheckResult(
            "robustness.duplicate",
            "robustness",
            "pass",
            "the same Webhook-Id twice: both answered 2xx",
        )
    return CheckResult(
        "robustness.duplicate",
        "robustness",
        "warn",
        f"sent the same notification twice (same Webhook-Id): {describe(first)}, then "
        f"{describe(second)}. Retries repeat the Webhook-Id: treat it as an idempotency key "
        "and answer 2xx again",
    )


def judge_unknown_field(result: AttemptResult) -> CheckResult:
    if result.ok:
        return CheckResult(
            "robustness.unknown_field", "robustness", "pass", "an unknown extra field was accepted"
        )
    return CheckResult(
        "robustness.unknown_field",
        "robustness",
        "warn",
        f"a notification with an unknown field got {describe(result)}; ignore fields you do "
        "not know (forward compatibility)",
    )


async def run(ctx: Context) -> list[CheckResult]:
    if (by := ctx.needs_acceptance()) is not None:
        return [blocked(i, "robustness", by) for i in CHECK_IDS]
    timer = Timer()
    body = ctx.notification()
    token = await ctx.valid_token()
    first = await ctx.post(body, token=token)
    second = await ctx.post(body, token=token)
    duplicate = timer.stamp(judge_duplicate(first, second))
    timer = Timer()
    extended = ctx.notification(x_future_field={"added": "in a later version"})
    token = await ctx.valid_token()
    unknown = timer.stamp(judge_unknown_field(await ctx.post(extended, token=token)))
    return [duplicate, unknown]
