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
import os
import sys
import threading
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
    #: Started by ``provider --workers``: stdin is the provider's pipe, and its end means the
    #: provider is gone (see :func:`stop_when_parent_exits`). A worker started by hand keeps
    #: running whatever its stdin (a terminal, /dev/null).
    parent_pipe: bool = False

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
    if settings.parent_pipe:
        stop_when_parent_exits(sys.stdin.fileno(), shutdown)
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


def stop_when_parent_exits(fd: int, shutdown: asyncio.Event) -> None:
    """Set ``shutdown`` (a graceful stop, as on SIGTERM) once ``fd`` reaches its end.

    The provider gives each worker a pipe that it never writes: the kernel closes the provider's
    end when the provider exits, however it exits (SIGKILL, OOM killer), so the end of the pipe
    is its death notice. Linux's prctl(PR_SET_PDEATHSIG) was the alternative, and was rejected:
    it is Linux only; it fires when the *thread* that started the worker ends, not the process
    (a provider run in a background thread, as tests and embedders do, would lose its workers
    with that thread); and its signal races a parent that died before the call. A blocking read
    in a thread works on every platform, whatever the event loop (uvloop or not).
    """
    loop = asyncio.get_running_loop()

    def gone() -> None:
        if not shutdown.is_set():
            log.warning("the provider that started this worker is gone: stopping")
            shutdown.set()

    def watch() -> None:
        with suppress(OSError):  # an unreadable pipe tells no more than a closed one
            while os.read(fd, 4096):
                pass  # the provider never writes; anything read is ignored
        with suppress(RuntimeError):  # the loop is closed: the worker stopped already
            loop.call_soon_threadsafe(gone)

    threading.Thread(target=watch, name="parent-pipe", daemon=True).start()


async def _version(storage: Storage) -> int:
    return await storage.records.settings_version()
