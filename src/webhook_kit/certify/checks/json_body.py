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


def judge(check_id: str, content_type: str, result: AttemptResult) -> CheckResult:
    """Pure: 2xx passes; anything else, with a valid token, refuses JSON."""
    if result.ok:
        return CheckResult(
            check_id, "json", "pass", f"Content-Type: {content_type} -> {describe(result)}"
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
        result = await ctx.post(ctx.notification(), token=ctx.token, content_type=content_type)
        out.append(timer.stamp(judge(check_id, content_type, result)))
    return out
