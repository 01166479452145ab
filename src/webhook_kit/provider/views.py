"""How stored rows are shown by the provider API: no I/O."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from webhook_kit.contract.notifications import iso_now
from webhook_kit.storage.rows import AttemptRow, EventRow, ValidationRow


def iso(timestamp: float | None) -> str | None:
    """A stored Unix time in the same form as ``occurred_at`` (ms, ``Z``)."""
    if timestamp is None:
        return None
    return iso_now(dt.datetime.fromtimestamp(timestamp, dt.UTC))


def parse_time(text: str) -> float:
    """An ISO 8601 date-time (``Z`` or offset; naive means UTC) as a Unix timestamp."""
    moment = dt.datetime.fromisoformat(text.strip())
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.timestamp()


def attempt_view(row: AttemptRow) -> dict[str, Any]:
    return {
        "attempt": row.attempt,
        "at": iso(row.at),
        "duration_ms": row.duration_ms,
        "outcome": row.outcome,
        "http_status": row.http_status,
        "reason": row.reason,
    }


def event_view(row: EventRow, attempts: list[AttemptRow]) -> dict[str, Any]:
    return {
        "event_id": row.event_id,
        "validation_id": row.validation_id,
        "status": row.status,
        "state": row.state,
        "created_at": iso(row.created_at),
        "sent_at": iso(row.sent_at),
        "next_attempt_at": iso(row.next_attempt_at) if row.state != "sent" else None,
        "notification": json.loads(row.body),
        "attempts": [attempt_view(a) for a in attempts],
    }


def validation_view(row: ValidationRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "status": row.status,
        "documents": row.documents,
        "created_at": iso(row.created_at),
        "updated_at": iso(row.updated_at),
    }


def encode_cursor(seq: int) -> str:
    return f"e{seq}"


def decode_cursor(cursor: str) -> int:
    if not cursor.startswith("e") or not cursor[1:].isdigit():
        raise ValueError("not a cursor from this API")
    return int(cursor[1:])
