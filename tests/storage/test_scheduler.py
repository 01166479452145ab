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


def test_accounts_take_turns_and_stay_under_their_caps() -> None:
    s = Scheduler()
    seq = 0
    for account, validations in (("slow", 10), ("a", 2), ("b", 2)):
        for v in range(validations):
            seq += 1
            s.add(seq, f"{account}{v}", f"{account}-v{v}", 0, account=account)
    caps = {"slow": 2}
    taken = s.take_due(0, 5, cap=caps.get)
    # One head from each account per turn: the slow account's ten never crowd out the others.
    assert sorted(e.account for e in taken[:3]) == ["a", "b", "slow"]
    assert [e.account for e in taken].count("slow") == 2  # its cap
    assert s.in_flight("slow") == 2
    more = s.take_due(0, 10, cap=caps.get)
    assert all(e.account != "slow" for e in more)
    s.finish(taken[0].event_id if taken[0].account == "slow" else taken[1].event_id)


def test_a_breaker_lets_one_probe_or_nothing_through() -> None:
    s = Scheduler()
    for n in range(3):
        s.add(n, f"d{n}", f"down-v{n}", 0, account="down")
    s.add(9, "ok", "ok-v", 0, account="ok")
    gates = {"down": "no"}
    taken = s.take_due(0, 10, admit=lambda a: gates.get(a, "yes"))  # type: ignore[arg-type,return-value]
    assert [e.account for e in taken] == ["ok"]
    assert s.next_due(admit=lambda a: gates.get(a, "yes"), at=0) is None  # type: ignore[arg-type,return-value]
    gates["down"] = "probe"
    probe = s.take_due(0, 10, admit=lambda a: gates.get(a, "yes"))  # type: ignore[arg-type,return-value]
    assert [e.account for e in probe] == ["down"]  # exactly one
    s.finish(probe[0].event_id)
    gates["down"] = "yes"
    assert len(s.take_due(0, 10, admit=lambda a: gates.get(a, "yes"))) == 2  # type: ignore[arg-type,return-value]


def test_a_removed_account_leaves_nothing_queued() -> None:
    s = Scheduler()
    s.add(1, "x1", "x-v", 0, account="x")
    s.add(2, "y1", "y-v", 0, account="y")
    s.drop_account("x")
    assert len(s) == 1 and [e.account for e in s.take_due(0, 10)] == ["y"]
