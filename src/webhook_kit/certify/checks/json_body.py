"""json: a notification is accepted as application/json, with and without charset=utf-8."""

from __future__ import annotations

from webhook_kit.certify.context import Context, Timer, blocked, describe
from webhook_kit.certify.model import CheckResult
from webhook_kit.delivery.outcome import AttemptResult

CHECK_IDS = ("json.content_type", "json.charset")
VARIANTS = (
    ("json.content_type", "application/json"),
    ("json.charset", "application/json; charset=utf-8"),
)


#: Answers that refuse the body itself: the media type or its content.
JSON_REFUSALS = frozenset({400, 406, 413, 415, 422})


def judge(check_id: str, content_type: str, result: AttemptResult) -> CheckResult:
    """Pure: 2xx passes; a refusal of the body fails. A redirect, a timeout or a 5xx says
    nothing about JSON: the delivery checks name that cause, and blaming JSON would mislead."""
    if result.ok:
        return CheckResult(
            check_id, "json", "pass", f"Content-Type: {content_type} -> {describe(result)}"
        )
    if result.http_status not in JSON_REFUSALS:
        return CheckResult(
            check_id,
            "json",
            "skip",
            f"Content-Type: {content_type} -> {describe(result)}: not a refusal of JSON; the "
            "delivery and availability checks judge this answer",
        )
    return CheckResult(
        check_id,
        "json",
        "fail",
        f"sent a valid notification as Content-Type: {content_type} with a valid token; got "
        f"{describe(result)}. The endpoint must accept JSON bodies with this media type",
    )


async def run(ctx: Context) -> list[CheckResult]:
    if (by := ctx.needs_acceptance()) is not None:
        return [blocked(i, "json", by) for i in CHECK_IDS]
    out = []
    for check_id, content_type in VARIANTS:
        timer = Timer()
        token = await ctx.valid_token()
        result = await ctx.post(ctx.notification(), token=token, content_type=content_type)
        out.append(timer.stamp(judge(check_id, content_type, result)))
    if out[0].verdict == "fail":
        # Every later check posts application/json: it would fail the same way, once per check.
        ctx.acceptance_blocker = "json.content_type"
    return out
