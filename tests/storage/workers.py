"""Kit processes and a database for the PostgreSQL worker tests (crash, network namespace).

Processes as users run them: ``webhook-kit serve`` records every request it gets (duplicates
too) to a JSON-lines file, and ``webhook-kit worker`` processes deliver from a PostgreSQL schema
whose webhook settings point at it.
"""

from __future__ import annotations

import asyncio
import json
import queue
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, NamedTuple

from webhook_kit.contract.notifications import build
from webhook_kit.contract.statuses import STATUSES
from webhook_kit.ids import new_id
from webhook_kit.provider.webhook_settings import validate
from webhook_kit.storage.base import Storage
from webhook_kit.storage.rows import NewEvent
from webhook_kit.storage.url import open_storage

#: How long a kit process may take to print its ready line (imports on a busy machine).
READY_TIMEOUT = 60.0


class KitProcess:
    """A ``python -m webhook_kit ...`` process that printed its one JSON ready line."""

    def __init__(
        self,
        args: Sequence[str],
        log: Path,
        *,
        prefix: Sequence[str] = (),
        cwd: Path,
        wait: bool = True,
        stdin: int | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        """Start it; with ``wait``, return once it is ready (else see :meth:`wait_ready`).
        ``stdin`` and ``env`` as :class:`subprocess.Popen` takes them (default: this process's)."""
        self.args = list(args)
        self.log = log
        with log.open("ab") as stderr:
            self.process = subprocess.Popen(
                [*prefix, sys.executable, "-m", "webhook_kit", *args],
                stdin=stdin,
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
                cwd=cwd,
                env=env,
            )
        self._lines: queue.Queue[str] = queue.Queue()
        self._ready = threading.Event()
        threading.Thread(target=self._read_ready_line, daemon=True).start()
        self.info: dict[str, Any] = {}
        if wait:
            self.wait_ready()

    def _read_ready_line(self) -> None:
        stdout = self.process.stdout
        assert stdout is not None
        with suppress(ValueError, OSError):  # closed: killed before it was ready
            self._lines.put(stdout.readline())
        self._ready.set()

    @property
    def ready(self) -> bool:
        """It printed its ready line (or ended)."""
        return self._ready.is_set() and self.process.poll() is None

    def wait_ready(self) -> dict[str, Any]:
        """The facts of its ready line; :class:`RuntimeError` with its stderr if none came."""
        if self.info:
            return self.info
        try:
            line = self._lines.get(timeout=READY_TIMEOUT)
        except queue.Empty:
            line = ""
        if not line:
            self.kill()
            raise RuntimeError(f"{self.args[0]} did not start: {self.stderr_tail()}")
        self.info = json.loads(line)
        return self.info

    def stderr_tail(self, chars: int = 2000) -> str:
        return self.log.read_text(errors="replace")[-chars:]

    def kill(self) -> None:
        """SIGKILL: the process dies where it stands, holding whatever it held."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)
        self._close()

    def stop(self) -> int:
        """SIGTERM, as an operator stops it; SIGKILL if it does not stop in time."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=30)
        self._close()
        return self.process.returncode

    def _close(self) -> None:
        # The process is gone, so its reader sees the end of the pipe; close it after that.
        if self._ready.wait(timeout=10) and self.process.stdout is not None:
            self.process.stdout.close()


def start_serve(
    work: Path, record: Path, *, host: str = "127.0.0.1", extra: Sequence[str] = ()
) -> KitProcess:
    """``webhook-kit serve``: HTTPS, OAuth, recording every request to ``record``."""
    args = ["serve", "--host", host, "--port", "0", "--json", "--record", str(record)]
    args += ["--keep", "1000", *extra]
    if "--certfile" not in extra:
        args += ["--certs-dir", str(work / "certs")]
    return KitProcess(args, work / "serve.log", cwd=work)


def start_worker(
    work: Path,
    db_url: str,
    ca: str,
    name: str,
    *,
    concurrency: int,
    timeout: float,
    lease: float,
    prefix: Sequence[str] = (),
    extra: Sequence[str] = (),
    wait: bool = True,
    stdin: int | None = None,
    env: Mapping[str, str] | None = None,
) -> KitProcess:
    args = ["worker", "--db", db_url, "--ca", ca, "--json"]
    args += ["--concurrency", str(concurrency), "--timeout", str(timeout), "--lease", str(lease)]
    return KitProcess(
        [*args, *extra],
        work / f"{name}.log",
        prefix=prefix,
        cwd=work,
        wait=wait,
        stdin=stdin,
        env=env,
    )


def settings_document(endpoint: Mapping[str, Any]) -> dict[str, Any]:
    """The webhook settings as the provider API stores them, pointing at ``endpoint``."""
    return validate(
        {
            "url": endpoint["url"],
            "auth": {
                "token_url": endpoint["token_url"],
                "client_id": endpoint["client_id"],
                "client_secret": endpoint["client_secret"],
            },
        }
    )


def lifecycles(validations: int, per_validation: int, rng: random.Random) -> list[list[NewEvent]]:
    """``validations`` lists of ``per_validation`` events each, in the order they must arrive."""
    result = []
    for _ in range(validations):
        validation_id = new_id()
        previous = "on-course"
        events = []
        for index in range(per_validation):
            status = STATUSES[index % len(STATUSES)]
            body = build(status, validation_id=validation_id, previous_status=previous, rng=rng)
            events.append(NewEvent.of(body))
            previous = status
        result.append(events)
    return result


class Database:
    """One open storage on an event loop of its own, for a synchronous test body."""

    def __init__(self, url: str) -> None:
        self._runner = asyncio.Runner()
        self.storage: Storage = self._runner.run(open_storage(url))

    def __enter__(self) -> Database:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        try:
            self._runner.run(self.storage.close())
        finally:
            self._runner.close()

    def put_settings(self, document: Mapping[str, Any]) -> None:
        self._runner.run(self.storage.records.put_settings(document, time.time()))

    def insert(self, events: Sequence[NewEvent]) -> None:
        self._runner.run(self.storage.events.insert(events))

    def counts(self) -> dict[str, int]:
        return self._runner.run(self.storage.events.counts())

    def attempts(self, event_ids: Sequence[str]) -> int:
        """Attempts recorded for these events, all told."""
        found = self._runner.run(self.storage.events.attempts_of(event_ids))
        return sum(len(attempts) for attempts in found.values())

    def wait_for_counts(
        self, done: Callable[[dict[str, int]], bool], timeout: float, poll: float = 0.05
    ) -> dict[str, int]:
        """Poll :meth:`counts` until ``done`` holds; :class:`TimeoutError` naming the last."""
        deadline = time.monotonic() + timeout
        while True:
            counts = self.counts()
            if done(counts):
                return counts
            if time.monotonic() > deadline:
                raise TimeoutError(f"events by state after {timeout:g} s: {counts}")
            time.sleep(poll)  # a polling interval: the condition is re-checked every turn


class Receipt(NamedTuple):
    """One accepted notification as the endpoint recorded it, in arrival order."""

    event_id: str
    validation_id: str
    remote: str


def receipts(record: Path) -> tuple[list[Receipt], list[dict[str, Any]]]:
    """The accepted notifications in the record file, and every refused request."""
    accepted: list[Receipt] = []
    refused: list[dict[str, Any]] = []
    if not record.exists():
        return accepted, refused
    for line in record.read_text().splitlines():
        if not line.strip():
            continue
        entry = json.loads(line)
        if entry.get("accepted"):
            remote = str(entry.get("remote") or "")
            accepted.append(Receipt(entry["event_id"], entry["validation_id"], remote))
        else:
            refused.append(entry)
    return accepted, refused


def line_count(record: Path) -> int:
    """Requests recorded so far (one line each, written before the answer goes out)."""
    if not record.exists():
        return 0
    with record.open("rb") as fh:
        return sum(1 for _ in fh)


def order_violations(expected: Iterable[Sequence[str]], seen: Sequence[Receipt]) -> list[str]:
    """How the arrivals break each validation's order, one sentence each (empty: none).

    An arrival breaks it when its event is earlier than the latest event of its validation
    that already arrived (a late duplicate included), or when it skips an event that has not
    arrived yet.
    """
    position: dict[str, tuple[str, int]] = {}
    for events in expected:
        for index, event_id in enumerate(events):
            position[event_id] = (events[0], index)
    latest: dict[str, int] = {}
    problems: list[str] = []
    for number, receipt in enumerate(seen):
        if receipt.event_id not in position:
            problems.append(f"arrival {number}: unknown event {receipt.event_id}")
            continue
        validation, index = position[receipt.event_id]
        top = latest.get(validation, -1)
        if index < top:
            problems.append(
                f"arrival {number}: event {index} of validation {receipt.validation_id} "
                f"after its event {top}"
            )
        elif index > top + 1:
            problems.append(
                f"arrival {number}: event {index} of validation {receipt.validation_id} "
                f"before its event {top + 1}"
            )
        latest[validation] = max(top, index)
    return problems


@dataclass
class TcpForwarder:
    """Accepts on ``listen`` and forwards each connection to ``target`` (threads, bytes as
    they come): how a process in another network namespace reaches a loopback-only server."""

    listen: tuple[str, int]
    target: tuple[str, int]

    def __post_init__(self) -> None:
        self._listener = socket.create_server(self.listen)
        self.address: tuple[str, int] = self._listener.getsockname()[:2]
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = {self._listener}
        self.connections = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            try:
                upstream = socket.create_connection(self.target, timeout=10)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self.connections += 1
                self._sockets.update((client, upstream))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            with suppress(OSError):
                sink.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        with self._lock:
            sockets, self._sockets = self._sockets, set()
        for sock in sockets:
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
