"""What the checks share: settings, the dispatcher's HTTP session, and what earlier checks found."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any

import aiohttp

from webhook_kit.certify.model import CertifySettings, CheckResult, Requirement, Verdict
from webhook_kit.contract import notifications
from webhook_kit.contract.schema import notification_validator
from webhook_kit.delivery import transport
from webhook_kit.delivery.outcome import AttemptResult
from webhook_kit.errors import TokenFetchError
from webhook_kit.ids import new_id
from webhook_kit.oauth.client import OAuthClient
from webhook_kit.timing import elapsed_ms


@dataclass
class Context:
    settings: CertifySettings
    session: aiohttp.ClientSession
    #: The failed check that makes sending anything to the endpoint pointless (url or https).
    connection_blocker: str | None = None
    #: The failed check that left certify without a token.
    token_blocker: str | None = None
    #: The failed check that shows a valid token is refused (so content checks cannot judge).
    acceptance_blocker: str | None = None
    token: str | None = None
    #: The client that got ``token``: it refetches once the token nears expiry (a soak, or the
    #: expired-token replay, outlives a short-lived token).
    oauth_client: OAuthClient | None = None
    #: Every token obtained in this run, so that none can leak into a report.
    tokens_seen: list[str] = field(default_factory=list)
    #: When the token was obtained (monotonic seconds), for the expiry replay.
    token_obtained_at: float = 0.0
    token_expires_in: float | None = None
    #: The receiver's published keys, when discovery found them.
    jwks: dict[str, Any] | None = None
    jwks_source: str | None = None
    #: The jwks_uri from --issuer's metadata, if any.
    issuer_jwks_uri: str | None = None
    results: list[CheckResult] = field(default_factory=list)
    validation_id: str = field(default_factory=lambda: f"certify-{new_id()}")

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
        """One POST through the dispatcher's transport (no redirects, verified TLS), with the
        token presented as the sender presents it: over its client certificate, and as
        ``DPoP`` with a proof when the token is DPoP-bound."""
        target = url or self.settings.url
        client = self.oauth_client
        encoded = transport.encode(body)
        event = event_id or str(body["event_id"])
        bound = client is not None and (
            client.token_scheme == "DPoP" or client.tls_context is not None
        )
        if client is not None and bound and token is not None and token in self.tokens_seen:
            if content_type == "application/json":
                # The sender's own path: proofs with the receiver's nonce, one retry for it.
                return await transport.deliver(
                    self.session,
                    client,
                    target,
                    encoded,
                    event_id=event,
                    timeout=self.settings.timeout,
                )
            return await transport.post_once(
                self.session,
                target,
                encoded,
                token=token,
                event_id=event,
                timeout=self.settings.timeout,
                content_type=content_type,
                extra_headers=client.resource_headers(token, "POST", target),
                ssl_context=client.tls_context,
            )
        return await transport.post_once(
            self.session,
            target,
            encoded,
            token=token,
            event_id=event,
            timeout=self.settings.timeout,
            content_type=content_type,
            ssl_context=client.tls_context if client is not None else None,
        )

    async def valid_token(self) -> str | None:
        """A token the sender would use now: the cached one while fresh, else a new one."""
        if self.oauth_client is None:
            return self.token
        try:
            token = await self.oauth_client.token()
        except TokenFetchError:
            return self.token
        if token not in self.tokens_seen:
            self.tokens_seen.append(token)
        return token

    def needs_connection(self) -> str | None:
        return self.connection_blocker

    def needs_token(self) -> str | None:
        return self.connection_blocker or self.token_blocker

    def needs_acceptance(self) -> str | None:
        return self.connection_blocker or self.token_blocker or self.acceptance_blocker


Check = Callable[[Context], Awaitable[list[CheckResult]]]


class Timer:
    def __init__(self) -> None:
        self.started = time.perf_counter()

    def result(
        self, check_id: str, requirement: Requirement, verdict: Verdict, detail: str
    ) -> CheckResult:
        return CheckResult(check_id, requirement, verdict, detail, elapsed_ms(self.started))

    def stamp(self, result: CheckResult) -> CheckResult:
        """``result`` (from a pure judge) with the time spent since this timer started."""
        return replace(result, duration_ms=elapsed_ms(self.started))


def skipped(check_id: str, requirement: Requirement, why: str) -> CheckResult:
    return CheckResult(check_id, requirement, "skip", why, 0.0)


def blocked(check_id: str, requirement: Requirement, by: str) -> CheckResult:
    """A check that cannot run because ``by`` failed: the cause is named there, once."""
    return CheckResult(check_id, requirement, "skip", f"blocked by {by}", 0.0, blocked_by=by)


def describe(result: AttemptResult) -> str:
    """How an answer reads in a detail line."""
    if result.http_status is not None:
        return f"HTTP {result.http_status}"
    return f"{result.outcome} ({result.reason})"


def ms(value: float) -> str:
    """A duration for a detail line: a local endpoint answers in under a millisecond, and
    "0 ms" would read as nothing measured."""
    return f"{value:.1f} ms" if value < 10 else f"{value:.0f} ms"
