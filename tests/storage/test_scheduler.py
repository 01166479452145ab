from __future__ import annotations

from webhook_kit.storage.scheduler import Scheduler


def ids(entries: list) -> list[str]:  # type: ignore[type-arg]
    return [e.event_id for e in entries]


def test_only_the_head_of_a_validation_is_due() -> None:
    s = Scheduler()
    s.add(1, "a1", "A", 0)
    s.add(2, "a2", "A", 0)
    s.add(3, "b1", "B", 0)
    assert ids(s.take_due(now=0, limit=10)) == ["a1", "b1"]
    assert s.take_due(now=0, limit=10) == []  # both validations are in flight
    s.finish("a1")
    assert ids(s.take_due(now=0, limit=10)) == ["a2"]


def test_a_retrying_event_holds_back_only_its_validation() -> None:
    s = Scheduler()
    s.add(1, "a1", "A", 0)
    s.add(2, "a2", "A", 0)
    s.add(3, "b1", "B", 0)
    s.add(4, "b2", "B", 0)
    s.take_due(0, 10)
    s.reschedule("a1", 100)
    s.finish("b1")
    assert ids(s.take_due(now=1, limit=10)) == ["b2"]
    assert s.next_due() == 100
    assert ids(s.take_due(now=100, limit=10)) == ["a1"]


def test_limit_and_due_time() -> None:
    s = Scheduler()
    for n in range(5):
        s.add(n, f"e{n}", f"V{n}", float(n))
    assert ids(s.take_due(now=2, limit=2)) == ["e0", "e1"]
    assert ids(s.take_due(now=2, limit=5)) == ["e2"]
    assert s.next_due() == 3.0


def test_a_redelivered_older_event_goes_back_in_order() -> None:
    s = Scheduler()
    s.add(5, "a5", "A", 0)
    s.add(2, "a2", "A", 0)
    assert ids(s.take_due(0, 10)) == ["a2"]


def test_release_puts_the_head_back() -> None:
    s = Scheduler()
    s.add(1, "a1", "A", 0)
    assert ids(s.take_due(0, 1)) == ["a1"]
    s.release("a1")
    assert ids(s.take_due(0, 1)) == ["a1"]
    assert "a1" in s and len(s) == 1
