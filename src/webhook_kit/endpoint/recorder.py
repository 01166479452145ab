"""Every request the endpoint gets, accepted or rejected, with the reason.

Kept in memory (the newest ``keep``, within ``max_bytes``) and, with ``--record FILE``, appended as
JSON lines that are read back on the next start, so history and duplicate detection survive
restarts.

Memory is bounded per request and in total. A body is kept as its compact JSON bytes, never as
the parsed objects (a 64 KiB body of small objects parses to about 1.5 MiB); it is parsed again
only when asked for. A refused body is not parsed at all: the app keeps its first
``REFUSED_BODY_LIMIT`` bytes as text. Each record is charged its body, headers and a fixed
overhead, and the oldest records go once ``keep`` or ``max_bytes`` is passed.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any

import orjson

from webhook_kit.endpoint.settings import MAX_KEEP
from webhook_kit.errors import ConfigError
from webhook_kit.serving.strict_json import PayloadError, parse_json

Record = dict[str, Any]
Listener = Callable[[Record], None]

#: Headers whose values are never stored as sent.
MASKED_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie"})
#: Bytes of request data (bodies, headers, texts) kept in memory at most, by default.
DEFAULT_MAX_BYTES = 64 * 1024 * 1024
#: What one record costs beyond its body and headers (the dict, ids, timestamps).
RECORD_OVERHEAD = 1024
#: Idempotency keys remembered for duplicate detection, at most.
SEEN_LIMIT = 100_000
#: Record-file lines longer than this are skipped on start, unread.
MAX_LINE_BYTES = 64 * 1024 * 1024
#: The private key under which a record keeps its body's compact JSON.
_RAW = "_body_json"


#: Headers kept per request, and characters kept per header value.
MAX_HEADERS = 64
MAX_HEADER_VALUE = 2048


def mask_headers(headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    """The headers to keep: credentials masked, at most MAX_HEADERS, values cut short."""
    masked: dict[str, str] = {}
    for name, value in headers:
        if len(masked) >= MAX_HEADERS:
            masked["..."] = "(more headers not kept)"
            break
        lower = name.lower()[:MAX_HEADER_VALUE]
        if len(value) > MAX_HEADER_VALUE:
            value = value[:MAX_HEADER_VALUE] + "..."
        if lower in MASKED_HEADERS:
            scheme = value.split(" ", 1)[0] if " " in value else ""
            value = f"{scheme} ********".strip()
        masked[lower] = value
    return masked


def _seen_key(key: str) -> str:
    # A Webhook-Id header can be as long as the server lets headers be.
    return key if len(key) <= 256 else "sha256:" + hashlib.sha256(key.encode()).hexdigest()


class Recorder:
    def __init__(
        self,
        *,
        keep: int = 10_000,
        path: Path | None = None,
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_line_bytes: int = MAX_LINE_BYTES,
    ) -> None:
        if not 1 <= keep <= MAX_KEEP:
            raise ConfigError(f"keep must be between 1 and {MAX_KEEP}, got {keep}")
        self.keep = keep
        self.max_bytes = max_bytes
        self._records: deque[Record] = deque()
        self._bytes = 0
        self._seen: dict[str, None] = {}  # insertion-ordered, so the oldest go first
        self._next_id = 1
        self._cond = threading.Condition()
        self._listeners: list[Listener] = []
        self._clear_listeners: list[Callable[[], None]] = []
        self._fd: int | None = None
        self.skipped_lines = 0
        self._timestamps = _Timestamps()
        if path is not None:
            self._load(path, max_line_bytes)
            try:
                # Unbuffered: one write(2) per record.
                self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            except OSError as exc:
                raise ConfigError(f"cannot append to record file {path}: {exc}") from exc

    @property
    def bytes_kept(self) -> int:
        """What the kept records are charged, in bytes (at most about ``max_bytes``)."""
        return self._bytes

    def _load(self, path: Path, max_line_bytes: int) -> None:
        try:
            fh = path.open("rb")
        except FileNotFoundError:
            return
        except OSError as exc:
            raise ConfigError(f"cannot read record file {path}: {exc}") from exc
        with fh:
            try:
                for line in _lines(fh, max_line_bytes):
                    record = _load_line(line)
                    if record is None:
                        # A line cut short by a crash, or written by someone else, must not stop
                        # the endpoint from starting.
                        self.skipped_lines += 1
                        continue
                    self._next_id = max(self._next_id, record["id"] + 1)
                    self._store(record)
            except OSError as exc:
                raise ConfigError(f"cannot read record file {path}: {exc}") from exc

    def _store(self, record: Record) -> None:
        """Keep ``record`` (body already compact), evicting the oldest beyond the bounds."""
        record["_cost"] = cost = _cost(record)
        self._records.append(record)
        self._bytes += cost
        key = record.get("idempotency_key")
        if record.get("accepted") and isinstance(key, str) and key:
            self._seen[_seen_key(key)] = None
            if len(self._seen) > SEEN_LIMIT:
                del self._seen[next(iter(self._seen))]
        while len(self._records) > 1 and (
            len(self._records) > self.keep or self._bytes > self.max_bytes
        ):
            self._bytes -= self._records.popleft()["_cost"]

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
        return key is not None and _seen_key(key) in self._seen

    def add(self, record: Record) -> Record:
        """Store ``record`` (assigning ``id`` and ``received_at``), then tell the listeners.

        A ``body`` is kept as compact JSON; the listeners get ``record`` as given.
        """
        with self._cond:
            record["id"] = self._next_id
            self._next_id += 1
            record.setdefault("received_at", self._timestamps.now())
            stored = {k: v for k, v in record.items() if k != "body"}
            if "body" in record:
                stored[_RAW] = _compact(record["body"])
            if self._fd is not None:
                # Written before the answer goes out: a client that got its 2xx can count on
                # the line being in the file, and a crash loses at most the request in hand.
                os.write(self._fd, encode(stored) + b"\n")
            self._store(stored)
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
        """Matching records with their bodies parsed, oldest first (the newest ``limit``)."""
        return [_public(r) for r in self.select(status, accepted, validation_id, limit)]

    def select(
        self,
        status: str | None = None,
        accepted: bool | None = None,
        validation_id: str | None = None,
        limit: int | None = None,
    ) -> list[Record]:
        """Like :meth:`query`, but the stored records, for :func:`encode` (do not change them)."""
        with self._cond:
            snapshot = list(self._records)
        found = [r for r in snapshot if _matches(r, status, accepted, validation_id)]
        return found[-limit:] if limit else found

    def count(self) -> int:
        with self._cond:
            return len(self._records)

    def clear(self) -> int:
        """Forget every record and every seen key; returns how many records were dropped."""
        with self._cond:
            count = len(self._records)
            self._records.clear()
            self._bytes = 0
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
                records = [_public(r) for r in self._records]
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


def _compact(body: Any) -> bytes:
    try:
        return orjson.dumps(body)
    except TypeError:
        # orjson refuses integers beyond 64 bits, which valid JSON bodies may contain.
        return json.dumps(body, separators=(",", ":")).encode()


def encode(record: Record) -> bytes:
    """One stored record as JSON (body included, bookkeeping left out), without parsing it."""
    meta = {k: v for k, v in record.items() if k not in (_RAW, "_cost")}
    try:
        head = orjson.dumps(meta)
    except TypeError:
        head = json.dumps(meta, separators=(",", ":"), default=str).encode()
    raw: bytes | None = record.get(_RAW)
    if raw is None:
        return head
    # Splice the body in as it is kept: listing many records must not parse them all.
    return head[:-1] + (b',"body":' if len(head) > 2 else b'"body":') + raw + b"}"


def encode_many(records: Iterable[Record]) -> Iterator[bytes]:
    for record in records:
        yield encode(record)


def _public(record: Record) -> Record:
    public = {k: v for k, v in record.items() if k not in (_RAW, "_cost")}
    raw = record.get(_RAW)
    if raw is not None:
        public["body"] = parse_json(raw)
    return public


def _cost(record: Mapping[str, Any]) -> int:
    total = RECORD_OVERHEAD
    for key, value in record.items():
        if isinstance(value, bytes | str):
            total += len(value)
        elif key == "headers" and isinstance(value, dict):
            total += sum(len(k) + len(str(v)) + 64 for k, v in value.items())
    return total


def _lines(fh: IO[bytes], limit: int) -> Iterator[bytes]:
    """The file's lines; one longer than ``limit`` comes out as b"" (unparseable), unread."""
    while True:
        line = fh.readline(limit + 1)
        if not line:
            return
        if len(line) > limit and not line.endswith(b"\n"):
            while True:  # skip the rest of an over-long line without holding it
                rest = fh.readline(1 << 20)
                if not rest or rest.endswith(b"\n"):
                    break
            yield b""
            continue
        yield line


