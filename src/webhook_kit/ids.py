"""Identifiers for events and validations: UUIDv7 (RFC 9562), time-ordered.

The store indexes events by ``event_id`` and by ``validation_id``. Random (v4) ids land on a
random index page each, so a commit of 100 new events rewrote dozens of pages; time-ordered
ids append at the end of the index. On this project's benchmark machine that halved the cost of
storing an event (see benchmarks/README.md). Receivers treat ids as opaque strings, and any UUID
is valid for them. Python 3.14 brings ``uuid.uuid7``; until then uuid-utils provides it.
"""

from __future__ import annotations

import uuid_utils


def new_id() -> str:
    """A new UUIDv7 as its canonical string; increasing within this process."""
    return str(uuid_utils.uuid7())
