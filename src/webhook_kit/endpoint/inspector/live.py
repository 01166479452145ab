"""The inspector's routes: the page, its assets, a server-sent event stream, JSON-lines export.

The page works offline: its HTML, CSS and JavaScript ship in the package, nothing comes from a CDN.

Each stream reader may have READER_BUFFER_BYTES of messages waiting; a reader that falls further
behind (a stalled or deliberately slow client) is dropped, its queue freed, rather than buffered
without end. At most MAX_READERS streams are open at once; the page reconnects on its own and
reloads the list, so a dropped reader loses nothing it cannot see again.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Callable
from importlib import resources
from typing import Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from webhook_kit.endpoint.recorder import Recorder, encode, encode_many
from webhook_kit.serving.http import error_response

ASSETS = {
    "inspector.css": "text/css; charset=utf-8",
    "inspector.js": "text/javascript; charset=utf-8",
}
#: A comment line keeps idle streams open through proxies and lets dead clients be noticed.
KEEPALIVE_SECONDS = 15.0
#: Bytes of messages one reader may have waiting before it is dropped.
READER_BUFFER_BYTES = 1024 * 1024
#: Streams open at once, at most; more are answered 503.
MAX_READERS = 16


class _Reader:
    """One stream's queue: bounded in bytes, dropped (and emptied) when it overflows."""

    def __init__(self) -> None:
        self.queue: deque[bytes] = deque()
        self.size = 0
        self.dropped = False
        self.released = False
        self.ready = asyncio.Event()

    def push(self, message: bytes) -> None:
        if self.dropped:
            return
        if self.size + len(message) > READER_BUFFER_BYTES:
            self.dropped = True
            self.queue.clear()
            self.size = 0
        else:
            self.queue.append(message)
            self.size += len(message)
        self.ready.set()

    def pop(self) -> bytes | None:
        if not self.queue:
            self.ready.clear()
            return None
        message = self.queue.popleft()
        self.size -= len(message)
        return message


def _asset(name: str) -> bytes:
    return resources.files("webhook_kit.endpoint.inspector").joinpath(name).read_bytes()


class Inspector:
    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder
        self._page = _asset("index.html")
        self._assets = {name: _asset(name) for name in ASSETS}
        self.readers = 0

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
            return error_response(404, "not_found", f"no asset {name}")
        return Response(self._assets[name], media_type=ASSETS[name])

    async def stream(self, request: Request) -> Response:
        if self.readers >= MAX_READERS:
            return error_response(503, "too_many_streams", f"at most {MAX_READERS} live streams")
        loop = asyncio.get_running_loop()
        reader = _Reader()
        unsubscribe: Any = None

        def release() -> None:
            if not reader.released:
                reader.released = True
                unsubscribe()
                self.readers -= 1

        def push(message: bytes) -> None:
            reader.push(message)
            if reader.dropped:
                # At once, even while it is stalled in a send: it gets nothing more, and its
                # place is free for a reader that keeps up.
                release()

        def on_record(record: dict[str, Any]) -> None:
            message = b"event: request\ndata: " + encode(record) + b"\n\n"
            loop.call_soon_threadsafe(push, message)

        def on_clear() -> None:
            loop.call_soon_threadsafe(push, b"event: clear\ndata: {}\n\n")

        unsubscribe = self.recorder.subscribe(on_record, on_clear)
        self.readers += 1

        async def events() -> AsyncIterator[bytes]:
            try:
                yield b"retry: 2000\n\n"
                while not reader.dropped:
                    message = reader.pop()
                    if message is not None:
                        yield message
                        continue
                    try:
                        await asyncio.wait_for(reader.ready.wait(), KEEPALIVE_SECONDS)
                    except TimeoutError:
                        yield b": keepalive\n\n"
                yield b'event: dropped\ndata: {"reason":"reader too slow"}\n\n'
            finally:
                release()

        return _EventStream(
            events(),
            release,
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    async def export(self, request: Request) -> Response:
        lines = b"".join(line + b"\n" for line in encode_many(self.recorder.select()))
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


class _EventStream(StreamingResponse):
    """A streaming response that calls ``on_close`` however it ends.

    A client that disconnects before the first chunk leaves the generator unstarted, so its
    ``finally`` never runs; the reader's place and subscription are released here instead.
    """

    def __init__(self, content: AsyncIterator[bytes], on_close: Callable[[], None], **kw: Any):
        super().__init__(content, **kw)
        self._on_close = on_close

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._on_close()
