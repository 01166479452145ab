"""Which events may be attempted now: per-validation order, fairness across accounts, due times.

Pure, in-memory, sans-IO: the SQLite backend's claims (one process per file). The database is
the durable record; this is rebuilt from it on start.

Events of one validation form a queue: only its head may be in flight, so a slow or retrying
event holds back its own validation and no other. Accounts (one endpoint each) take turns: a
claim takes one due head from each account in round-robin order before a second from any, and
never more than an account's cap in flight, so a slow endpoint holds at most its own share.
An account's breaker may let nothing through, or a single probe.
"""

from __future__ import annotations

import heapq
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

DEFAULT_ACCOUNT = "default"
Admission = Literal["yes", "probe", "no"]


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
    account: str = DEFAULT_ACCOUNT


def _always(account: str) -> Admission:
    return "yes"


class Scheduler:
    def __init__(self) -> None:
        self._queues: dict[str, deque[Entry]] = {}
        self._entries: dict[str, Entry] = {}
        #: Per account: (due, seq, validation_id) of its validations' heads; stale items are
        #: skipped lazily.
        self._heaps: dict[str, list[tuple[float, int, str]]] = {}
        #: Accounts that may have heads, in round-robin order.
        self._turns: deque[str] = deque()
        self._in_flight: set[str] = set()
        self._busy: Counter[str] = Counter()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, event_id: str) -> bool:
        return event_id in self._entries

    def in_flight(self, account: str) -> int:
        return self._busy[account]

    def accounts(self) -> dict[str, int]:
        """Events queued per account (for the queue-depth metric)."""
        return Counter(e.account for e in self._entries.values())

    def add(
        self,
        seq: int,
        event_id: str,
        validation_id: str,
        due: float,
        body: bytes = b"",
        attempts: int = 0,
        account: str = DEFAULT_ACCOUNT,
    ) -> None:
        """Queue an event; events must be added in ``seq`` order within a validation."""
        if event_id in self._entries:
            return
        entry = Entry(seq, event_id, validation_id, due, body, attempts, account)
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
            self._push(entry)

    def _push(self, head: Entry) -> None:
        heap = self._heaps.get(head.account)
        if heap is None:
            heap = self._heaps[head.account] = []
            self._turns.append(head.account)
        heapq.heappush(heap, (head.due, head.seq, head.validation_id))

    def _top(self, account: str) -> tuple[float, int, str] | None:
        """The account's earliest head not in flight, dropping stale items on the way."""
        heap = self._heaps.get(account)
        while heap:
            due, seq, validation_id = heap[0]
            queue = self._queues.get(validation_id)
            if (
                queue
                and queue[0].seq == seq
                and queue[0].due == due
                and validation_id not in self._in_flight
            ):
                return heap[0]
            heapq.heappop(heap)
        return None

    def take_due(
        self,
        now: float,
        limit: int,
        *,
        cap: Callable[[str], int | None] = lambda account: None,
        admit: Callable[[str], Admission] = _always,
    ) -> list[Entry]:
        """Up to ``limit`` due heads, one per account per turn, each account under its ``cap``
        (``None``: no cap) and as its breaker ``admit``s; they become in flight."""
        taken: list[Entry] = []
        idle = 0  # accounts visited in a row that gave nothing
        while self._turns and len(taken) < limit and idle < len(self._turns):
            account = self._turns[0]
            self._turns.rotate(-1)
            top = self._top(account)
            if top is None:
                if not self._heaps.get(account):
                    self._heaps.pop(account, None)
                    self._turns.remove(account)
                    idle = 0
                    continue
            admission = admit(account) if top is not None and top[0] <= now else "no"
            limit_here = cap(account)
            if admission == "probe":
                limit_here = 1
            if (
                top is None
                or admission == "no"
                or (limit_here is not None and self._busy[account] >= limit_here)
            ):
                idle += 1
                continue
            heap = self._heaps[account]
            heapq.heappop(heap)
            head = self._queues[top[2]][0]
            self._in_flight.add(head.validation_id)
            self._busy[account] += 1
            taken.append(head)
            idle = 0
        return taken

    def next_due(
        self,
        *,
        cap: Callable[[str], int | None] = lambda account: None,
        admit: Callable[[str], Admission] = _always,
        at: float = float("inf"),
    ) -> float | None:
        """The earliest due time among heads that could be taken (not in flight, their account
        under its cap and not held by its breaker as of ``at``), if any."""
        best: float | None = None
        for account in list(self._heaps):
            top = self._top(account)
            if top is None:
                continue
            limit_here = cap(account)
            if limit_here is not None and self._busy[account] >= limit_here:
                continue
            if admit(account) == "no" and top[0] <= at:
                continue
            if best is None or top[0] < best:
                best = top[0]
        return best

    def _done(self, entry: Entry) -> None:
        if entry.validation_id in self._in_flight:
            self._in_flight.discard(entry.validation_id)
            self._busy[entry.account] -= 1
            if self._busy[entry.account] <= 0:
                del self._busy[entry.account]

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
        self._done(entry)
        if queue:
            self._push(queue[0])
        else:
            del self._queues[entry.validation_id]

    def reschedule(self, event_id: str, due: float) -> None:
        """The head event will be retried at ``due``; it keeps its validation blocked until then."""
        entry = self._entries[event_id]
        entry.due = due
        self._done(entry)
        self._push(entry)

    def set_attempts(self, event_id: str, attempts: int) -> None:
        entry = self._entries.get(event_id)
        if entry is not None:
            entry.attempts = attempts

    def release(self, event_id: str) -> None:
        """Stop an in-flight attempt without a verdict (the event stays queued, due now)."""
        entry = self._entries.get(event_id)
        if entry is not None and entry.validation_id in self._in_flight:
            self._done(entry)
            self._push(entry)

    def drop_account(self, account: str) -> None:
        """Forget every queued event of ``account`` (it was removed)."""
        for event_id in [e.event_id for e in self._entries.values() if e.account == account]:
            entry = self._entries.pop(event_id)
            self._queues.pop(entry.validation_id, None)
            self._in_flight.discard(entry.validation_id)
        self._busy.pop(account, None)
        self._heaps.pop(account, None)
        if account in self._turns:
            self._turns.remove(account)
