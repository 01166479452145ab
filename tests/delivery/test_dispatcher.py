"""The dispatcher against the kit's real endpoint: TLS, OAuth, faults, the injected clock."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from webhook_kit.contract import notifications
from webhook_kit.contract.statuses import STATUSES
from webhook_kit.delivery.dispatcher import Dispatcher, DispatcherSettings, Target
from webhook_kit.delivery.policy import DEFAULT_SCHEDULE, RetryPolicy
from webhook_kit.delivery.store import Store
from webhook_kit.endpoint.service import Endpoint
from webhook_kit.endpoint.settings import FaultRule, FaultSettings
from webhook_kit.errors import ConfigError
from webhook_kit.oauth.client import OAuthSettings
from webhook_kit.serving.loop import run
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


def drive(scenario: Callable[[], Awaitable[None]]) -> None:
    run(scenario())


def test_every_status_in_order_with_the_contract_headers(start_endpoint: Any) -> None:
    sink: Endpoint = start_endpoint()
    store = Store()

    async def scenario() -> None:
        async with Dispatcher(store, settings_for(sink), target=target_for(sink)) as d:
            for body in notifications.lifecycle(validation_id="v-1"):
                await d.enqueue(body)
            assert await d.wait_idle(30)

    drive(scenario)
    received = sink.recorder.query(validation_id="v-1")
    assert [r["status"] for r in received] == list(STATUSES)
    assert all(r["accepted"] for r in received)
    headers = received[0]["headers"]
    assert headers["content-type"] == "application/json"
    assert headers["user-agent"].startswith("webhook-kit/")
    assert headers["webhook-id"] == received[0]["event_id"]
    assert headers["webhook-timestamp"].isdigit()
    assert store.counts() == {"sent": len(STATUSES)}


def test_500_then_success_on_the_injected_clock(start_endpoint: Any) -> None:
    sink: Endpoint = start_endpoint(faults=faults("on-course=500x1"))
    store, clock = Store(), FakeClock()

    async def scenario() -> None:
        async with Dispatcher(
            store, settings_for(sink), target=target_for(sink), clock=clock, sleep=clock.sleep
        ) as d:
            event_id = await d.enqueue(
                notifications.build("on-course", validation_id="v", previous_status=None)
            )
            assert await d.wait_idle(30)
        attempts = store.attempts(event_id)
        assert [(a["outcome"], a["http_status"]) for a in attempts] == [
            ("http_error", 500),
            ("success", 200),
        ]
        gap = attempts[1]["at"] - attempts[0]["at"]
        assert DEFAULT_SCHEDULE[0] * 0.8 <= gap <= DEFAULT_SCHEDULE[0] * 1.2

    drive(scenario)


def test_retry_after_is_honoured(start_endpoint: Any) -> None:
    sink: Endpoint = start_endpoint(faults=faults("*=503x1", retry_after=90))
    store, clock = Store(), FakeClock()

    async def scenario() -> None:
        async with Dispatcher(
            store, settings_for(sink), target=target_for(sink), clock=clock, sleep=clock.sleep
        ) as d:
            event_id = await d.enqueue(
                notifications.build("deleted", validation_id="v", previous_status="confirmed")
            )
            assert await d.wait_idle(30)
        first, second = store.attempts(event_id)
        assert first["http_status"] == 503 and second["outcome"] == "success"
        assert second["at"] - first["at"] == pytest.approx(90, abs=0.01)

    drive(scenario)


def test_410_disables_the_webhook_and_keeps_the_event(start_endpoint: Any) -> None:
    sink: Endpoint = start_endpoint(faults=faults("*=410"))
    store = Store()
    disabled: list[str] = []

    async def scenario() -> None:
        async with Dispatcher(
            store, settings_for(sink), target=target_for(sink), on_disable=disabled.append
        ) as d:
            event_id = await d.enqueue(
                notifications.build("on-course", validation_id="v", previous_status=None)
            )
            for _ in range(200):
                if disabled:
                    break
                await asyncio.sleep(0.01)
            assert d.target is not None and d.target.enabled is False
            d.flush()
            row = store.event(event_id)
            assert row is not None and row["state"] == "pending"
            assert "410" in store.attempts(event_id)[0]["reason"]
            assert d.queued == 1  # nothing lost: it is delivered once the webhook is enabled again

    drive(scenario)
    assert disabled and "410" in disabled[0]


def test_redirect_is_a_failure_and_is_not_followed(start_endpoint: Any) -> None:
    sink: Endpoint = start_endpoint(faults=faults("*=307"))
    store = Store()

    async def scenario() -> None:
        policy = RetryPolicy(schedule=())
        async with Dispatcher(
            store, settings_for(sink, policy=policy), target=target_for(sink)
        ) as d:
            event_id = await d.enqueue(
                notifications.build("on-course", validation_id="v", previous_status=None)
            )
            assert await d.wait_idle(30)
        (attempt,) = store.attempts(event_id)
        assert attempt["outcome"] == "redirect" and "not followed" in attempt["reason"]
        assert store.event(event_id)["state"] == "failed"  # type: ignore[index]

    drive(scenario)
    assert [r["path"] for r in sink.recorder.query()] == ["/webhook"]


def test_token_is_cached_until_expiry_then_refetched(start_endpoint: Any) -> None:
    sink: Endpoint = start_endpoint(token_ttl=120)
    store, clock = Store(), FakeClock()

    async def scenario() -> None:
        async with Dispatcher(
            store, settings_for(sink), target=target_for(sink), clock=clock, sleep=clock.sleep
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

    drive(scenario)


def test_concurrent_deliveries_share_one_token_fetch(start_endpoint: Any) -> None:
    sink: Endpoint = start_endpoint()
    store = Store()

    async def scenario() -> None:
        async with Dispatcher(
            store, settings_for(sink, concurrency=16), target=target_for(sink)
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
    store = Store()

    async def scenario() -> None:
        async with Dispatcher(store, settings_for(sink), target=target_for(sink)) as d:
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
            (attempt,) = store.attempts(event_id)
            assert attempt["outcome"] == "success"
            assert d.oauth is not None and d.oauth.fetches == 2

    drive(scenario)
    refused = sink.recorder.query(accepted=False)
    assert [(r["http_status"], r["reason"]) for r in refused] == [(401, "401 bad signature")]


def test_multi_day_schedule_runs_on_the_injected_clock(start_endpoint: Any) -> None:
    sink: Endpoint = start_endpoint(faults=faults("*=500"))
    store, clock = Store(), FakeClock()
    policy = RetryPolicy()  # the default three-day schedule

    async def scenario() -> None:
        async with Dispatcher(
            store,
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
        attempts = store.attempts(event_id)
        assert len(attempts) == policy.max_attempts
        assert store.event(event_id)["state"] == "failed"  # type: ignore[index]
        span_days = (attempts[-1]["at"] - start) / 86400
        assert 2.0 < span_days < 3.7
        gaps = [b["at"] - a["at"] for a, b in zip(attempts, attempts[1:], strict=False)]
        for gap, planned in zip(gaps, policy.schedule, strict=True):
            assert planned * 0.8 <= gap <= planned * 1.2 + 1

    drive(scenario)
    assert len(sink.recorder.query()) == policy.max_attempts


def test_events_of_one_validation_wait_for_the_earlier_one(start_endpoint: Any) -> None:
    sink: Endpoint = start_endpoint(faults=faults("on-course=503x1", retry_after=600))
    store, clock = Store(), FakeClock()
    start = clock()

    async def scenario() -> None:
        async with Dispatcher(
            store, settings_for(sink), target=target_for(sink), clock=clock, sleep=clock.sleep
        ) as d:
            for body in notifications.lifecycle(
                ("on-course", "document-uploaded"), validation_id="slow"
            ):
                await d.enqueue(body)
            await d.enqueue(
                notifications.build("deleted", validation_id="other", previous_status="confirmed")
            )
            assert await d.wait_idle(30)

    drive(scenario)
    slow = [(r["status"], r["http_status"]) for r in sink.recorder.query(validation_id="slow")]
    assert slow == [("on-course", 503), ("on-course", 200), ("document-uploaded", 200)]

    def attempt_times(validation_id: str) -> list[float]:
        from webhook_kit.delivery.store import EventFilter

        rows = store.events(EventFilter(validation_id=validation_id))
        return [a["at"] - start for r in rows for a in store.attempts(r["event_id"])]

    # On the injected clock: the slow validation waited the 600 s it was asked to wait, in order;
    # the other validation was delivered at once, without waiting for it.
    on_course_1, on_course_2, document = attempt_times("slow")
    assert on_course_1 < 1 and 600 <= on_course_2 < 601 and document >= on_course_2
    (other,) = attempt_times("other")
    assert other < 1


def test_restart_on_the_same_database_delivers_what_was_left(
    start_endpoint: Any, tmp_path: Path
) -> None:
    sink: Endpoint = start_endpoint()
    db = tmp_path / "events.db"

    async def first_run() -> None:
        store = Store(db)
        # No target yet: events are stored and held, as after a crash before delivery.
        async with Dispatcher(store, settings_for(sink)) as d:
            for body in notifications.lifecycle(validation_id="v"):
                await d.enqueue(body)
            assert d.queued == len(STATUSES)
        store.close()

    async def second_run() -> None:
        store = Store(db)
        async with Dispatcher(store, settings_for(sink), target=target_for(sink)) as d:
            assert await d.wait_idle(30)
        assert store.counts() == {"sent": len(STATUSES)}
        store.close()

    drive(first_run)
    assert sink.recorder.query() == []
    drive(second_run)
    assert [r["status"] for r in sink.recorder.query()] == list(STATUSES)


def test_untrusted_certificate_is_a_tls_error(start_endpoint: Any) -> None:
    sink: Endpoint = start_endpoint()
    store = Store()

    async def scenario() -> None:
        policy = RetryPolicy(schedule=())
        async with Dispatcher(
            store, DispatcherSettings(policy=policy), target=target_for(sink)
        ) as d:
            event_id = await d.enqueue(
                notifications.build("on-course", validation_id="v", previous_status=None)
            )
            assert await d.wait_idle(30)
        (attempt,) = store.attempts(event_id)
        # The token URL is on the same untrusted server, so the token fetch fails first.
        assert attempt["outcome"] == "token_error" and "TLS" in attempt["reason"]

    drive(scenario)


def test_secret_never_in_attempt_reasons(start_endpoint: Any) -> None:
    sink: Endpoint = start_endpoint()
    store = Store()
    info = sink.info
    wrong = Target(info.url, OAuthSettings(info.token_url, info.client_id, "wrong-secret-123456"))

    async def scenario() -> None:
        policy = RetryPolicy(schedule=())
        async with Dispatcher(store, settings_for(sink, policy=policy), target=wrong) as d:
            event_id = await d.enqueue(
                notifications.build("on-course", validation_id="v", previous_status=None)
            )
            assert await d.wait_idle(30)
        (attempt,) = store.attempts(event_id)
        assert attempt["outcome"] == "token_error" and "401" in attempt["reason"]
        dump = json.dumps([dict(a) for a in store.attempts(event_id)])
        assert "wrong-secret-123456" not in dump

    drive(scenario)


def test_plain_http_targets_are_refused() -> None:
    with pytest.raises(ConfigError):
        Target("http://127.0.0.1/webhook", OAuthSettings("https://127.0.0.1/token", "a", "b"))
    with pytest.raises(ConfigError):
        Target("https://127.0.0.1/webhook", OAuthSettings("http://127.0.0.1/token", "a", "b"))


def test_database_file_is_private(tmp_path: Path) -> None:
    import stat

    store = Store(tmp_path / "p.db")
    store.insert_event(
        notifications.build("on-course", validation_id="v", previous_status=None), 1.0
    )
    for name in ("p.db", "p.db-wal"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600, name
    store.close()
