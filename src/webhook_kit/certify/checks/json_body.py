"""json: a notification is accepted as application/json, with and without charset=utf-8."""

from __future__ import annotations

from webhook_kit.certify.context import Context, Timer, describe, skipped
from webhook_kit.certify.model import CheckResult

CHECK_IDS = ("json.content_type", "json.charset")
VARIANTS = (
    ("json.content_type", "application/json"),
    ("json.charset", "application/json; charset=utf-8"),
)


async def run(ctx: Context) -> list[CheckResult]:
    if not ctx.reachable or ctx.token is None:
        why = "needs a verified HTTPS endpoint and a token"
        return [skipped(i, "json", why) for i in CHECK_IDS]
    out = []
    for check_id, content_type in VARIANTS:
        timer = Timer()
        result = await ctx.post(ctx.notification(), token=ctx.token, content_type=content_type)
        if result.ok:
            out.append(
                timer.result(
                    check_id, "json", "pass", f"Content-Type: {content_type} -> {describe(result)}"
                )
            )
        else:
            out.append(
                timer.result(
                    check_id,
                    "json",
                    "fail",
                    f"sent a valid notification as Content-Type: {content_type} with a valid "
                    f"token; got {describe(result)}. The endpoint must accept "
                    "JSON bodies with this media type",
                )
            )
    return out
