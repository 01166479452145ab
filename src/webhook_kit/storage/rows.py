"""The typed values that cross the storage seam: what goes in, what comes out.

Every backend returns these, never a driver's row type, so nothing above the store knows which
database it runs on. Named tuples where one is made per event or attempt on the delivery path
(cheaper to build than frozen dataclasses, and as immutable).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

import orjson

from webhook_kit.delivery.outcome import AttemptResult

#: The account of every event and record written without one (``provider --apikey``, emit).
DEFAULT_ACCOUNT = "default"
#: Deliveries in flight at once to one account's endpoint, unless its settings say otherwise.
DEFAULT_MAX_IN_FLIGHT = 4

#: The four states of an event (the contract's delivery profile).
EventState = Literal["pending", "retrying", "sent", "failed"]
EVENT_STATES: tuple[EventState, ...] = ("pending", "retrying", "sent", "failed")
#: The states after which a validation's next event may go.
DONE_STATES: frozenset[EventState] = frozenset({"sent", "failed"})


class NewEvent(NamedTuple):
    """An event to store: the notification and its body encoded once, as it will be sent."""

    event_id: str
    validation_id: str
    status: str
    body: str
    account: str = DEFAULT_ACCOUNT

    @classmethod
    def of(cls, notification: Mapping[str, Any], account: str = DEFAULT_ACCOUNT) -> NewEvent:
        return cls(
            str(notification["event_id"]),
            str(notification["validation_id"]),
            str(notification["status"]),
            encode_body(notification),
            account,
        )


class Claim(NamedTuple):
    """A validation's head event, claimed by this process for one attempt.

    ``token`` fences the claim: a completion whose claim has since expired and been taken by
    another worker records its attempt but does not move the event on.
    """

    seq: int
    event_id: str
    validation_id: str
    body: bytes
    attempts: int
    token: str
    account: str = DEFAULT_ACCOUNT
    #: The validation's next pending events, claimed with this one under the same lease: each
    #: is sent once the one before it is done (sent, or failed for good), with no claim between.
    rest: tuple[Next, ...] = ()

    def next(self) -> Claim | None:
        """The claim of the following event, under the same lease; ``None`` at the end."""
        if not self.rest:
            return None
        first = self.rest[0]
        return Claim(
            first.seq,
            first.event_id,
            self.validation_id,
            first.body,
            first.attempts,
            self.token,
            self.account,
            self.rest[1:],
        )


class Next(NamedTuple):
    """A later event of a claimed validation (see :attr:`Claim.rest`)."""

    seq: int
    event_id: str
    body: bytes
    attempts: int


class AttemptRecord(NamedTuple):
    """One attempt and the state it leaves its event in."""

    claim: Claim
    attempt: int
    at: float
    result: AttemptResult
    state: EventState
    next_attempt_at: float | None

    @property
    def keeps_lease(self) -> bool:
        """Whether its claim's chain goes on under the lease (the event is done, more follow)."""
        return bool(self.claim.rest) and self.state in DONE_STATES


class EventRow(NamedTuple):
    seq: int
    event_id: str
    validation_id: str
    status: str
    body: str
    state: EventState
    created_at: float
    next_attempt_at: float | None
    sent_at: float | None
    attempts: int
    account: str = DEFAULT_ACCOUNT


class AttemptRow(NamedTuple):
    attempt: int
    at: float
    duration_ms: float
    outcome: str
    http_status: int | None
    reason: str


class ValidationSummary(NamedTuple):
    """A validation's events: how many, how many sent, how many not (yet) sent."""

    validation_id: str
    events: int
    sent: int
    not_sent: int


@dataclass(frozen=True)
class ValidationRow:
    id: str
    status: str
    documents: int
    created_at: float
    updated_at: float
    account: str = DEFAULT_ACCOUNT


@dataclass(frozen=True)
class AccountRow:
    id: str
    name: str
    created_at: float


@dataclass(frozen=True)
class KeyRow:
    """An API key as stored: its hash's first characters name it; the key itself is never kept."""

    key_id: str
    created_at: float
    expires_at: float | None
    revoked_at: float | None

    def state(self, now: float) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None:
            return "expired" if self.expires_at <= now else "expiring"
        return "active"


@dataclass(frozen=True)
class SigningKeyRow:
    """One of an account's keys for signing ``private_key_jwt`` client assertions.

    A new key is published (in the account's JWKS) before it signs: from ``active_from``; an
    old one stays published until ``retire_at``, so that an authorization server's cached JWKS
    always holds the key of the assertion it gets.
    """

    kid: str
    algorithm: str
    private_pem: str = field(repr=False)
    created_at: float
    active_from: float
    retire_at: float | None = None


class QueueStat(NamedTuple):
    """One account's queue, for the metrics."""

    account: str
    depth: int
    oldest_pending_seconds: float


@dataclass(frozen=True)
class EventFilter:
    #: Only this account's events (``None``: every account's, for tools without accounts).
    account: str | None = None
    sent: bool | None = None
    status: str | None = None
    validation_id: str | None = None
    since: float | None = None
    until: float | None = None
    state: EventState | None = None


def encode_body(notification: Mapping[str, Any]) -> str:
    """The notification as sent: compact UTF-8 JSON (the same text is stored and delivered)."""
    try:
        return orjson.dumps(notification).decode()
    except TypeError:  # orjson refuses integers beyond 64 bits, non-string keys, surrogates
        text = json.dumps(notification, separators=(",", ":"), ensure_ascii=False)
        return text if storable(text) == text else json.dumps(notification, separators=(",", ":"))


def storable(text: str) -> str:
    """``text`` as UTF-8 can carry it: a lone surrogate (from bytes that were not UTF-8)
    becomes a visible ``\\udcff`` instead of failing the whole write it is part of."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def settings_columns(document: Mapping[str, Any]) -> tuple[bool, int | None]:
    """What the store keeps in columns of a settings document, to claim without parsing it:
    whether it is enabled, and its in-flight cap."""
    cap = document.get("max_in_flight")
    return bool(document.get("enabled", True)), cap if isinstance(cap, int) else None
