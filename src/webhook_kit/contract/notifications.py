"""Build notifications that follow the profile: ids, timestamps and plausible scores."""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterator
from typing import Any

from webhook_kit.contract.statuses import SCORE_NAMES, STATUSES
from webhook_kit.ids import new_id

#: Default source of scores; seeding a new Random per notification showed up in profiles.
_RNG = random.Random()


def iso_now(now: dt.datetime | None = None) -> str:
    now = now or dt.datetime.now(dt.UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


def plausible_score(rng: random.Random) -> float:
    # Real validations mostly score high; a few score low. Three decimals, like the service.
    return round(min(1.0, max(0.0, rng.betavariate(8, 1.5))), 3)


def build(
    status: str,
    *,
    validation_id: str,
    previous_status: str | None,
    event_id: str | None = None,
    occurred_at: str | None = None,
    rng: random.Random | None = None,
    test: bool = False,
) -> dict[str, Any]:
    """One notification for ``status``; ``scores`` present exactly for ``*-uploaded``."""
    rng = rng or _RNG
    body: dict[str, Any] = {
        "event_id": event_id or new_id(),
        "validation_id": validation_id,
        "status": status,
        "previous_status": None if status == "on-course" else previous_status,
        "occurred_at": occurred_at or iso_now(),
    }
    if status in SCORE_NAMES:
        body["scores"] = [{"name": SCORE_NAMES[status], "value": plausible_score(rng)}]
    if test:
        body["test"] = True
    return body


def lifecycle(
    statuses: tuple[str, ...] = STATUSES,
    *,
    validation_id: str | None = None,
    rng: random.Random | None = None,
) -> Iterator[dict[str, Any]]:
    """Notifications for ``statuses`` of one validation, each naming the one before it."""
    validation_id = validation_id or new_id()
    rng = rng or _RNG
    previous: str | None = None
    for status in statuses:
        yield build(
            status, validation_id=validation_id, previous_status=previous or "on-course", rng=rng
        )
        previous = status
