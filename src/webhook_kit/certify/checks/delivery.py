"""delivery: each of the nine statuses, sent through the real dispatcher, gets a 2xx in time."""

from __future__ import annotations

from collections.abc import Sequence

from webhook_kit.certify.context import Context, blocked, ms
from webhook_kit.certify.model import CheckResult
from webhook_kit.contract import notifications
from webhook_kit.contract.schema import notification_validator
from webhook_kit.contract.statuses import STATUSES
from webhook_kit.delivery.dispatcher import Dispatcher, DispatcherSettings, Target
from webhook_kit.delivery.policy import RetryPolicy
from webhook_kit.storage.rows import AttemptRow
from webhook_kit.storage.url import open_storage

CHECK_IDS = tuple(f"delivery.{status}" for status in STATUSES)


def _fix(outcome: str, status: int | None) -> str:
    if outcome == "redirect":
        return "senders never follow redirects: answer 2xx at this URL itself"
    if outcome == "timeout":
        return "answer sooner: acknowledge first, process afterwards"
    if outcome == "unauthorized":
        return "the endpoint refused a valid token, even after a fresh one was fetched"
    if outcome == "token_error":
        return "the token endpoint did not issue a token"
    if status is not None and status >= 500:
        return "the endpoint failed on this status: every status must be accepted"
    return "every status must be accepted with a 2xx"


def judge(status: str, attempts: Sequence[AttemptRow]) -> CheckResult:
    """Pure: the last attempt of one status's notification decides."""
    check_id = f"delivery.{status}"
    if not attempts:
        return CheckResult(check_id, "delivery", "fail", "not attempted in time", 0.0)
    last = attempts[-1]
    took = float(last.duration_ms)
    if last.outcome == "success":
        return CheckResult(
            check_id, "delivery", "pass", f"HTTP {last.http_status} in {ms(took)}", took
        )
    return CheckResult(
        check_id,
        "delivery",
        "fail",
        f"sent a valid '{status}' notification with a valid token; got {last.outcome}: "
        f"{last.reason}. {_fix(last.outcome, last.http_status)}",
        took,
    )


async def run(ctx: Context) -> list[CheckResult]:
    if (by := ctx.needs_acceptance()) is not None:
        return [blocked(i, "delivery", by) for i in CHECK_IDS]
    s = ctx.settings
    bodies = [
        dict(body, test=True)
        for body in notifications.lifecycle(STATUSES, validation_id=ctx.validation_id + "-delivery")
    ]
    for body in bodies:
        notification_validator().check(body)  # never send what the contract forbids
    storage = await open_storage(":memory:")
    settings = DispatcherSettings(
        concurrency=1, timeout=s.timeout, ca_file=s.ca_file, policy=RetryPolicy(schedule=())
    )
    try:
        async with Dispatcher(
            storage.events, settings, target=Target(s.url, s.oauth)
        ) as dispatcher:
            ids = await dispatcher.enqueue_many(bodies)
            # Nine attempts, each bounded by the timeout (twice with a token refresh).
            await dispatcher.wait_idle(timeout=len(ids) * (2 * s.timeout + 5))
        attempts = await storage.events.attempts_of(ids)
        return [
            judge(status, attempts[event_id])
            for status, event_id in zip(STATUSES, ids, strict=True)
        ]
    finally:
        await storage.close()
