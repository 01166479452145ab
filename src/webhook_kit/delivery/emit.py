"""``webhook-kit emit``: send notifications to any endpoint through the real dispatcher."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from webhook_kit.contract import notifications
from webhook_kit.delivery.dispatcher import Dispatcher, DispatcherSettings, Target
from webhook_kit.delivery.guard import AddressPolicy
from webhook_kit.delivery.policy import RetryPolicy
from webhook_kit.display import visible
from webhook_kit.ids import new_id
from webhook_kit.oauth.client import OAuthSettings
from webhook_kit.storage.url import open_storage


@dataclass(frozen=True)
class EmitOutcome:
    status: str
    event_id: str
    state: str
    attempts: int
    reason: str
    duration_ms: float


#: The longest a command-line retry waits, its own backoff or a receiver's ``Retry-After``.
MAX_RETRY_DELAY = 30.0


def retry_schedule(retries: int) -> tuple[float, ...]:
    """``retries`` retries, 1 s apart and doubling: quick enough for a command line."""
    return tuple(float(min(2**n, MAX_RETRY_DELAY)) for n in range(retries))


async def emit(
    url: str,
    oauth: OAuthSettings,
    statuses: Sequence[str],
    *,
    ca_file: Path | None = None,
    timeout: float = 10.0,
    retries: int = 0,
    db: str = ":memory:",
    echo: Callable[[EmitOutcome], None] | None = None,
    address_policy: AddressPolicy | None = None,
) -> list[EmitOutcome]:
    """Send ``statuses`` for one new validation to ``url``; ``echo`` gets each outcome.

    An outcome's ``reason`` may quote the receiver (a redirect's Location); it is made visible
    (escape sequences shown, never acted on) where it is worded, in the transport.
    """
    storage = await open_storage(db)
    settings = DispatcherSettings(
        concurrency=4,
        timeout=timeout,
        ca_file=ca_file,
        # A receiver's Retry-After is honoured, but a person waits at the terminal: at most as
        # long as emit's own longest delay, not the provider's hour.
        policy=RetryPolicy(schedule=retry_schedule(retries), retry_after_cap=MAX_RETRY_DELAY),
        address_policy=address_policy,
    )
    validation_id = new_id()
    try:
        async with Dispatcher(storage.events, settings, target=Target(url, oauth)) as dispatcher:
            bodies = list(notifications.lifecycle(tuple(statuses), validation_id=validation_id))
            event_ids = await dispatcher.enqueue_many(bodies)
            ids = [
                (body["status"], event_id) for body, event_id in zip(bodies, event_ids, strict=True)
            ]
            await dispatcher.wait_idle()
        outcomes = []
        every = await storage.events.attempts_of([event_id for _, event_id in ids])
        for status, event_id in ids:
            row = await storage.events.event(event_id)
            attempts = every[event_id]
            assert row is not None
            last = attempts[-1] if attempts else None
            outcome = EmitOutcome(
                status=status,
                event_id=event_id,
                state=row.state,
                attempts=len(attempts),
                reason=visible(last.reason) if last else "not attempted",
                duration_ms=last.duration_ms if last else 0.0,
            )
            outcomes.append(outcome)
            if echo is not None:
                echo(outcome)
        return outcomes
    finally:
        await storage.close()
