"""``provider --workers N``: N ``webhook-kit worker`` processes beside the API.

They are real processes, started as a user would start them on other machines (the same command
and flags), so the provider's own deliveries go through exactly the path a distributed setup
uses. Each must report ready before the API starts listening; all are stopped (SIGTERM, then
SIGKILL after a grace period) when the provider stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sys
from collections.abc import AsyncIterator

from webhook_kit.delivery.dispatcher import DispatcherSettings
from webhook_kit.errors import ServerError
from webhook_kit.storage.url import DatabaseUrl

log = logging.getLogger("webhook_kit.provider")

READY_TIMEOUT = 30.0
STOP_GRACE = 10.0


def command(db: DatabaseUrl, delivery: DispatcherSettings) -> list[str]:
    """The worker's command line for these settings."""
    args = [
        sys.executable,
        "-m",
        "webhook_kit",
        "worker",
        "--json",
        "--concurrency",
        str(delivery.concurrency),
        "--timeout",
        repr(delivery.timeout),
        "--lease",
        repr(delivery.lease),
    ]
    if delivery.ca_file is not None:
        args += ["--ca", str(delivery.ca_file)]
    if delivery.address_policy == "private":
        args.append("--allow-private")
    elif delivery.address_policy == "public":
        args.append("--public-only")
    return args


@contextlib.asynccontextmanager
async def running(
    count: int, db: DatabaseUrl, delivery: DispatcherSettings
) -> AsyncIterator[list[asyncio.subprocess.Process]]:
    """Start ``count`` workers, wait until each is ready, stop them all on exit."""
    processes: list[asyncio.subprocess.Process] = []
    # The URL may hold a password: it goes in the environment, never on a command line that
    # every user of the machine can read in ps.
    env = {**os.environ, "WEBHOOK_KIT_WORKER_DB": db.target}
    try:
        for _ in range(count):
            processes.append(
                await asyncio.create_subprocess_exec(
                    *command(db, delivery), stdout=asyncio.subprocess.PIPE, env=env
                )
            )
        for process in processes:
            await _ready(process)
        if processes:
            log.info("%d delivery workers ready", len(processes))
        yield processes
    finally:
        await _stop(processes)


async def _ready(process: asyncio.subprocess.Process) -> None:
    assert process.stdout is not None
    try:
        line = await asyncio.wait_for(process.stdout.readline(), READY_TIMEOUT)
    except TimeoutError:
        raise ServerError(f"worker {process.pid} did not start in {READY_TIMEOUT:g} s") from None
    try:
        json.loads(line)
    except ValueError:
        code = await process.wait()
        raise ServerError(f"worker {process.pid} stopped at start (exit {code})") from None


async def _stop(processes: list[asyncio.subprocess.Process]) -> None:
    for process in processes:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.terminate()
    for process in processes:
        try:
            await asyncio.wait_for(process.wait(), STOP_GRACE)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
