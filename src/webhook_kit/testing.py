"""Public test helpers: serve any ASGI app over real HTTPS, run the kit's endpoint in-process.

Like ``starlette.testclient`` but with real sockets and TLS, so what is tested is what customers
run: certificate verification, keep-alive, HTTP/2 with hypercorn.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from webhook_kit.contract.statuses import STATUSES
from webhook_kit.delivery.emit import EmitOutcome, emit
from webhook_kit.endpoint.service import Endpoint, running_endpoint
from webhook_kit.endpoint.settings import EndpointSettings
from webhook_kit.oauth.client import OAuthSettings
from webhook_kit.serving import servers
from webhook_kit.serving.loop import run
from webhook_kit.serving.servers import ServerName
from webhook_kit.tls import CertFiles, ensure_dev_certs

if TYPE_CHECKING:
    from webhook_kit.certify.model import Report

__all__ = [
    "FakeClock",
    "ServedApp",
    "Endpoint",
    "EndpointHandle",
    "EndpointSettings",
    "WebhookDispatcher",
    "certify_url",
    "running_endpoint",
    "serve_app",
]


class EndpointHandle:
    """A running endpoint as a test sees it (the ``webhook_endpoint`` fixture)."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        info = endpoint.info
        self.url = info.url
        self.token_url = info.token_url
        self.jwks_url = info.jwks_url
        self.inspect_url = info.inspect_url
        self.client_id = info.client_id
        self.client_secret = info.client_secret
        self.issuer = endpoint.urls.base
        self.audience = endpoint.settings.tokens.audience
        assert info.ca_file is not None, "the endpoint runs on the kit's certificates"
        self.ca_file = Path(info.ca_file)

    @property
    def requests(self) -> list[dict[str, Any]]:
        """Every request received since the last ``clear()``, accepted or not, oldest first."""
        return self.endpoint.recorder.query()

    @property
    def received(self) -> list[dict[str, Any]]:
        """The accepted notifications (their bodies), oldest first."""
        return [r["body"] for r in self.endpoint.recorder.query(accepted=True)]

    def wait_for(
        self,
        condition: int | Callable[[list[dict[str, Any]]], bool] = 1,
        timeout: float = 10.0,
    ) -> list[dict[str, Any]]:
        """Wait until ``condition`` notifications were accepted (or ``condition(received)``)."""

        def met(records: list[dict[str, Any]]) -> bool:
            bodies = [r["body"] for r in records if r.get("accepted")]
            return len(bodies) >= condition if isinstance(condition, int) else condition(bodies)

        self.endpoint.recorder.wait_for(met, timeout)
        return self.received

    def clear(self) -> None:
        self.endpoint.recorder.clear()


class WebhookDispatcher:
    """Send notifications through the real dispatcher (the ``webhook_dispatcher`` fixture)."""

    def __init__(self, ca_file: Path | None = None, timeout: float = 10.0) -> None:
        self.ca_file = ca_file
        self.timeout = timeout

    def send(
        self,
        url: str,
        *,
        token_url: str,
        client_id: str,
        client_secret: str,
        statuses: Sequence[str] = STATUSES,
        scope: str | None = None,
        audience: str | None = None,
        ca_file: Path | None = None,
        retries: int = 0,
    ) -> list[EmitOutcome]:
        """One validation's ``statuses``, in order; returns each outcome."""
        oauth = OAuthSettings(
            token_url,
            client_id,
            client_secret,
            scope=scope,
            audience=audience,
            timeout=self.timeout,
        )
        return cast(
            "list[EmitOutcome]",
            run(
                emit(
                    url,
                    oauth,
                    statuses,
                    ca_file=ca_file or self.ca_file,
                    timeout=self.timeout,
                    retries=retries,
                )
            ),
        )

    def send_to(
        self, endpoint: EndpointHandle, statuses: Sequence[str] = STATUSES
    ) -> list[EmitOutcome]:
        """Send to a running kit endpoint."""
        return self.send(
            endpoint.url,
            token_url=endpoint.token_url,
            client_id=endpoint.client_id,
            client_secret=endpoint.client_secret,
            statuses=statuses,
            ca_file=endpoint.ca_file,
        )


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


def certify_url(url: str, endpoint: EndpointHandle, **options: Any) -> Report:
    """Certify the endpoint at ``url`` with ``endpoint`` as the authorization server.

    For a receiver under test that trusts the endpoint's tokens (its JWKS); ``options`` are
    :class:`~webhook_kit.certify.model.CertifySettings` fields (``probes``, ``strict``, ...),
    plus ``timeout`` and ``scope`` for the token request.
    """
    from webhook_kit.certify.model import CertifySettings
    from webhook_kit.certify.pipeline import certify
    from webhook_kit.oauth.client import OAuthSettings

    options.setdefault("ca_file", endpoint.ca_file)
    oauth = OAuthSettings(
        endpoint.token_url,
        endpoint.client_id,
        endpoint.client_secret,
        timeout=options.pop("timeout", 10.0),
        scope=options.pop("scope", None),
    )
    settings = CertifySettings(url, oauth, **options)
    return cast("Report", run(certify(settings)))
