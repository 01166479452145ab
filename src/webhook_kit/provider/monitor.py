"""The delivery metrics of a provider or a worker: the counters the dispatcher feeds, and a
snapshot of the queue per account, refreshed in the background for the scrape to read.

The scrape runs in a thread and must not touch the database; the snapshot it reads is at most
:data:`REFRESH_SECONDS` old.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator

from webhook_kit.errors import StoreError
from webhook_kit.metrics import DeliveryMetrics, QueueStat
from webhook_kit.storage.base import EventStore

log = logging.getLogger("webhook_kit.metrics")

REFRESH_SECONDS = 5.0


class DeliveryMonitor:
    def __init__(self, events: EventStore) -> None:
        self._events = events
        self._snapshot: list[QueueStat] = []
        self.metrics = DeliveryMetrics(queue_stats=lambda: self._snapshot)

    async def refresh(self) -> None:
        stats = await self._events.queue_stats(time.time())
        self._snapshot = [QueueStat(s.account, s.depth, s.oldest_pending_seconds) for s in stats]

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[DeliveryMonitor]:
        """Refresh the queue snapshot every few seconds for the block's duration."""

        async def loop() -> None:
            while True:
                try:
                    await self.refresh()
                except StoreError as exc:  # the last snapshot stays; the dispatcher logs outages
                    log.debug("cannot refresh the queue metrics: %s", exc)
                await asyncio.sleep(REFRESH_SECONDS)

        task = asyncio.ensure_future(loop())
        try:
            yield self
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
