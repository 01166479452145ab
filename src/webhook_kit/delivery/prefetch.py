"""How many claims a dispatcher holds, and when it claims more: paced by its slots' recent speed.

A claim is a database round trip (it also carries the completions before it), so claims wait in
the dispatcher's queue while the next ones are fetched, instead of the slots idling through it.
Under load that round trip, and a chain's wait for its completion to be written
(:meth:`~webhook_kit.delivery.dispatcher.Dispatcher`), take up to tens of milliseconds: the queue
must hold more than that much work, or the slots starve. A slow endpoint must not get a deep queue,
though: its claims would wait there past their lease. So the queue holds what the slots sent in
:data:`QUEUE_SECONDS` at their recent pace, between :data:`PREFETCH` and :data:`PREFETCH_MAX`
claims per slot.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

#: Claims held per slot (in flight plus waiting), at least: what a slow or idle dispatcher holds.
PREFETCH = 4
#: ... and at most, however fast the slots go.
PREFETCH_MAX = 16
#: Work held in hand, in seconds of the slots' recent pace (more than a claim's round trip and a
#: chain's wait for its write under load (on PostgreSQL up to the 50 ms write timer, and the
#: write), far less than a lease).
QUEUE_SECONDS = 0.1
#: How often the pace is measured again (the attempts that ended in the last window).
WINDOW = 0.1
#: A claim is sent once there is room for this many heads (or half of what is held, for a small
#: concurrency): its round trip costs about the same whatever it brings, so small claims, one per
#: completion, would cost the database and the worker most per delivery.
MIN_BATCH = 16


class Prefetch:
    """The claims a dispatcher of ``concurrency`` slots holds: :meth:`sizes`; told of every
    attempt that ends (:meth:`ended`)."""

    def __init__(self, concurrency: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.concurrency = concurrency
        self._clock = clock
        self._window_start = clock()
        self._ended = 0
        self._rate = 0.0

    def ended(self) -> None:
        if not self._ended:  # a window opens with its first attempt: idle time is no pace
            self._window_start = self._clock()
        self._ended += 1

    @property
    def rate(self) -> float:
        """Attempts ended per second over the last whole window."""
        now = self._clock()
        elapsed = now - self._window_start
        if elapsed >= WINDOW:
            self._rate = self._ended / elapsed
            self._window_start, self._ended = now, 0
        return self._rate

    def sizes(self) -> tuple[int, int]:
        """(capacity, refill): hold at most ``capacity`` heads (claimed, or in flight), and
        claim once no more than ``refill`` are held."""
        return claim_sizes(self.concurrency, self.rate)


def claim_sizes(concurrency: int, rate: float = 0.0) -> tuple[int, int]:
    """(capacity, refill) for ``concurrency`` slots that end ``rate`` attempts per second."""
    wanted = concurrency + math.ceil(rate * QUEUE_SECONDS)
    capacity = max(PREFETCH * concurrency, min(PREFETCH_MAX * concurrency, wanted))
    batch = min(capacity // 2, max(concurrency, MIN_BATCH))
    return capacity, capacity - batch
