"""The dispatcher against the kit's real endpoint: TLS, OAuth, faults, the injected clock."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from webhook_kit.contract import notifications
from webhook_kit.contract.statuses import STATUSES
from webhook_kit.delivery.dispatcher import Dispatcher, DispatcherSettings, Target
from webhook_kit.delivery.policy import DEFAULT_SCHEDULE, RetryPolicy
from webhook_kit.endpoint.service import Endpoint
from webhook_kit.endpoint.settings import FaultRule, FaultSettings
from webhook_kit.errors import ConfigError
from webhook_kit.oauth.client import OAuthSettings
from webhook_kit.serving.loop import run
from webhook_kit.storage.base import Storage
from webhook_kit.storage.rows import EventFilter, NewEvent
from webhook_kit.storage.url import open_storage
from webhook_kit.testing import FakeClock

# The delivery engine against a fresh endpoint per test, retries and token expiry included.
pytestmark = pytest.mark.slow


def target_for(sink: Endpoint) -> Target:
    info = sink.info
    return Target(info.url, OAuthSettings(info.token_url, info.client_id, info.client_secret))


def settings_for(sink: Endpoint, **kw: Any) -> DispatcherSettings:
    assert sink.info.ca_file is not None
    return DispatcherSettings(ca_file=Path(sink.info.ca_file), **kw)


def faults(*rules: str, **kw: Any) -> FaultSettings:
    return FaultSettings(respond=tuple(FaultRule.parse(r) for r in rules), **kw)


T = TypeVar("T")


def drive(
    scenario: Callable[[Storage], Awaitable[T]],
    *,
    clock: Callable[[], float] = time.time,
    db: str = ":memory:",
) -> T:
    """Run ``scenario`` on a fresh storage (an in-memory SQLite database unless ``db`` says
    otherwise) on the dispatcher's clock, closing it afterwards."""

    async def main() -> T:
        storage = await open_storage(db, clock=clock)
        try:
            return await scenario(storage)
        finally:
            await storage.close()

    result: T = run(main())
    return result


def test_every_status_in_order_with_the_contract_headers(start_endpoint: Any, db_url: str) -> None:
    sink: Endpoint = start_endpoint()

    async def scenario(storage: Storage) -> None:
        async with Dispatcher(storage.events, settings_for(sink), target=target_for(sink)) as d:
            for body in notifications.lifecycle(validation_id="v-1"):
                await d.enqueue(body)
            assert await d.wait_idle(30)
        assert await storage.events.counts() == {"sent": len(STATUSES)}

    drive(scenario, db=db_url)
    received = sink.recorder.query(validation_id="v-1")
    assert [r["status"] for r in received] == list(STATUSES)
    assert all(r["accepted"] for r in received)
    headers = received[0]["headers"]
    assert headers["content-type"] == "application/json"
    assert headers["user-agent"].startswith("webhook-kit/")
    assert headers["webhook-id"] == received[0]["event_id"]
    assert headers["webhook-timestamp"].isdigit()


def test_500_then_success_on_the_injected_clock(start_endpoint: Any) -> None:
    sink: Endpoint = start_endpoint(faults=faults("on-course=500x1"))
    clock = FakeClock()

    async def scenario(storage: Storage) -> None:
        async with Dispatcher(
            storage.events,
            settings_for(sink),
            target=target_for(sink),
            clock=clock,
            sleep=clock.sleep,
        ) as d:
            event_id = await d.enqueue(
                notifications.build("on-course", validation_id="v", previous_status=None)
            )
            assert await d.wait_idle(30)
        attempts = await storage.events.attempts(event_id)
        assert [(a.outcome, a.http_status) for a in attempts] == [
            ("http_error", 500),
            ("success", 200),
        ]
        gap = attempts[1].at - attempts[0].at
        assert DEFAULT_SCHEDULE[0] * 0.8 <= gap <= DEFAULT_SCHEDULE[0] * 1.2

    drive(scenario, clock=clock)


