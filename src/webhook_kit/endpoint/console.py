"""Lines for the terminal that never stop the server.

``serve`` prints one line per request from its event loop. A write to a full pipe, a paused pager
or a terminal stopped with Ctrl-S blocks, and a blocked loop answers nobody. So lines go into a
bounded queue that a thread writes out; when the queue is full the line is dropped and counted,
and the count is printed once the output moves again.

The thread writes to the descriptor with ``os.write``, not through ``sys.stdout``: a thread
blocked inside the buffered stream holds its lock, and the interpreter then aborts at exit when
it flushes that stream.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import queue
import sys
import threading
from collections.abc import Callable
from typing import TextIO

#: Lines waiting to be written, at most; beyond this they are dropped.
CAPACITY = 1000


class Console:
    def __init__(self, stream: TextIO | None = None, *, capacity: int = CAPACITY) -> None:
        self._stream = stream if stream is not None else sys.stdout
        self._fd: int | None = None
        with contextlib.suppress(AttributeError, OSError, ValueError, io.UnsupportedOperation):
            self._stream.flush()  # what was printed before goes first
            self._fd = self._stream.fileno()
        self._queue: queue.Queue[str | None] = queue.Queue(capacity)
        self._lock = threading.Lock()
        self._dropped = 0
        self.written = 0
        self._thread = threading.Thread(target=self._drain, name="webhook-kit-console", daemon=True)
        self._thread.start()

    @property
    def dropped(self) -> int:
        """Lines dropped so far, because the output was not being read fast enough."""
        with self._lock:
            return self._dropped

    def line(self, text: str) -> None:
        """Queue ``text`` for output; never blocks."""
        try:
            self._queue.put_nowait(text)
        except queue.Full:
            with self._lock:
                self._dropped += 1

    def _drain(self) -> None:
        reported = 0
        while True:
            text = self._queue.get()
            if text is None:
                return
            with self._lock:
                dropped = self._dropped
            try:
                if dropped > reported:
                    self._write(
                        f"({dropped - reported} lines dropped: the output was not being read)\n"
                    )
                    reported = dropped
                self._write(text + "\n")
                self.written += 1
            except (OSError, ValueError):
                # A closed or broken output: nothing more can be shown, and that is no reason
                # to stop serving.
                with self._lock:
                    self._dropped += 1

    def _write(self, text: str) -> None:
        if self._fd is None:
            self._stream.write(text)
            self._stream.flush()
            return
        data = text.encode("utf-8", "replace")
        while data:
            data = data[os.write(self._fd, data) :]

    def close(self, timeout: float = 1.0) -> None:
        """Let queued lines out for up to ``timeout`` seconds; a stuck writer is left behind."""
        try:
            self._queue.put_nowait(None)
        except queue.Full:
            return
        self._thread.join(timeout)


class ConsoleHandler(logging.Handler):
    """A logging handler that hands each formatted record to a :class:`Console`."""

    def __init__(self, console: Console, level: int = logging.NOTSET) -> None:
        super().__init__(level)
        self.console = console

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.console.line(self.format(record))
        except Exception:  # logging must never raise into the code that logs
            self.handleError(record)


def route_stderr_logging(console: Console) -> Callable[[], None]:
    """Send the root logger's stderr output through ``console``; returns the undo function.

    A peer can make the servers log (uvicorn warns about every malformed request), so a stderr
    nobody reads would otherwise stop the server just as a stdout would.
    """
    root = logging.getLogger()
    swapped: list[tuple[logging.Handler, logging.Handler]] = []
    for handler in list(root.handlers):
        if isinstance(handler, logging.StreamHandler) and handler.stream in (
            sys.stderr,
            sys.__stderr__,
        ):
            replacement = ConsoleHandler(console, handler.level)
            replacement.setFormatter(handler.formatter)
            root.removeHandler(handler)
            root.addHandler(replacement)
            swapped.append((handler, replacement))

    def undo() -> None:
        for original, replacement in swapped:
            root.removeHandler(replacement)
            root.addHandler(original)

    return undo
