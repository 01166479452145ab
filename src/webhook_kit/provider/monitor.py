"""The delivery metrics of a provider or a worker: the counters the dispatcher feeds, and a
snapshot of the queue per account, read from the database only when someone scrapes.

The scrape runs in a thread, and the store belongs to the event loop: a scrape whose snapshot is
older than :data:`REFRESH_SECONDS` asks the loop for a new one and waits for it (at most
:data:`SCRAPE_WAIT`). Nothing reads the queue while nobody scrapes:
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

from webhook_kit.errors import StoreUnavailable
from webhook_kit.metrics import DeliveryMetrics, QueueStat
from webhook_kit.storage.base import EventStore

#: The oldest snapshot a scrape reads without asking for a new one.
REFRESH_SECONDS = 5.0
#: How long a scrape waits for a new snapshot; then it shows the last one if younger than twice
#: :data:`REFRESH_SECONDS`, and no queue gauges otherwise.
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
        self._task: asyncio.Task[None] | None = None
        self.metrics = DeliveryMetrics(queue_stats=self._stats)

    async def refresh(self) -> None:
        stats = await self._events.queue_stats(time.time())
        self._snapshot = [QueueStat(s.account, s.depth, s.oldest_pending_seconds) for s in stats]
        self._taken = self._clock()

    def _stats(self) -> list[QueueStat]:
        """The snapshot for a scrape (any thread). A failed read, or one that takes longer
        than :data:`SCRAPE_WAIT` while the last snapshot is older than twice the period, fails
        the scrape's queue gauges (the collector counts it) rather than show old figures."""
        with self._lock:
            loop = self._loop
            if loop is None or self._fresh(REFRESH_SECONDS):
                return self._snapshot
            with contextlib.suppress(RuntimeError):
                if asyncio.get_running_loop() is loop:
                    # On the loop's own thread, waiting would freeze the loop it waits for.
                    return self._snapshot
            if self._reading is None or self._reading.done():  # concurrent scrapes share one
                self._reading = asyncio.run_coroutine_threadsafe(self._read(), loop)
            reading = self._reading
        try:
            reading.result(SCRAPE_WAIT)
        except concurrent.futures.TimeoutError:
            if not self._fresh(2 * REFRESH_SECONDS):
                raise StoreUnavailable(
                    f"the queue statistics took longer than {SCRAPE_WAIT:g} s"
                ) from None
        return self._snapshot

    def _fresh(self, seconds: float) -> bool:
        return self._taken is not None and self._clock() - self._taken < seconds

    async def _read(self) -> None:
        with self._lock:
            if self._loop is None:  # stopped since the scrape asked: the store may be closed
                return
            self._task = asyncio.current_task()
        await self.refresh()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[DeliveryMonitor]:
        """Scrapes may ask this loop for the queue for the block's duration."""
        with self._lock:
            self._loop = asyncio.get_running_loop()
        try:
            yield self
        finally:
            with self._lock:
                self._loop = None
                task = self._task
            # A read in flight ends here, before the caller closes the store under it.
            if task is not None and not task.done():
                task.cancel()
                await asyncio.wait({task})