def test_retry_after_is_honoured(start_endpoint: Any) -> None:
    sink: Endpoint = start_endpoint(faults=faults("*=503x1", retry_after=90))
    clock = FakeClock()

    async def scenario(storage: Storage) -> None:
        async with Dispatcher(
            storage.events,
            settings_for(sink),
            target=target_for(sink),
            clock=clock,
            sleep=clock.sleep,
        ) as d:
            event_id = await d.enqueue(
                notifications.build("deleted", validation_id="v", previous_status="confirmed")
            )
            assert await d.wait_idle(30)
        first, second = await storage.events.attempts(event_id)
        assert first.http_status == 503 and second.outcome == "success"
        assert second.at - first.at == pytest.approx(90, abs=0.01)

    drive(scenario, clock=clock)


def test_410_disables_the_webhook_and_keeps_the_event(start_endpoint: Any) -> None:
    sink: Endpoint = start_endpoint(faults=faults("*=410"))
    disabled: list[str] = []

    async def on_disable(account: str, reason: str) -> None:
        assert account == "default"
        disabled.append(reason)

    async def scenario(storage: Storage) -> None:
        async with Dispatcher(
            storage.events, settings_for(sink), target=target_for(sink), on_disable=on_disable
        ) as d:
            event_id = await d.enqueue(
                notifications.build("on-course", validation_id="v", previous_status=None)
            )
            for _ in range(200):
                if disabled:
                    break
                await asyncio.sleep(0.01)
            assert d.target is not None and d.target.enabled is False
            row = await storage.events.event(event_id)
            assert row is not None and row.state == "pending"
            assert "410" in (await storage.events.attempts(event_id))[0].reason
            # Nothing lost: it is delivered once the webhook is enabled again.
            assert await storage.events.outstanding() == 1

    drive(scenario)
    assert disabled and "410" in disabled[0]


def test_redirect_is_a_failure_and_is_not_followed(start_endpoint: Any) -> None:
    sink: Endpoint = start_endpoint(faults=faults("*=307"))

    async def scenario(storage: Storage) -> None:
        policy = RetryPolicy(schedule=())
        async with Dispatcher(
            storage.events, settings_for(sink, policy=policy), target=target_for(sink)
        ) as d:
            event_id = await d.enqueue(
                notifications.build("on-course", validation_id="v", previous_status=None)
            )
            assert await d.wait_idle(30)
        (attempt,) = await storage.events.attempts(event_id)
        assert attempt.outcome == "redirect" and "not followed" in attempt.reason
        row = await storage.events.event(event_id)
        assert row is not None and row.state == "failed"

    drive(scenario)
    assert [r["path"] for r in sink.recorder.query()] == ["/webhook"]


def test_token_is_cached_until_expiry_then_refetched(start_endpoint: Any) -> None:
    sink: Endpoint = start_endpoint(token_ttl=120)
    clock = FakeClock()

    async def scenario(storage: Storage) -> None:
        async with Dispatcher(
            storage.events,
            settings_for(sink),
            target=target_for(sink),
            clock=clock,
            sleep=clock.sleep,
        ) as d:
            for n in range(5):
                await d.enqueue(
                    notifications.build("on-course", validation_id=f"v{n}", previous_status=None)
                )
            assert await d.wait_idle(30)
            assert d.oauth is not None and d.oauth.fetches == 1
            # 120 s tokens are refreshed a quarter of their life early (30 s skew).
            clock.advance(91)
            await d.enqueue(
                notifications.build("on-course", validation_id="late", previous_status=None)
            )
            assert await d.wait_idle(30)
            assert d.oauth.fetches == 2

    drive(scenario, clock=clock)