#: The types a record's fields may have when read back; a field of another type is dropped.
_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    **dict.fromkeys(
        ("method", "path", "remote", "http_version", "error_type", "reason", "body_text",
         "event_id", "validation_id", "status", "idempotency_key", "warning", "fault",
         "received_at"),
        (str,),
    ),
    "accepted": (bool,),
    "duplicate": (bool,),
    "http_status": (int,),
    "duration_ms": (int, float),
    "headers": (dict,),
}  # fmt: skip


def _load_line(line: bytes) -> Record | None:
    """A stored record from one file line, or None when the line cannot be trusted."""
    try:
        record = parse_json(line)
    except PayloadError:
        return None
    if not isinstance(record, dict):
        return None
    ident = record.get("id")
    if not isinstance(ident, int) or isinstance(ident, bool) or not 0 < ident < 2**53:
        return None
    record.pop("_cost", None)
    record.pop(_RAW, None)
    if "body" in record:
        record[_RAW] = _compact(record.pop("body"))
    for name, kinds in _FIELD_TYPES.items():
        value = record.get(name)
        if value is not None and (
            not isinstance(value, kinds) or isinstance(value, bool) and bool not in kinds
        ):
            del record[name]
    headers = record.get("headers")
    if headers is not None and not all(isinstance(v, str) for v in headers.values()):
        del record["headers"]
    return record


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
