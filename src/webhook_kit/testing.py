"""Public test helpers: serve any ASGI app over real HTTPS, run the kit's endpoint in-process.

Like ``starlette.testclient`` but with real sockets and TLS, so what is tested is what customers
run: certificate verification, keep-alive, HTTP/2 with hypercorn.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from webhook_kit import servers
from webhook_kit.servers import ServerName
from webhook_kit.sink.runner import Sink, running_sink
from webhook_kit.sink.settings import SinkSettings
from webhook_kit.tls import CertFiles, ensure_dev_certs

__all__ = ["FakeClock", "ServedApp", "Sink", "SinkSettings", "running_sink", "serve_app"]


class FakeClock:
    """A clock and a sleep for the dispatcher: ``sleep`` advances time instead of waiting.

    ``Dispatcher(store, clock=fake, sleep=fake.sleep)`` runs a three-day retry schedule in
    milliseconds of real time.
    """

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


@dataclass(frozen=True)
class ServedApp:
    """Where a served app is reachable: ``base_url`` (no trailing slash) and the CA to trust."""

    base_url: str
    ca_file: Path
    files: CertFiles

    def url(self, path: str = "/") -> str:
        return self.base_url + path


@contextlib.contextmanager
def serve_app(
    app: Any,
    *,
    certs_dir: Path | str = "certs",
    server: ServerName = "uvicorn",
    host: str = "127.0.0.1",
    port: int = 0,
) -> Iterator[ServedApp]:
    """Serve ``app`` over HTTPS (kit certificates) on an ephemeral port for the block.

    The app does not need a health route: one is answered in front of it for readiness.
    """
    files, _ = ensure_dev_certs(Path(certs_dir))
    assert files.ca_file is not None
    sock = servers.bind(host, port)
    base = f"https://{servers.url_host(sock)}:{sock.getsockname()[1]}"
    wrapped = _with_health(app)

    async def run(ready: Any, shutdown: Any) -> None:
        try:
            await servers.serve(
                wrapped, sock=sock, files=files, server=server, shutdown=shutdown, ready=ready
            )
        finally:
            sock.close()

    with servers.ThreadedServer(run).running():
        yield ServedApp(base, files.ca_file, files)


def _with_health(app: Any) -> Any:
    async def asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == servers.HEALTH_PATH:
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-type", b"application/json")],
                }
            )
            await send({"type": "http.response.body", "body": b'{"ok":true}'})
            return
        await app(scope, receive, send)

    return asgi
