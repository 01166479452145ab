"""Event loops for the kit's servers, and running one in the foreground until a signal.

Servers run on uvloop when it is installed (it comes with ``uvicorn[standard]``). The loop bounds
how long closing a TLS connection may wait for the peer's close_notify: asyncio waits 30 s by
default, and hypercorn waits for that on every idle keep-alive connection at shutdown, so a client
holding a pooled connection would keep a stopping server alive for half a minute.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable
from typing import Any

#: Seconds a closing TLS connection waits for the peer (asyncio's default is 30).
SSL_SHUTDOWN_TIMEOUT = 0.5


def _loop_class() -> type[asyncio.AbstractEventLoop]:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is not available on every platform
        return asyncio.SelectorEventLoop
    return uvloop.Loop


def new_event_loop() -> asyncio.AbstractEventLoop:
    base: Any = _loop_class()

    class ServerLoop(base):  # type: ignore[misc]
        async def create_server(self, *args: Any, **kwargs: Any) -> Any:
            if kwargs.get("ssl") is not None:
                kwargs.setdefault("ssl_shutdown_timeout", SSL_SHUTDOWN_TIMEOUT)
            return await super().create_server(*args, **kwargs)

    loop: asyncio.AbstractEventLoop = ServerLoop()
    loop.set_exception_handler(_quiet_peer_errors)
    return loop


def _quiet_peer_errors(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    # A peer that never answers close_notify, or drops the connection, is normal traffic for a
    # test endpoint; hypercorn lets these escape its connection task. Anything else is reported.
    exc = context.get("exception")
    if isinstance(exc, TimeoutError) and "SSL shutdown" in str(exc):
        return
    if isinstance(exc, (ConnectionResetError, BrokenPipeError)):
        return
    loop.default_exception_handler(context)


def run(main: Awaitable[Any]) -> Any:
    """``asyncio.run`` on a server loop."""
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        return runner.run(main)  # type: ignore[arg-type]


def run_until_signal(
    runner: Callable[[Callable[[], None], asyncio.Event], Awaitable[None]],
    ready: Callable[[], None],
) -> None:
    """``runner(ready, shutdown)`` with ``shutdown`` set by SIGINT/SIGTERM."""

    async def main() -> None:
        shutdown = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, shutdown.set)
        await runner(ready, shutdown)

    run(main())
