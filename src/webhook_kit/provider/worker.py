"""``webhook-kit worker``: the provider's delivery without its API, on a shared PostgreSQL queue.

A worker needs nothing but the database: it reads the webhook settings from it (and notices a
change within :data:`SETTINGS_POLL` seconds), claims due events, delivers them and records the
attempts. Run any number, on any machines. It waits for a database that cannot be reached yet,
with a growing pause; settings that can never work (wrong password, unknown database, a schema
from a newer build) stop it with the reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field

from webhook_kit.delivery.dispatcher import DispatcherSettings
from webhook_kit.errors import ConfigError, StoreError, StoreUnavailable
from webhook_kit.metrics import serve_metrics
from webhook_kit.provider.client_files import ClientFiles
from webhook_kit.provider.monitor import DeliveryMonitor
from webhook_kit.provider.service import stored_dispatcher
from webhook_kit.storage.base import Storage
from webhook_kit.storage.url import DatabaseUrl, open_storage

log = logging.getLogger("webhook_kit.worker")

SETTINGS_POLL = 1.0
CONNECT_BACKOFF_MAX = 30.0


@dataclass(frozen=True)
class WorkerSettings:
    db: str
    delivery: DispatcherSettings = field(
        default_factory=lambda: DispatcherSettings(address_policy="local")
    )
    #: Serve ``GET /metrics`` (Prometheus) on this loopback port (0: any free one); ``None``: no.
    metrics_port: int | None = None
    metrics_host: str = "127.0.0.1"

    def __post_init__(self) -> None:
        if not DatabaseUrl.parse(self.db).multi_process:
            raise ConfigError(
                "a worker needs a PostgreSQL database (--db postgresql://...): an SQLite file "
                "is delivered by the provider process itself"
            )


async def connect(db: DatabaseUrl, shutdown: asyncio.Event) -> Storage | None:
    """Open the database, waiting with a growing pause while it cannot be reached;
    ``None`` if asked to stop first."""
    pause = 0.5
    while not shutdown.is_set():
        try:
            return await open_storage(db)
        except StoreUnavailable as exc:
            log.warning("%s; trying again in %.1f s", exc, pause)
        with suppress(TimeoutError):
            await asyncio.wait_for(shutdown.wait(), pause)
        pause = min(pause * 2, CONNECT_BACKOFF_MAX)
    return None


async def run_worker(
    settings: WorkerSettings,
    ready: Callable[[str | None], None],
    shutdown: asyncio.Event,
) -> None:
    """Deliver until ``shutdown``; ``ready`` gets the metrics URL (if any) once delivering."""
    db = DatabaseUrl.parse(settings.db)
    storage = await connect(db, shutdown)
    if storage is None:
        return
    try:
        version = await _version(storage)
        monitor = DeliveryMonitor(storage.events)
        async with contextlib.AsyncExitStack() as stack:
            files = stack.enter_context(ClientFiles.private())
            dispatcher = stored_dispatcher(
                storage, settings.delivery, files, observer=monitor.metrics
            )
            await stack.enter_async_context(monitor.running())
            await stack.enter_async_context(dispatcher)
            metrics_url = None
            if settings.metrics_port is not None:
                server = await serve_metrics(
                    monitor.metrics.registry,
                    host=settings.metrics_host,
                    port=settings.metrics_port,
                )
                stack.push_async_callback(server.close)
                metrics_url = server.url
            ready(metrics_url)
            while not shutdown.is_set():
                with suppress(TimeoutError):
                    await asyncio.wait_for(shutdown.wait(), SETTINGS_POLL)
                try:
                    now = await _version(storage)
                    if now != version:
                        version = now
                        dispatcher.settings_changed()
                        log.info("webhook settings changed: delivering with the new ones")
                except StoreError as exc:  # the dispatcher backs off on its own
                    log.debug("cannot read the settings now: %s", exc)
    finally:
        await storage.close()


async def _version(storage: Storage) -> int:
    return await storage.records.settings_version()