def test_concurrent_deliveries_share_one_token_fetch(start_endpoint: Any) -> None:
    sink: Endpoint = start_endpoint()

    async def scenario(storage: Storage) -> None:
        async with Dispatcher(
            storage.events, settings_for(sink, concurrency=16), target=target_for(sink)
        ) as d:
            for n in range(32):
                await d.enqueue(
                    notifications.build("on-course", validation_id=f"v{n}", previous_status=None)
                )
            assert await d.wait_idle(30)
            assert d.oauth is not None and d.oauth.fetches == 1

    drive(scenario)
    assert sink.issuer.issued == 1


def test_401_drops_the_token_refetches_and_retries_once(start_endpoint: Any) -> None:
    sink: Endpoint = start_endpoint()

    async def scenario(storage: Storage) -> None:
        async with Dispatcher(storage.events, settings_for(sink), target=target_for(sink)) as d:
            await d.enqueue(
                notifications.build("on-course", validation_id="a", previous_status=None)
            )
            assert await d.wait_idle(30)
            # The receiver rotates its signing key: the cached token is now refused with a 401.
            async with d.session.post(
                sink.urls.base + "/_kit/rotate-key", headers={"X-Webhook-Kit": "1"}
            ) as response:
                assert response.status == 200
            event_id = await d.enqueue(
                notifications.build("on-course", validation_id="b", previous_status=None)
            )
            assert await d.wait_idle(30)
            (attempt,) = await storage.events.attempts(event_id)
            assert attempt.outcome == "success"
            assert d.oauth is not None and d.oauth.fetches == 2

    drive(scenario)
    refused = sink.recorder.query(accepted=False)
    assert [(r["http_status"], r["reason"]) for r in refused] == [(401, "401 bad signature")]


def test_multi_day_schedule_runs_on_the_injected_clock(start_endpoint: Any) -> None:
    sink: Endpoint = start_endpoint(faults=faults("*=500"))
    clock = FakeClock()
    policy = RetryPolicy()  # the default three-day schedule

    async def scenario(storage: Storage) -> None:
        async with Dispatcher(
            storage.events,
            settings_for(sink, policy=policy),
            target=target_for(sink),
            clock=clock,
            sleep=clock.sleep,
        ) as d:
            start = clock()
            event_id = await d.enqueue(
                notifications.build("on-course", validation_id="v", previous_status=None)
            )
            assert await d.wait_idle(60)
        attempts = await storage.events.attempts(event_id)
        assert len(attempts) == policy.max_attempts
        row = await storage.events.event(event_id)
        assert row is not None and row.state == "failed"
        span_days = (attempts[-1].at - start) / 86400
        assert 2.0 < span_days < 3.7
        gaps = [b.at - a.at for a, b in zip(attempts, attempts[1:], strict=False)]
        for gap, planned in zip(gaps, policy.schedule, strict=True):
            assert planned * 0.8 <= gap <= planned * 1.2 + 1

    drive(scenario, clock=clock)
    assert len(sink.recorder.query()) == policy.max_attempts


def test_events_of_one_validation_wait_for_the_earlier_one(start_endpoint: Any) -> None:
    sink: Endpoint = start_endpoint(faults=faults("on-course=503x1", retry_after=600))
    clock = FakeClock()
    start = clock()
    times: dict[str, list[float]] = {}

    async def attempt_times(storage: Storage, validation_id: str) -> list[float]:
        rows = await storage.events.events(EventFilter(validation_id=validation_id))
        attempts = await storage.events.attempts_of([r.event_id for r in rows])
        return [a.at - start for r in rows for a in attempts[r.event_id]]

    async def scenario(storage: Storage) -> None:
        async with Dispatcher(
            storage.events,
            settings_for(sink),
            target=target_for(sink),
            clock=clock,
            sleep=clock.sleep,
        ) as d:
            for body in notifications.lifecycle(
                ("on-course", "document-uploaded"), validation_id="slow"
            ):
                await d.enqueue(body)
            await d.enqueue(
                notifications.build("deleted", validation_id="other", previous_status="confirmed")
            )
            assert await d.wait_idle(30)
        for validation_id in ("slow", "other"):
            times[validation_id] = await attempt_times(storage, validation_id)

    drive(scenario, clock=clock)
    slow = [(r["status"], r["http_status"]) for r in sink.recorder.query(validation_id="slow")]
    assert slow == [("on-course", 503), ("on-course", 200), ("document-uploaded", 200)]

    # On the injected clock: the slow validation waited the 600 s it was asked to wait, in order;
    # the other validation was delivered at once, without waiting for it.
    on_course_1, on_course_2, document = times["slow"]
    assert on_course_1 < 1 and 600 <= on_course_2 < 601 and document >= on_course_2
    (other,) = times["other"]
    assert other < 1


