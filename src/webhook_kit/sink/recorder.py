"""Every request the endpoint gets, accepted or rejected, with the reason.

Kept in memory (the newest ``keep``) and, with ``--record FILE``, appended as JSON lines that are
read back on the next start, so history and duplicate detection survive restarts.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import orjson

from webhook_kit.errors import ConfigError

Record = dict[str, Any]
Listener = Callable[[Record], None]

#: Headers whose values are never stored as sent.
MASKED_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie"})


def mask_headers(headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    masked: dict[str, str] = {}
    for name, value in headers:
        lower = name.lower()
        if lower in MASKED_HEADERS:
            scheme = value.split(" ", 1)[0] if " " in value else ""
            value = f"{scheme} ********".strip()
        masked[lower] = value
    return masked


class Recorder:
    def __init__(self, *, keep: int = 10_000, path: Path | None = None) -> None:
        self._records: deque[Record] = deque(maxlen=keep)
        self._seen: set[str] = set()
        self._next_id = 1
        self._cond = threading.Condition()
        self._listeners: list[Listener] = []
        self._clear_listeners: list[Callable[[], None]] = []
        self._fd: int | None = None
        self.skipped_lines = 0
        self._timestamps = _Timestamps()
        if path is not None:
            self._load(path)
            try:
                # Unbuffered: one write(2) per record.
                self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            except OSError as exc:
                raise ConfigError(f"cannot append to record file {path}: {exc}") from exc

    def _load(self, path: Path) -> None:
        if not path.exists():
            return
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read record file {path}: {exc}") from exc
        for line in lines:
            try:
                record = json.loads(line)
                self._next_id = max(self._next_id, int(record["id"]) + 1)
            except (ValueError, KeyError, TypeError):
                # A line cut short by a crash must not stop the endpoint from starting.
                self.skipped_lines += 1
                continue
            self._records.append(record)
            if record.get("accepted") and record.get("idempotency_key"):
                self._seen.add(record["idempotency_key"])

    def subscribe(
        self, listener: Listener, on_clear: Callable[[], None] | None = None
    ) -> Callable[[], None]:
        """Call ``listener`` with each new record (and ``on_clear`` after a clear).

        Returns the unsubscribe function.
        """
        with self._cond:
            self._listeners.append(listener)
            if on_clear is not None:
                self._clear_listeners.append(on_clear)

        def unsubscribe() -> None:
            with self._cond:
                if listener in self._listeners:
                    self._listeners.remove(listener)
                if on_clear is not None and on_clear in self._clear_listeners:
                    self._clear_listeners.remove(on_clear)

        return unsubscribe

    def is_duplicate(self, key: str | None) -> bool:
        return key is not None and key in self._seen

    def add(self, record: Record) -> Record:
        """Store ``record`` (assigning ``id`` and ``received_at``), then tell the listeners."""
        with self._cond:
            record["id"] = self._next_id
            self._next_id += 1
            record.setdefault("received_at", self._timestamps.now())
            key = record.get("idempotency_key")
            if record.get("accepted") and key:
                self._seen.add(key)
            self._records.append(record)
            if self._fd is not None:
                # Written before the answer goes out: a client that got its 2xx can count on
                # the line being in the file, and a crash loses at most the request in hand.
                os.write(self._fd, _encode_line(record))
            listeners = list(self._listeners)
            self._cond.notify_all()
        for listener in listeners:
            listener(record)
        return record

    def query(
        self,
        *,
        status: str | None = None,
        accepted: bool | None = None,
        validation_id: str | None = None,
        limit: int | None = None,
    ) -> list[Record]:
        """Matching records, oldest first (the newest ``limit`` when a limit is given)."""
        with self._cond:
            snapshot = list(self._records)
        found = [r for r in snapshot if _matches(r, status, accepted, validation_id)]
        return found[-limit:] if limit else found

    def clear(self) -> int:
        """Forget every record and every seen key; returns how many records were dropped."""
        with self._cond:
            count = len(self._records)
            self._records.clear()
            self._seen.clear()
            self._cond.notify_all()
            listeners = list(self._clear_listeners)
        for listener in listeners:
            listener()
        return count

    def wait_for(self, predicate: Callable[[list[Record]], bool], timeout: float) -> list[Record]:
        """Block until ``predicate(records)`` holds; raises :class:`TimeoutError` otherwise."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                records = list(self._records)
                if predicate(records):
                    return records
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"condition not met within {timeout}s")
                self._cond.wait(remaining)

    def close(self) -> None:
        with self._cond:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None


def _matches(
    record: Mapping[str, Any], status: str | None, accepted: bool | None, validation_id: str | None
) -> bool:
    if status is not None and record.get("status") != status:
        return False
    if accepted is not None and bool(record.get("accepted")) != accepted:
        return False
    return validation_id is None or record.get("validation_id") == validation_id


def _encode_line(record: Record) -> bytes:
    try:
        return orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE)
    except TypeError:
        # orjson refuses integers beyond 64 bits, which valid JSON bodies may contain.
        return (json.dumps(record, separators=(",", ":"), default=str) + "\n").encode()


class _Timestamps:
    """ISO-8601 UTC with milliseconds; strftime (the costly part) runs once a second."""

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def now(self) -> str:
        now = time.time()
        second = int(now)
        if second != self._second:
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = second
        return f"{self._prefix}.{int((now - second) * 1000):03d}Z"
