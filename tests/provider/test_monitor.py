"""The queue snapshot of the metrics: read from a real SQLite store only when a scrape asks,
from the scrape's thread through the store's event loop."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from prometheus_client import generate_latest

from tests.test_metrics import parse, value
from webhook_kit.contract import notifications
from webhook_kit.errors import StoreUnavailable
from webhook_kit.provider import monitor as monitor_module
from webhook_kit.provider.monitor import REFRESH_SECONDS, DeliveryMonitor
from webhook_kit.storage.base import Storage
from webhook_kit.storage.rows import NewEvent, QueueStat
from webhook_kit.storage.url import open_storage

WAIT = 10.0


class CountingEvents:
    """The real store's queue statistics, counted; ``gate`` (if set) holds each read until it
    opens; ``failing`` makes reads fail as a database that went away would."""

    def __init__(self, storage: Storage) -> None:
        self._events = storage.events
        self.reads = 0
        self.gate: asyncio.Event | None = None
        self.failing = False

    async def queue_stats(self, now: float) -> list[QueueStat]:
        self.reads += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.failing:
            raise StoreUnavailable("the database went away")
        return await self._events.queue_stats(now)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def with_storage(tmp_path: Path, body: Callable[[Storage], Awaitable[None]]) -> None:
    async def main() -> None:
        storage = await open_storage(str(tmp_path / "queue.db"))
        try:
            await body(storage)
        finally:
            await storage.close()

    asyncio.run(main())


async def insert(storage: Storage, validations: int, account: str = "acme") -> None:
    await storage.events.insert(
        [NewEvent.of(next(notifications.lifecycle()), account) for _ in range(validations)]
    )


async def loop_turns(storage: Storage) -> None:
    """Turns of the event loop, with the store's own work in between: what a read scheduled on
    the loop would have needed to run."""
    for _ in range(20):
        await asyncio.sleep(0)
        await storage.events.counts()


async def scrape_in_thread(monitor: DeliveryMonitor) -> str:
    """As the metrics routes scrape: ``generate_latest`` in a worker thread."""
    page = await asyncio.to_thread(generate_latest, monitor.metrics.registry)
    return page.decode()


def test_nothing_reads_the_queue_while_nobody_scrapes(tmp_path: Path) -> None:
    async def body(storage: Storage) -> None:
        events = CountingEvents(storage)
        monitor = DeliveryMonitor(events)  # type: ignore[arg-type]
        async with monitor.running():
            await insert(storage, 3)
            await loop_turns(storage)
            assert events.reads == 0

    with_storage(tmp_path, body)


def test_a_scrape_reads_the_queue_once_per_refresh_period(tmp_path: Path) -> None:
    async def body(storage: Storage) -> None:
        events, clock = CountingEvents(storage), Clock()
        monitor = DeliveryMonitor(events, clock)  # type: ignore[arg-type]
        async with monitor.running():
            await insert(storage, 3)
            samples = parse(await scrape_in_thread(monitor))
            assert value(samples, "webhook_kit_queue_depth", account="acme") == 3
            assert events.reads == 1
            # Within the period: the same snapshot, no read.
            await insert(storage, 2)
            clock.now += REFRESH_SECONDS - 0.1
            samples = parse(await scrape_in_thread(monitor))
            assert value(samples, "webhook_kit_queue_depth", account="acme") == 3
            assert events.reads == 1
            # After it: a new read, which sees the events inserted since.
            clock.now += 0.2
            samples = parse(await scrape_in_thread(monitor))
            assert value(samples, "webhook_kit_queue_depth", account="acme") == 5
            assert events.reads == 2

    with_storage(tmp_path, body)


def test_concurrent_scrapes_share_one_read(tmp_path: Path) -> None:
    async def body(storage: Storage) -> None:
        events = CountingEvents(storage)
        events.gate = asyncio.Event()
        monitor = DeliveryMonitor(events)  # type: ignore[arg-type]
        async with monitor.running():
            await insert(storage, 4)
            first = asyncio.ensure_future(scrape_in_thread(monitor))
            async with asyncio.timeout(WAIT):
                while events.reads == 0:  # the first scrape's read has started and waits
                    await asyncio.sleep(0.01)
            second = asyncio.ensure_future(scrape_in_thread(monitor))
            # The second scrape is waiting for the same read: it has not returned.
            done, _ = await asyncio.wait({second}, timeout=0.2)
            assert not done
            events.gate.set()
            pages = await asyncio.wait_for(asyncio.gather(first, second), WAIT)
            for page in pages:
                assert value(parse(page), "webhook_kit_queue_depth", account="acme") == 4
            assert events.reads == 1

    with_storage(tmp_path, body)


def test_a_scrape_on_the_loops_thread_reads_the_last_snapshot(tmp_path: Path) -> None:
    async def body(storage: Storage) -> None:
        events = CountingEvents(storage)
        monitor = DeliveryMonitor(events)  # type: ignore[arg-type]
        async with monitor.running():
            await insert(storage, 2)
            # Waiting for the loop from the loop would freeze it: the last snapshot (none yet),
            # and no read asked of the loop (it would run at the loop's next turns).
            samples = parse(generate_latest(monitor.metrics.registry).decode())
            assert "webhook_kit_queue_depth" not in {name for name, _, _ in samples}
            assert value(samples, "webhook_kit_scrape_errors_total") == 0  # it did not wait
            await loop_turns(storage)
            assert events.reads == 0

    with_storage(tmp_path, body)


def test_a_failed_read_is_a_counted_scrape_error(tmp_path: Path) -> None:
    async def body(storage: Storage) -> None:
        events = CountingEvents(storage)
        events.failing = True
        monitor = DeliveryMonitor(events)  # type: ignore[arg-type]
        async with monitor.running():
            await insert(storage, 2)
            samples = parse(await scrape_in_thread(monitor))
            assert value(samples, "webhook_kit_scrape_errors_total") == 1
            assert "webhook_kit_queue_depth" not in {name for name, _, _ in samples}
            # The database is back: the next scrape reads it (a failed read is no snapshot).
            events.failing = False
            samples = parse(await scrape_in_thread(monitor))
            assert value(samples, "webhook_kit_queue_depth", account="acme") == 2
            assert events.reads == 2

    with_storage(tmp_path, body)


def test_a_read_slower_than_the_scrapes_wait_fails_the_gauges(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not an empty queue, nor a snapshot a scrape interval old: no queue gauges, one error."""
    monkeypatch.setattr(monitor_module, "SCRAPE_WAIT", 0.05)

    async def body(storage: Storage) -> None:
        events, clock = CountingEvents(storage), Clock()
        events.gate = asyncio.Event()
        monitor = DeliveryMonitor(events, clock)  # type: ignore[arg-type]
        async with monitor.running():
            await insert(storage, 3)
            samples = parse(await scrape_in_thread(monitor))
            assert value(samples, "webhook_kit_scrape_errors_total") == 1
            assert "webhook_kit_queue_depth" not in {name for name, _, _ in samples}
            events.gate.set()
            async with asyncio.timeout(WAIT):  # the read goes on, and its snapshot is kept
                while not parse(await scrape_in_thread(monitor)).count(
                    ("webhook_kit_queue_depth", {"account": "acme"}, 3.0)
                ):
                    await asyncio.sleep(0.01)
            assert events.reads == 1
            # Slow again, with a snapshot younger than twice the period: that one is shown.
            events.gate.clear()
            await insert(storage, 1)
            clock.now += REFRESH_SECONDS + 1
            samples = parse(await scrape_in_thread(monitor))
            assert value(samples, "webhook_kit_queue_depth", account="acme") == 3
            # Older than that: no gauges rather than old figures.
            clock.now += REFRESH_SECONDS
            samples = parse(await scrape_in_thread(monitor))
            assert value(samples, "webhook_kit_scrape_errors_total") == 2
            assert "webhook_kit_queue_depth" not in {name for name, _, _ in samples}
            events.gate.set()

    with_storage(tmp_path, body)


