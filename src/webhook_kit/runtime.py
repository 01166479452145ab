"""Run a server coroutine in the foreground until SIGINT or SIGTERM, then exit cleanly."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable


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

    asyncio.run(main())
