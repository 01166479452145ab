"""The inspector's routes: the page, its assets, a server-sent event stream, JSON-lines export.

The page works offline: its HTML, CSS and JavaScript ship in the package, nothing comes from a CDN.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from importlib import resources
from typing import Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from webhook_kit.sink.recorder import Recorder

ASSETS = {
    "inspector.css": "text/css; charset=utf-8",
    "inspector.js": "text/javascript; charset=utf-8",
}
#: A comment line keeps idle streams open through proxies and lets dead clients be noticed.
KEEPALIVE_SECONDS = 15.0
QUEUE_LIMIT = 10_000


def _asset(name: str) -> bytes:
    return resources.files("webhook_kit.sink.inspector").joinpath(name).read_bytes()


class Inspector:
    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder
        self._page = _asset("index.html")
        self._assets = {name: _asset(name) for name in ASSETS}

    async def page(self, request: Request) -> Response:
        return Response(
            self._page,
            media_type="text/html; charset=utf-8",
            headers={
                "Cache-Control": "no-store",
                # Same-origin only: the page loads nothing from anywhere else.
                "Content-Security-Policy": "default-src 'self'; img-src 'self' data:",
            },
        )

    async def asset(self, request: Request) -> Response:
        name = request.path_params["name"]
        if name not in self._assets:
            return Response(
                json.dumps({"error_type": "not_found", "error_message": f"no asset {name}"}),
                status_code=404,
                media_type="application/json",
            )
        return Response(self._assets[name], media_type=ASSETS[name])

    async def stream(self, request: Request) -> Response:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[str] = asyncio.Queue(QUEUE_LIMIT)

        def push(message: str) -> None:
            if not queue.full():  # a client too slow to keep up misses records, not the server
                queue.put_nowait(message)

        def on_record(record: dict[str, Any]) -> None:
            message = f"event: request\ndata: {json.dumps(record, default=str)}\n\n"
            loop.call_soon_threadsafe(push, message)

        def on_clear() -> None:
            loop.call_soon_threadsafe(push, "event: clear\ndata: {}\n\n")

        unsubscribe = self.recorder.subscribe(on_record, on_clear)

        async def events() -> AsyncIterator[str]:
            try:
                yield "retry: 2000\n\n"
                while True:
                    try:
                        yield await asyncio.wait_for(queue.get(), KEEPALIVE_SECONDS)
                    except TimeoutError:
                        yield ": keepalive\n\n"
            finally:
                unsubscribe()

        return StreamingResponse(
            events(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    async def export(self, request: Request) -> Response:
        lines = "".join(json.dumps(r, default=str) + "\n" for r in self.recorder.query())
        return Response(
            lines,
            media_type="application/x-ndjson",
            headers={"Content-Disposition": 'attachment; filename="deliveries.jsonl"'},
        )

    def routes(self) -> list[Route]:
        return [
            Route("/_kit/", self.page),
            Route("/_kit/assets/{name}", self.asset),
            Route("/_kit/stream", self.stream),
            Route("/_kit/deliveries.jsonl", self.export),
        ]
