"""A loopback web server that hands out certify's forging key for the ``jku``/``x5u`` checks,
and remembers who fetched it: a receiver that fetches a key URL named by the token it is
checking has shown a flaw of its own (SSRF, and trust in an attacker's key)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from aiohttp import web

from webhook_kit.certify.forge import ForgingKey


@dataclass
class KeyServer:
    base: str
    fetched: list[str] = field(default_factory=list)

    @property
    def jku(self) -> str:
        return self.base + "/jwks.json"

    @property
    def x5u(self) -> str:
        return self.base + "/cert.pem"


@asynccontextmanager
async def key_server(key: ForgingKey, host: str = "127.0.0.1") -> AsyncIterator[KeyServer]:
    server = KeyServer("")

    async def jwks(request: web.Request) -> web.Response:
        server.fetched.append("jku")
        return web.json_response(key.jwks)

    async def cert(request: web.Request) -> web.Response:
        server.fetched.append("x5u")
        return web.Response(body=key.certificate_pem, content_type="application/x-pem-file")

    app = web.Application()
    app.router.add_get("/jwks.json", jwks)
    app.router.add_get("/cert.pem", cert)
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, host, 0)
    await site.start()
    # aiohttp names no public accessor for the port it bound; the asyncio server has it.
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    server.base = f"http://{host}:{port}"
    try:
        yield server
    finally:
        await runner.cleanup()
