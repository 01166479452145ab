"""The delivery metrics of a provider or a worker: the counters the dispatcher feeds, and a
snapshot of the queue per account, read from the database only when someone scrapes.

The scrape runs in a thread, and the store belongs to the event loop: a scrape whose snapshot is
older than :data:`REFRESH_SECONDS` asks the loop for a new one and waits for it (at most
:data:`SCRAPE_WAIT`, then it reads the last one). Nothing reads the queue while nobody scrapes:
it was read every 5 s by every process, each of N workers paying a query that grows with the
pending validations, whether or not any metrics were served.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
import time
from collections.abc import AsyncIterator, Callable

from webhook_kit.metrics import DeliveryMetrics, QueueStat
from webhook_kit.storage.base import EventStore

#: The oldest snapshot a scrape reads without asking for a new one.
REFRESH_SECONDS = 5.0
#: How long a scrape waits for a new snapshot before it reads the last one.
SCRAPE_WAIT = 2.0


class DeliveryMonitor:
    def __init__(self, events: EventStore, clock: Callable[[], float] = time.monotonic) -> None:
        self._events = events
        self._clock = clock
        self._snapshot: list[QueueStat] = []
        self._taken: float | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()
        self._reading: concurrent.futures.Future[None] | None = None
        self.metrics = DeliveryMetrics(queue_stats=self._stats)

    async def refresh(self) -> None:
        stats = await self._events.queue_stats(time.time())
        self._snapshot = [QueueStat(s.account, s.depth, s.oldest_pending_seconds) for s in stats]
        self._taken = self._clock()

    def _stats(self) -> list[QueueStat]:
        """The snapshot for a scrape (any thread); a refresh's error is the scrape's (counted
        by the collector, which then leaves the queue gauges out)."""
        loop = self._loop
        fresh = self._taken is not None and self._clock() - self._taken < REFRESH_SECONDS
        if loop is None or fresh:
            return self._snapshot
        with contextlib.suppress(RuntimeError):
            if asyncio.get_running_loop() is loop:
                # On the loop's own thread, waiting for the loop would never end.
                return self._snapshot
        with self._lock:  # concurrent scrapes share one read
            if self._reading is None or self._reading.done():
                self._reading = asyncio.run_coroutine_threadsafe(self.refresh(), loop)
            reading = self._reading
        with contextlib.suppress(concurrent.futures.TimeoutError):
            reading.result(SCRAPE_WAIT)
        return self._snapshot

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[DeliveryMonitor]:
        """Scrapes may ask this loop for the queue for the block's duration."""
        self._loop = asyncio.get_running_loop()
        try:
            yield self
        finally:
            self._loop = None
            with self._lock:
                if self._reading is not None:
                    self._reading.cancel()
