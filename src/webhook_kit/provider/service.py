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

from webhook_kit.delivery.dispatcher import Dispatcher, DispatcherSettings
from webhook_kit.delivery.store import Store
from webhook_kit.errors import ConfigError, StoreError
from webhook_kit.provider import webhook_settings
from webhook_kit.provider.app import BASE_PATH, ProviderApi, create_provider_app
from webhook_kit.serving import servers
from webhook_kit.serving.servers import ServerName
from webhook_kit.tls import CertFiles, ensure_dev_certs, server_context

log = logging.getLogger("webhook_kit.provider")


@dataclass(frozen=True)
class ProviderSettings:
    host: str = "127.0.0.1"
    port: int = 8444
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

    def __post_init__(self) -> None:
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
        db = settings.db
        self.db = db if db == ":memory:" else str(Path(db).resolve())
        self.store = Store(self.db)
        self.sock = servers.bind(settings.host, settings.port)
        port = self.sock.getsockname()[1]
        self.base_url = f"https://{servers.url_host(self.sock)}:{port}{BASE_PATH}"
        self.dispatcher: Dispatcher | None = None

    @property
    def info(self) -> ProviderInfo:
        ca = self.files.ca_file
        return ProviderInfo(self.base_url, self.apikey, self.db, str(ca) if ca else None)

    def _on_disable(self, reason: str) -> None:
        try:
            current = self.store.settings()
            if current is not None:
                current.update(enabled=False, disabled_reason=reason)
                self.store.put_settings(current, time.time())
        except StoreError as exc:  # the dispatcher holds the webhook disabled anyway
            log.error("cannot save the disabled webhook: %s", exc)

    async def run(self, ready: Callable[[], None], shutdown: asyncio.Event) -> None:
        s = self.settings
        stored = self.store.settings()
        target = None
        if stored is not None:
            try:
                target = webhook_settings.to_target(stored, s.delivery.timeout)
            except ConfigError as exc:  # saved by an earlier version that checked less
                log.warning("the stored webhook settings cannot be used (%s): save them again", exc)
        dispatcher = Dispatcher(
            self.store,
            s.delivery,
            target=target,
            on_disable=self._on_disable,
        )
        try:
            async with dispatcher:
                self.dispatcher = dispatcher
                api = ProviderApi(store=self.store, dispatcher=dispatcher, apikey=self.apikey)
                await servers.serve(
                    create_provider_app(api),
                    sock=self.sock,
                    files=self.files,
                    server=s.server,
                    shutdown=shutdown,
                    ready=ready,
                )
        finally:
            self.sock.close()
            self.store.close()


@contextlib.contextmanager
def running_provider(settings: ProviderSettings) -> Iterator[Provider]:
    """Start a provider in a background thread for the block's duration."""
    provider = Provider(settings)
    with servers.ThreadedServer(provider.run).running():
        yield provider
