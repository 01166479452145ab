"""Chains on PostgreSQL: one claim carries several events of a validation, sent one after the
other under its lease, each only once the completion before it is written."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import pytest

from tests.delivery.test_dispatcher import drive, faults, settings_for, target_for
from webhook_kit.contract import notifications
from webhook_kit.contract.statuses import STATUSES
from webhook_kit.delivery.dispatcher import CHAIN, Dispatcher, DispatcherSettings
from webhook_kit.delivery.policy import RetryPolicy
from webhook_kit.endpoint.service import Endpoint
from webhook_kit.endpoint.settings import FaultSettings
from webhook_kit.storage.base import Storage
from webhook_kit.storage.postgres.events import PostgresEvents
from webhook_kit.storage.rows import Claim
from webhook_kit.storage.url import DatabaseUrl

pytestmark = pytest.mark.slow

#: Long enough for an event that is not held back to reach the endpoint on a loaded machine.
SETTLE = 1.0


def recording(storage: Storage) -> list[Claim]:
    """The claims of v-1 that the store hands out from now on."""
    claimed: list[Claim] = []
    real = storage.events.claim

    async def claim(*args: Any, **kw: Any) -> list[Claim]:
        got = await real(*args, **kw)
        claimed.extend(c for c in got if c.validation_id == "v-1")
        return got

    storage.events.claim = claim  # type: ignore[method-assign]
    return claimed


async def deliver_lifecycle(
    storage: Storage, sink: Endpoint, settings: DispatcherSettings, statuses: tuple[str, ...]
) -> list[Claim]:
    """Deliver v-1's ``statuses`` until nothing is left; the claims of v-1 it took."""
    claimed = recording(storage)
    async with Dispatcher(storage.events, settings, target=target_for(sink)) as d:
        await d.enqueue_many(notifications.lifecycle(statuses, validation_id="v-1"))
        assert await d.wait_idle(30)
    return claimed


async def arrived(sink: Endpoint, count: int, *, timeout: float) -> bool:
    """Whether ``count`` events of v-1 reach the endpoint within ``timeout`` seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while len(sink.recorder.query(validation_id="v-1")) < count:
        if asyncio.get_running_loop().time() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


def test_a_chains_next_event_waits_until_the_completion_before_it_is_written(
    start_endpoint: Any, postgres_url: str
) -> None:
    """While the database cannot record attempts (another session holds the attempts table in
    SHARE mode: claims go on, writes of completions wait), a claimed chain sends its first
    event and nothing more: were the worker killed then, the one that takes the validation
    over would send that event again, and must never send it after a later one."""
    sink: Endpoint = start_endpoint()
    assert len(STATUSES) > 1 and CHAIN > 1
    parsed = DatabaseUrl.parse(postgres_url)

    async def scenario(storage: Storage) -> None:
        assert isinstance(storage.events, PostgresEvents)
        claimed = recording(storage)
        blocker = await asyncpg.connect(
            parsed.connect_target, server_settings={"search_path": parsed.schema}
        )
        try:
            async with Dispatcher(storage.events, settings_for(sink), target=target_for(sink)) as d:
                lock = blocker.transaction()
                await lock.start()
                await blocker.execute("LOCK TABLE attempts IN SHARE MODE")
                try:
                    await d.enqueue_many(notifications.lifecycle(validation_id="v-1"))
                    assert await arrived(sink, 1, timeout=30), "the first event never came"
                    assert not await arrived(sink, 2, timeout=SETTLE), "a second event went"
                    received = sink.recorder.query(validation_id="v-1")
                    assert [r["status"] for r in received] == [STATUSES[0]]
                finally:
                    await lock.rollback()
                assert await d.wait_idle(30)
        finally:
            await blocker.close()
        assert await storage.events.counts() == {"sent": len(STATUSES)}
        # It was a chain: the first claim carried the next events, and they went with no
        # claim of their own.
        assert len(claimed[0].rest) == CHAIN - 1
        assert len(claimed) == -(-len(STATUSES) // CHAIN)

    drive(scenario, db=postgres_url)
    received = sink.recorder.query(validation_id="v-1")
    assert [r["status"] for r in received] == list(STATUSES)


def test_an_endpoint_in_trouble_gets_no_more_of_a_chain(
    start_endpoint: Any, postgres_url: str
) -> None:
    """The first event fails for good with a 500 (no retries configured): the chain's next event
    goes back to the queue (behind the breaker) instead of straight to the endpoint."""
    sink: Endpoint = start_endpoint(faults=faults(f"{STATUSES[0]}=500x1"))
    settings = settings_for(sink, policy=RetryPolicy(schedule=()))

    async def scenario(storage: Storage) -> None:
        claimed = await deliver_lifecycle(storage, sink, settings, STATUSES)
        assert await storage.events.counts() == {"failed": 1, "sent": len(STATUSES) - 1}
        assert claimed[0].event_id != claimed[1].event_id
        first = claimed[0]
        assert first.rest, "the first claim was not a chain"
        # The second claim starts where the chain was cut: the event after the failed one.
        assert claimed[1].event_id == first.rest[0].event_id

    drive(scenario, db=postgres_url)
    received = sink.recorder.query(validation_id="v-1")
    assert [r["status"] for r in received] == list(STATUSES)


def test_a_link_without_time_for_a_whole_attempt_goes_back_rather_than_be_cut_short(
    start_endpoint: Any, postgres_url: str
) -> None:
    """A 3 s lease, a 1 s timeout, an endpoint that takes 0.6 s: after the first event, less than
    two timeouts of the lease are left, so each next event of the chain is given back and claimed
    on its own (with a lease of its own) rather than sent with a timeout cut short."""
    sink: Endpoint = start_endpoint(faults=FaultSettings(delay=0.6))
    settings = settings_for(sink, timeout=1.0, lease=3.0)
    statuses = STATUSES[:3]

    async def scenario(storage: Storage) -> None:
        claimed = await deliver_lifecycle(storage, sink, settings, statuses)  # one chain's worth
        assert await storage.events.counts() == {"sent": len(statuses)}
        assert claimed[0].rest, "the first claim was not a chain"
        assert len(claimed) == len(statuses), "a late link was sent under the first lease"
        outcomes = [a.outcome for c in claimed for a in await storage.events.attempts(c.event_id)]
        assert outcomes == ["success"] * len(statuses)

    drive(scenario, db=postgres_url)
    received = sink.recorder.query(validation_id="v-1")
    assert [r["status"] for r in received] == list(statuses)
