"""How many claims a dispatcher holds: paced by its slots, on an injected clock."""

from __future__ import annotations

import math

import pytest

from webhook_kit.delivery.prefetch import (
    MIN_BATCH,
    PREFETCH,
    PREFETCH_MAX,
    QUEUE_SECONDS,
    WINDOW,
    Prefetch,
    claim_sizes,
)
from webhook_kit.testing import FakeClock


def test_an_idle_dispatcher_holds_the_floor() -> None:
    capacity, refill = claim_sizes(16)
    assert capacity == PREFETCH * 16
    assert refill == capacity - max(16, MIN_BATCH)


def test_a_fast_dispatcher_holds_its_pace_up_to_the_ceiling() -> None:
    # 2,000 attempts/s: what QUEUE_SECONDS of that pace needs, on top of the slots.
    capacity, _ = claim_sizes(16, 2_000.0)
    assert capacity == 16 + math.ceil(2_000 * QUEUE_SECONDS)
    assert PREFETCH * 16 < capacity < PREFETCH_MAX * 16
    assert claim_sizes(16, 1e9)[0] == PREFETCH_MAX * 16


def test_a_small_concurrency_claims_half_of_what_it_holds() -> None:
    capacity, refill = claim_sizes(1)
    assert (capacity, refill) == (PREFETCH, PREFETCH - PREFETCH // 2)


def test_the_pace_is_measured_over_whole_windows_and_idle_time_is_no_pace() -> None:
    clock = FakeClock(start=100.0)
    prefetch = Prefetch(16, clock=clock)
    clock.advance(3600.0)  # idle for an hour, then busy
    for _ in range(200):
        prefetch.ended()
        clock.advance(WINDOW / 200)
    assert prefetch.rate == pytest.approx(200 / WINDOW)
    assert prefetch.sizes()[0] == min(PREFETCH_MAX * 16, 16 + round(200 / WINDOW * QUEUE_SECONDS))
    # Within a window the last pace holds; a whole window with no attempt ends it.
    clock.advance(WINDOW / 2)
    assert prefetch.rate == pytest.approx(200 / WINDOW)
    clock.advance(WINDOW)
    assert prefetch.rate == 0.0
    assert prefetch.sizes() == claim_sizes(16)