def test_restart_on_the_same_database_delivers_what_was_left(
    start_endpoint: Any, db_url: str
) -> None:
    sink: Endpoint = start_endpoint()
    db = db_url

    async def first_run(storage: Storage) -> None:
        # No target yet: events are stored and held, as after a crash before delivery.
        async with Dispatcher(storage.events, settings_for(sink)) as d:
            for body in notifications.lifecycle(validation_id="v"):
                await d.enqueue(body)
            assert await storage.events.outstanding() == len(STATUSES)

    async def second_run(storage: Storage) -> None:
        async with Dispatcher(storage.events, settings_for(sink), target=target_for(sink)) as d:
            assert await d.wait_idle(30)
        assert await storage.events.counts() == {"sent": len(STATUSES)}

    drive(first_run, db=db)
    assert sink.recorder.query() == []
    drive(second_run, db=db)
    assert [r["status"] for r in sink.recorder.query()] == list(STATUSES)


def test_untrusted_certificate_is_a_tls_error(start_endpoint: Any) -> None:
    sink: Endpoint = start_endpoint()

    async def scenario(storage: Storage) -> None:
        policy = RetryPolicy(schedule=())
        async with Dispatcher(
            storage.events, DispatcherSettings(policy=policy), target=target_for(sink)
        ) as d:
            event_id = await d.enqueue(
                notifications.build("on-course", validation_id="v", previous_status=None)
            )
            assert await d.wait_idle(30)
        (attempt,) = await storage.events.attempts(event_id)
        # The token URL is on the same untrusted server, so the token fetch fails first.
        assert attempt.outcome == "token_error" and "TLS" in attempt.reason

    drive(scenario)


def test_secret_never_in_attempt_reasons(start_endpoint: Any) -> None:
    sink: Endpoint = start_endpoint()
    info = sink.info
    wrong = Target(info.url, OAuthSettings(info.token_url, info.client_id, "wrong-secret-123456"))

    async def scenario(storage: Storage) -> None:
        policy = RetryPolicy(schedule=())
        async with Dispatcher(storage.events, settings_for(sink, policy=policy), target=wrong) as d:
            event_id = await d.enqueue(
                notifications.build("on-course", validation_id="v", previous_status=None)
            )
            assert await d.wait_idle(30)
        (attempt,) = await storage.events.attempts(event_id)
        assert attempt.outcome == "token_error" and "401" in attempt.reason
        dump = json.dumps([a._asdict() for a in await storage.events.attempts(event_id)])
        assert "wrong-secret-123456" not in dump

    drive(scenario)


def test_plain_http_targets_are_refused() -> None:
    with pytest.raises(ConfigError):
        Target("http://127.0.0.1/webhook", OAuthSettings("https://127.0.0.1/token", "a", "b"))
    with pytest.raises(ConfigError):
        Target("https://127.0.0.1/webhook", OAuthSettings("http://127.0.0.1/token", "a", "b"))


def test_database_file_is_private(tmp_path: Path) -> None:
    import stat

    async def scenario(storage: Storage) -> None:
        body = notifications.build("on-course", validation_id="v", previous_status=None)
        await storage.events.insert([NewEvent.of(body)])
        for name in ("p.db", "p.db-wal"):
            assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600, name

    drive(scenario, db=str(tmp_path / "p.db"))
