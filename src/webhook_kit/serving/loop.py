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
#: Seconds a client has to complete the TLS handshake (asyncio's default is 60): connections
#: that open TCP and never start TLS must not pile up (slowloris).
SSL_HANDSHAKE_TIMEOUT = 10.0
#: The same for client connections: a connection dropped after a timeout is waiting for a peer
#: that is busy, and the loop must not close under it.
CLIENT_SSL_SHUTDOWN_TIMEOUT = 0.1


def _loop_class() -> type[asyncio.AbstractEventLoop]:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is not available on every platform
        return asyncio.SelectorEventLoop
    return uvloop.Loop


def new_event_loop() -> asyncio.AbstractEventLoop:
    base: Any = _loop_class()

    class ServerLoop(base):  # type: ignore[misc]
        #: TLS client connections opened on this loop (see ``run``).
        tls_clients = 0

        async def create_server(self, *args: Any, **kwargs: Any) -> Any:
            if kwargs.get("ssl") is not None:
                kwargs.setdefault("ssl_shutdown_timeout", SSL_SHUTDOWN_TIMEOUT)
                kwargs.setdefault("ssl_handshake_timeout", SSL_HANDSHAKE_TIMEOUT)
            return await super().create_server(*args, **kwargs)

        async def create_connection(self, *args: Any, **kwargs: Any) -> Any:
            if kwargs.get("ssl"):
                kwargs.setdefault("ssl_shutdown_timeout", CLIENT_SSL_SHUTDOWN_TIMEOUT)
                self.tls_clients += 1
            return await super().create_connection(*args, **kwargs)

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
    """``asyncio.run`` on a server loop.

    When TLS client connections were opened, the loop lives a moment longer than ``main`` so
    that connections still closing (bounded by CLIENT_SSL_SHUTDOWN_TIMEOUT) finish before it
    closes; otherwise they would report errors from a closed loop.
    """

    async def wrapped() -> Any:
        try:
            return await main
        finally:
            if getattr(asyncio.get_running_loop(), "tls_clients", 0):
                await asyncio.sleep(CLIENT_SSL_SHUTDOWN_TIMEOUT * 1.5)

    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        return runner.run(wrapped())


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
