"""Which events may be attempted now: per-validation order, due times, in-flight tracking.

Pure, in-memory, sans-IO: the SQLite backend's claims (one process per file). The database is
the durable record; this is rebuilt from it on start.
Events of one validation form a queue: only its head may be in flight, so a slow or retrying
event holds back its own validation and no other.
"""

from __future__ import annotations

import heapq
from collections import deque
from dataclasses import dataclass


@dataclass(slots=True)
class Entry:
    seq: int
    event_id: str
    validation_id: str
    due: float
    #: The notification as it is sent (encoded once, byte-identical on every retry).
    body: bytes = b""
    #: Attempts made so far.
    attempts: int = 0


class Scheduler:
    def __init__(self) -> None:
        self._queues: dict[str, deque[Entry]] = {}
        self._entries: dict[str, Entry] = {}
        #: (due, seq, validation_id) of each validation's head; stale items are skipped lazily.
        self._heap: list[tuple[float, int, str]] = []
        self._in_flight: set[str] = set()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, event_id: str) -> bool:
        return event_id in self._entries

    def add(
        self,
        seq: int,
        event_id: str,
        validation_id: str,
        due: float,
        body: bytes = b"",
        attempts: int = 0,
    ) -> None:
        """Queue an event; events must be added in ``seq`` order within a validation."""
        if event_id in self._entries:
            return
        entry = Entry(seq, event_id, validation_id, due, body, attempts)
        queue = self._queues.get(validation_id)
        if queue is None:
            queue = self._queues[validation_id] = deque()
        if queue and queue[-1].seq > seq:
            # A redelivered older event goes back in order.
            items = sorted([*queue, entry], key=lambda e: e.seq)
            queue.clear()
            queue.extend(items)
        else:
            queue.append(entry)
        self._entries[event_id] = entry
        if queue[0] is entry:
            heapq.heappush(self._heap, (entry.due, entry.seq, validation_id))

    def take_due(self, now: float, limit: int) -> list[Entry]:
        """Up to ``limit`` heads that are due and not in flight; they become in flight."""
        taken: list[Entry] = []
        while self._heap and len(taken) < limit:
            due, seq, validation_id = self._heap[0]
            if due > now:
                break
            heapq.heappop(self._heap)
            queue = self._queues.get(validation_id)
            if not queue:
                continue
            head = queue[0]
            if head.seq != seq or head.due != due or validation_id in self._in_flight:
                continue  # stale heap item
            self._in_flight.add(validation_id)
            taken.append(head)
        return taken

    def next_due(self) -> float | None:
        """The earliest due time among heads not in flight, if any."""
        while self._heap:
            due, seq, validation_id = self._heap[0]
            queue = self._queues.get(validation_id)
            if (
                queue
                and queue[0].seq == seq
                and queue[0].due == due
                and validation_id not in self._in_flight
            ):
                return due
            heapq.heappop(self._heap)
        return None

    def finish(self, event_id: str) -> None:
        """The head event is done (sent, failed or parked): the next of its validation may go."""
        entry = self._entries.pop(event_id, None)
        if entry is None:
            return
        queue = self._queues[entry.validation_id]
        if queue[0] is entry:
            queue.popleft()
        else:
            queue.remove(entry)
        self._in_flight.discard(entry.validation_id)
        if queue:
            head = queue[0]
            heapq.heappush(self._heap, (head.due, head.seq, entry.validation_id))
        else:
            del self._queues[entry.validation_id]

    def reschedule(self, event_id: str, due: float) -> None:
        """The head event will be retried at ``due``; it keeps its validation blocked until then."""
        entry = self._entries[event_id]
        entry.due = due
        self._in_flight.discard(entry.validation_id)
        heapq.heappush(self._heap, (due, entry.seq, entry.validation_id))

    def set_attempts(self, event_id: str, attempts: int) -> None:
        entry = self._entries.get(event_id)
        if entry is not None:
            entry.attempts = attempts

    def release(self, event_id: str) -> None:
        """Stop an in-flight attempt without a verdict (the event stays queued, due now)."""
        entry = self._entries.get(event_id)
        if entry is not None:
            self._in_flight.discard(entry.validation_id)
            heapq.heappush(self._heap, (entry.due, entry.seq, entry.validation_id))