def test_a_read_in_flight_ends_with_the_monitor(tmp_path: Path) -> None:
    """The caller closes the store after the block: no read may still be running on it."""

    async def body(storage: Storage) -> None:
        events = CountingEvents(storage)
        events.gate = asyncio.Event()  # never opened: the read waits until cancelled
        monitor = DeliveryMonitor(events)  # type: ignore[arg-type]
        async with monitor.running():
            await insert(storage, 2)
            scraping = asyncio.ensure_future(scrape_in_thread(monitor))
            async with asyncio.timeout(WAIT):
                while events.reads == 0:
                    await asyncio.sleep(0.01)
        # Out of the block: the read was cancelled and has ended; the scrape counts an error.
        assert not [t for t in asyncio.all_tasks() if "_read" in repr(t.get_coro())]
        samples = parse(await asyncio.wait_for(scraping, WAIT))
        assert value(samples, "webhook_kit_scrape_errors_total") == 1
        assert events.reads == 1

    with_storage(tmp_path, body)


def test_a_scrape_after_the_loop_stopped_reads_the_last_snapshot(tmp_path: Path) -> None:
    """A scrape that races the process's shutdown must not wait for a loop that is gone."""

    async def run() -> DeliveryMonitor:
        storage = await open_storage(str(tmp_path / "queue.db"))
        try:
            monitor = DeliveryMonitor(storage.events)
            async with monitor.running():
                await insert(storage, 1)
                await scrape_in_thread(monitor)
            return monitor
        finally:
            await storage.close()

    monitor = asyncio.run(run())
    result: list[str] = []
    thread = threading.Thread(
        target=lambda: result.append(generate_latest(monitor.metrics.registry).decode())
    )
    thread.start()
    thread.join(WAIT)
    assert not thread.is_alive()
    assert value(parse(result[0]), "webhook_kit_queue_depth", account="acme") == 1
