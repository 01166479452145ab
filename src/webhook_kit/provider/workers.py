"""``provider --workers N``: N ``webhook-kit worker`` processes beside the API, supervised.

They are real processes, started as a user would start them on other machines (the same command
and flags), so the provider's own deliveries go through exactly the path a distributed setup
uses. Each must report ready before the API starts listening; all are stopped (SIGTERM, then
SIGKILL after a grace period) when the provider stops.

With ``--workers`` the API process delivers nothing itself, so a worker that dies must not go
unnoticed: the provider logs it and starts another in its slot, after a pause that grows while
that slot keeps failing. The other way round, a provider that dies (even by SIGKILL) must not
leave its workers behind: each gets a pipe on stdin that the provider never writes, and stops
when it reads the end of it (see :func:`webhook_kit.provider.worker.stop_when_parent_exits`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from typing import TypeVar

from webhook_kit.delivery.dispatcher import DispatcherSettings
from webhook_kit.errors import ServerError
from webhook_kit.storage.url import DatabaseUrl

log = logging.getLogger("webhook_kit.provider")

T = TypeVar("T")

READY_TIMEOUT = 30.0
STOP_GRACE = 10.0
#: The pause before a slot's worker is started again: it doubles on each restart of that slot,
#: up to the maximum, so a worker that cannot start does not spin.
RESTART_PAUSE = 0.5
RESTART_PAUSE_MAX = 30.0
#: A worker that stayed up this long was healthy: its slot's next restart waits the shortest pause.
STABLE_AFTER = 60.0
#: Tells ``webhook-kit worker`` that its stdin is the provider's pipe (the hidden option
#: ``--parent-pipe`` through the CLI's environment prefix).
PARENT_PIPE_ENV = "WEBHOOK_KIT_WORKER_PARENT_PIPE"


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


@dataclass
class _Slot:
    """One of the N places a worker runs in; its process changes with each restart."""

    number: int
    process: asyncio.subprocess.Process
    started: float
    pause: float = RESTART_PAUSE


class WorkerPool:
    """The provider's workers: started, kept running, stopped."""

    def __init__(
        self, db: DatabaseUrl, delivery: DispatcherSettings, shutdown: asyncio.Event | None = None
    ) -> None:
        self._args = command(db, delivery)
        # The URL may hold a password: it goes in the environment, never on a command line that
        # every user of the machine can read in ps.
        self._env = {**os.environ, "WEBHOOK_KIT_WORKER_DB": db.target, PARENT_PIPE_ENV: "1"}
        self._slots: list[_Slot] = []
        self._stopping = asyncio.Event()
        # Workers that end once the provider is stopping are not restarted, even before the API
        # has finished its own shutdown and the pool is stopped.
        self._shutdown = shutdown if shutdown is not None else self._stopping
        self._supervisor: asyncio.Task[None] | None = None

    @property
    def processes(self) -> list[asyncio.subprocess.Process]:
        """The workers' current processes, one per slot."""
        return [slot.process for slot in self._slots]

    async def start(self, count: int) -> None:
        """Start ``count`` workers, wait until each is ready, then restart any that ends until
        :meth:`stop`."""
        for number in range(count):
            self._slots.append(_Slot(number, await self._spawn(), time.monotonic()))
        for slot in self._slots:
            await _ready(slot.process)
        self._supervisor = asyncio.create_task(self._supervise_all())

    async def stop(self) -> None:
        """No more restarts; SIGTERM to every worker, SIGKILL to those still there after the
        grace period."""
        self._stopping.set()
        try:
            if self._supervisor is not None:
                # Every wait of a supervisor ends when stopping; one starting a worker now
                # puts it in its slot first, so that it is stopped below.
                await self._supervisor
        finally:
            await _stop(self.processes)

    def _is_stopping(self) -> bool:
        return self._stopping.is_set() or self._shutdown.is_set()

    async def _spawn(self) -> asyncio.subprocess.Process:
        try:
            return await asyncio.create_subprocess_exec(
                *self._args,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                env=self._env,
                # The provider alone decides when its workers stop: in its terminal's process
                # group, a Ctrl+C would stop them before the provider knew it was stopping,
                # and it would take that for a crash.
                start_new_session=True,
            )
        except OSError as exc:
            raise ServerError(f"cannot start a worker: {exc}") from exc

    async def _supervise_all(self) -> None:
        await asyncio.gather(*(self._supervise(slot) for slot in self._slots))

    async def _supervise(self, slot: _Slot) -> None:
        while True:
            code = await self._unless_stopping(slot.process.wait())
            if code is None:
                return
            _close_stdin(slot.process)
            if time.monotonic() - slot.started >= STABLE_AFTER:
                slot.pause = RESTART_PAUSE
            log.error(
                "delivery worker %d (pid %d) %s; starting another in %.1f s",
                slot.number,
                slot.process.pid,
                _ended(code),
                slot.pause,
            )
            while True:
                if await self._unless_stopping(asyncio.sleep(slot.pause, True)) is None:
                    return
                slot.pause = min(slot.pause * 2, RESTART_PAUSE_MAX)
                try:
                    await self._restart(slot)
                    break
                except ServerError as exc:
                    log.error(
                        "delivery worker %d: %s; trying again in %.1f s",
                        slot.number,
                        exc,
                        slot.pause,
                    )

    async def _restart(self, slot: _Slot) -> None:
        process = await self._spawn()
        slot.process, slot.started = process, time.monotonic()
        try:
            await self._unless_stopping(_ready(process))
        except ServerError:
            await _kill(process)
            raise
        if not self._is_stopping():
            log.info("delivery worker %d restarted: pid %d ready", slot.number, process.pid)

    async def _unless_stopping(self, work: Awaitable[T]) -> T | None:
        """``work``'s result, or ``None`` (``work`` cancelled) once the pool is stopping."""
        task = asyncio.ensure_future(work)
        stops = [asyncio.ensure_future(event.wait()) for event in {self._stopping, self._shutdown}]
        try:
            await asyncio.wait([task, *stops], return_when=asyncio.FIRST_COMPLETED)
            return None if self._is_stopping() else task.result()
        finally:
            for future in (task, *stops):
                future.cancel()


@contextlib.asynccontextmanager
async def running(
    count: int,
    db: DatabaseUrl,
    delivery: DispatcherSettings,
    shutdown: asyncio.Event | None = None,
) -> AsyncIterator[WorkerPool]:
    """Start ``count`` workers, wait until each is ready, restart any that ends until the block
    exits or ``shutdown`` is set, then stop them all."""
    pool = WorkerPool(db, delivery, shutdown)
    try:
        await pool.start(count)
        if count:
            log.info("%d delivery workers ready", count)
        yield pool
    finally:
        await pool.stop()


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
        raise ServerError(f"worker {process.pid} stopped at start ({_ended(code)})") from None


def _ended(code: int) -> str:
    """How a process ended, from its return code (negative: the signal that killed it)."""
    if code >= 0:
        return f"exited with code {code}"
    try:
        return f"was killed by {signal.Signals(-code).name}"
    except ValueError:
        return f"was killed by signal {-code}"


def _close_stdin(process: asyncio.subprocess.Process) -> None:
    if process.stdin is not None:
        process.stdin.close()


async def _kill(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
    await process.wait()
    _close_stdin(process)


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
        _close_stdin(process)
