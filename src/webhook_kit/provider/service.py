"""Assemble and run the provider: store, dispatcher, API, server."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from webhook_kit.delivery.dispatcher import (
    DeliveryObserver,
    Dispatcher,
    DispatcherSettings,
    Target,
)
from webhook_kit.errors import ConfigError, StoreError
from webhook_kit.metrics import metrics_route
from webhook_kit.provider import signing, webhook_settings, workers
from webhook_kit.provider.app import BASE_PATH, ProviderApi, create_provider_app
from webhook_kit.provider.client_files import ClientFiles
from webhook_kit.provider.monitor import DeliveryMonitor
from webhook_kit.serving import servers
from webhook_kit.serving.servers import ServerName
from webhook_kit.storage.base import RecordStore, Storage
from webhook_kit.storage.url import DatabaseUrl, open_storage
from webhook_kit.tls import CertFiles, ensure_dev_certs, server_context

log = logging.getLogger("webhook_kit.provider")


@dataclass(frozen=True)
class ProviderSettings:
    host: str = "127.0.0.1"
    port: int = 8444
    #: A file path, ``sqlite:///path`` or ``postgresql://user@host:port/dbname``.
    db: str = "webhook-kit-provider.db"
    apikey: str | None = field(default=None, repr=False)
    server: ServerName = "uvicorn"
    certs_dir: Path = Path("certs")
    certfile: Path | None = None
    keyfile: Path | None = None
    #: How events are delivered: composed, not copied. By default webhook and token URLs may be
    #: on public or loopback addresses (the CLI's default too).
    delivery: DispatcherSettings = field(
        default_factory=lambda: DispatcherSettings(address_policy="local")
    )
    #: Separate ``webhook-kit worker`` processes to deliver (PostgreSQL only); 0 delivers in
    #: the API's own process.
    workers: int = 0
    #: The bearer token ``GET /metrics`` needs (default: generated). The page lists every
    #: account's id and volume: never something one account may read.
    metrics_token: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        DatabaseUrl.parse(self.db)  # a bad --db is a usage error, before anything starts
        if self.workers < 0:
            raise ConfigError("--workers must be 0 or more")
        if self.workers and not DatabaseUrl.parse(self.db).multi_process:
            raise ConfigError(
                "--workers needs a PostgreSQL database (--db postgresql://...): one process at "
                "a time may use an SQLite file"
            )
        if (self.certfile is None) != (self.keyfile is None):
            raise ConfigError("--certfile and --keyfile go together")
        if self.apikey is not None and not self.apikey.strip():
            raise ConfigError("the API key must not be empty")


@dataclass(frozen=True)
class ProviderInfo:
    base_url: str
    apikey: str = field(repr=False)
    db: str
    ca_file: str | None
    metrics_url: str
    metrics_token: str = field(repr=False)

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


class Provider:
    def __init__(self, settings: ProviderSettings) -> None:
        self.settings = settings
        if settings.certfile is not None and settings.keyfile is not None:
            self.files = CertFiles(settings.certfile.resolve(), settings.keyfile.resolve(), None)
        else:
            self.files, _ = ensure_dev_certs(settings.certs_dir)
        server_context(self.files)
        self.apikey = settings.apikey or secrets.token_urlsafe(24)
        self.metrics_token = settings.metrics_token or secrets.token_urlsafe(24)
        self.db_url = DatabaseUrl.parse(settings.db)
        self.db = self.db_url.display
        self.storage: Storage | None = None
        self.sock = servers.bind(settings.host, settings.port)
        port = self.sock.getsockname()[1]
        self.base_url = f"https://{servers.url_host(self.sock)}:{port}{BASE_PATH}"
        self.dispatcher: Dispatcher | None = None

    @property
    def info(self) -> ProviderInfo:
        ca = self.files.ca_file
        return ProviderInfo(
            self.base_url,
            self.apikey,
            self.db,
            str(ca) if ca else None,
            self.base_url.removesuffix(BASE_PATH) + "/metrics",
            self.metrics_token,
        )

    async def run(self, ready: Callable[[], None], shutdown: asyncio.Event) -> None:
        s = self.settings
        try:
            self.storage = storage = await open_storage(self.db_url)
        except BaseException:
            self.sock.close()
            raise
        try:
            monitor = DeliveryMonitor(storage.events)
            with ClientFiles.private() as files:
                dispatcher = stored_dispatcher(
                    storage, s.delivery, files, deliver=s.workers == 0, observer=monitor.metrics
                )
                await self._serve(dispatcher, monitor, ready, shutdown)
        finally:
            self.sock.close()
            await storage.close()

    async def _serve(
        self,
        dispatcher: Dispatcher,
        monitor: DeliveryMonitor,
        ready: Callable[[], None],
        shutdown: asyncio.Event,
    ) -> None:
        s = self.settings
        storage = self.storage
        assert storage is not None
        metrics = metrics_route(monitor.metrics.registry, bearer_token=self.metrics_token)
        async with (
            monitor.running(),
            dispatcher,
            workers.running(s.workers, self.db_url, s.delivery, shutdown),
        ):
            self.dispatcher = dispatcher
            api = ProviderApi(
                records=storage.records,
                dispatcher=dispatcher,
                apikey=self.apikey,
                public_url=self.base_url,
            )
            await servers.serve(
                create_provider_app(api, [metrics]),
                sock=self.sock,
                files=self.files,
                server=s.server,
                shutdown=shutdown,
                ready=ready,
            )


def stored_dispatcher(
    storage: Storage,
    delivery: DispatcherSettings,
    files: ClientFiles,
    *,
    deliver: bool = True,
    observer: DeliveryObserver | None = None,
) -> Dispatcher:
    """A dispatcher over every account's stored webhook settings (the provider, a worker);
    client certificates from the settings are written into ``files``."""
    records = storage.records

    async def target(account: str) -> Target | None:
        return await stored_target(records, delivery.timeout, account, files)

    async def disabled(account: str, reason: str) -> None:
        await save_disabled(records, account, reason)

    return Dispatcher(
        storage.events,
        delivery,
        targets=target,
        on_disable=disabled,
        deliver=deliver,
        observer=observer,
    )


async def stored_target(
    records: RecordStore, timeout: float, account: str, files: ClientFiles
) -> Target | None:
    """An account's saved webhook settings as a delivery target (``None``: none, or unusable)."""
    stored = await records.settings(account=account)
    if stored is None:
        return None
    key = None
    if stored["auth"].get("client_auth_method") == "private_key_jwt":
        key = await signing.current(records, account, time.time())
    try:
        return webhook_settings.to_target(stored, timeout, signing_key=key, files=files)
    except ConfigError as exc:  # saved by an earlier version that checked less
        log.warning("the stored webhook settings cannot be used (%s): save them again", exc)
        return None


async def save_disabled(records: RecordStore, account: str, reason: str) -> None:
    """A 410 disabled the webhook: keep it disabled, with the reason, across restarts."""
    try:
        current = await records.settings(account=account)
        if current is not None:
            current.update(enabled=False, disabled_reason=reason)
            await records.put_settings(current, time.time(), account=account)
    except StoreError as exc:  # the dispatcher holds the webhook disabled anyway
        log.error("cannot save the disabled webhook: %s", exc)


@contextlib.contextmanager
def running_provider(settings: ProviderSettings) -> Iterator[Provider]:
    """Start a provider in a background thread for the block's duration."""
    provider = Provider(settings)
    with servers.ThreadedServer(provider.run).running():
        yield provider
