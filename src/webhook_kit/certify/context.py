"""What the checks share: settings, the dispatcher's HTTP session, and what earlier checks found."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from webhook_kit import notifications
from webhook_kit.certify.model import CertifySettings, CheckResult, Requirement, Verdict
from webhook_kit.delivery import transport
from webhook_kit.delivery.outcome import AttemptResult
from webhook_kit.ids import new_id
from webhook_kit.oauth.client import OAuthSettings
from webhook_kit.redact import scrub
from webhook_kit.schemas import notification_validator
from webhook_kit.timing import elapsed_ms


@dataclass
class Context:
    settings: CertifySettings
    session: aiohttp.ClientSession
    #: Set by the url and https checks: whether requests may be sent at all.
    reachable: bool = False
    #: Set by the oauth checks.
    token: str | None = None
    results: list[CheckResult] = field(default_factory=list)
    validation_id: str = field(default_factory=lambda: f"certify-{new_id()}")

    @property
    def oauth_settings(self) -> OAuthSettings:
        s = self.settings
        return OAuthSettings(
            s.token_url,
            s.client_id,
            s.client_secret,
            scope=s.scope,
            audience=s.audience,
            auth_method=s.auth_method,
            timeout=s.timeout,
        )

    def notification(self, status: str = "on-course", **extra: Any) -> dict[str, Any]:
        """A notification that passes the shipped schema (checked here, before it is sent)."""
        body = notifications.build(
            status,
            validation_id=self.validation_id,
            previous_status=None if status == "on-course" else "on-course",
            test=True,
        )
        notification_validator().check(body)
        body.update(extra)
        return body

    async def post(
        self,
        body: dict[str, Any],
        *,
        token: str | None,
        content_type: str = "application/json",
        url: str | None = None,
        event_id: str | None = None,
    ) -> AttemptResult:
        """One POST through the dispatcher's transport (no redirects, verified TLS)."""
        return await transport.post_once(
            self.session,
            url or self.settings.url,
            transport.encode(body),
            token=token,
            event_id=event_id or str(body["event_id"]),
            timeout=self.settings.timeout,
            content_type=content_type,
        )

    def clean(self, text: str) -> str:
        """Text with the client secret and the access token removed."""
        return scrub(text, [self.settings.client_secret, self.token])


Check = Callable[[Context], Awaitable[list[CheckResult]]]


class Timer:
    def __init__(self) -> None:
        self.started = time.perf_counter()

    def result(
        self, check_id: str, requirement: Requirement, verdict: Verdict, detail: str
    ) -> CheckResult:
        return CheckResult(check_id, requirement, verdict, detail, elapsed_ms(self.started))


def skipped(check_id: str, requirement: Requirement, why: str) -> CheckResult:
    return CheckResult(check_id, requirement, "skip", why, 0.0)


def describe(result: AttemptResult) -> str:
    """How an answer reads in a detail line."""
    if result.http_status is not None:
        return f"HTTP {result.http_status}"
    return f"{result.outcome} ({result.reason})"


def ms(value: float) -> str:
    """A duration for a detail line: a local endpoint answers in under a millisecond, and
    "0 ms" would read as nothing measured."""
    return f"{value:.1f} ms" if value < 10 else f"{value:.0f} ms"
