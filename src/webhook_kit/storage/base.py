"""The storage seam: what the dispatcher and the provider may ask of a database.

Two interfaces over one database: :class:`EventStore`, the delivery queue (events, attempts, and
which validation's head is due), and :class:`RecordStore`, the provider's own records (the
webhook settings and the validations). :class:`Storage` holds both. Backends: ``sqlite`` (the
embedded default, one process per file) and ``postgres`` (any number of worker processes).

Rules every backend keeps, checked by ``tests/storage/test_contract.py`` over each of them:

- An event is committed before :meth:`EventStore.insert` returns (at-least-once).
- Events of one validation are claimed in order, one at a time: a validation's next event is not
  claimed while its head is claimed or waiting for a retry.
- A claim is a lease: a process that dies loses it when it expires, and another takes the work.
- Attempt records are written in small timed batches by the store itself; every read of this
  process sees its own completions (readers never flush anything).
- Accounts take turns: a claim takes one due head per account before a second from any, keeps
  each account under its in-flight cap, and skips an account whose breaker is open (but for one
  probe once its pause is over).
- Errors are :class:`~webhook_kit.errors.StoreError` and its subclasses, never a driver's.

Claims come in two scopes. ``accounts=None`` (the provider and its workers): every account whose
stored webhook settings are enabled, each capped by its settings' ``max_in_flight``, behind its
breaker. ``accounts=[...]`` (``emit``, certify, a dispatcher with a fixed target): only those,
capped by ``cap`` (``None``: no cap), without breakers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal, Protocol

from webhook_kit.delivery.breaker import Breaker
from webhook_kit.storage.rows import (
    DEFAULT_ACCOUNT,
    AccountRow,
    AttemptRecord,
    AttemptRow,
    Claim,
    EventFilter,
    EventRow,
    KeyRow,
    NewEvent,
    QueueStat,
    SigningKeyRow,
    ValidationRow,
    ValidationSummary,
)

#: What :meth:`EventStore.requeue` did: queued again, still queued (nothing to do), or unknown.
Requeued = Literal["requeued", "queued", "unknown"]


class EventStore(Protocol):
    """The delivery queue."""

    async def insert(self, events: Sequence[NewEvent]) -> None:
        """Store new events as ``pending``, due now, committed when this returns.

        Concurrent callers in one event-loop turn share a transaction. A repeated ``event_id``
        raises :class:`~webhook_kit.errors.DuplicateEvent` for that call alone.
        """
        ...

    async def claim(
        self,
        now: float,
        limit: int,
        lease: float,
        *,
        accounts: Sequence[str] | None = None,
        cap: int | None = None,
        chain: int = 1,
    ) -> list[Claim]:
        """Up to ``limit`` due validation heads, leased to this process for ``lease`` seconds
        (see the module's docstring for the two scopes).

        A claim may carry up to ``chain`` events of its validation: the first, and in
        :attr:`~webhook_kit.storage.rows.Claim.rest` those due after it, in order. The lease is
        kept while their completions are ``sent`` or ``failed`` (see :meth:`complete`); a
        store may always carry fewer."""
        ...

    def complete(self, record: AttemptRecord) -> None:
        """Record an attempt and move its event (and its validation's head) on.

        Buffered: written within a few milliseconds, in a batch; a crash before the write means
        the event is delivered again, which at-least-once allows. The head's lease is given
        back, unless the event is done (``sent`` or ``failed``) and its claim has a
        :attr:`~webhook_kit.storage.rows.Claim.rest`: the chain goes on with :meth:`Claim.next
        <webhook_kit.storage.rows.Claim.next>`, or gives it back with :meth:`release`.
        Completions are written in the order they are made.
        """
        ...

    async def release(self, claims: Sequence[Claim]) -> None:
        """Give claims back unattempted (stopping, or the webhook was disabled), after the
        completions made before."""
        ...

    async def next_due(
        self, now: float, *, accounts: Sequence[str] | None = None, cap: int | None = None
    ) -> float | None:
        """When the earliest head that :meth:`claim` could take is due."""
        ...

    async def wait_for_work(self, timeout: float) -> None:
        """Return when new work may be due (an insert or requeue anywhere), or after ``timeout``."""
        ...

    async def requeue(self, event_id: str, now: float, *, account: str | None = None) -> Requeued:
        """Make a sent or failed event pending again (redelivery); ``account``: only its own."""
        ...

    async def event(self, event_id: str, *, account: str | None = None) -> EventRow | None:
        """One event; with ``account``, only if it is that account's."""
        ...

    async def attempts(self, event_id: str) -> list[AttemptRow]: ...

    async def attempts_of(self, event_ids: Sequence[str]) -> dict[str, list[AttemptRow]]:
        """The attempts of several events in one query."""
        ...

    async def events(
        self, where: EventFilter, *, after_seq: int = 0, limit: int = 100
    ) -> list[EventRow]: ...

    async def validations_by_sent(
        self, sent: bool, *, after: str = "", limit: int = 100, account: str | None = None
    ) -> list[ValidationSummary]:
        """Validations whose events were all sent (``sent``) or not all sent (not ``sent``)."""
        ...

    async def counts(self, *, account: str | None = None) -> dict[str, int]:
        """Events by state."""
        ...

    async def queue_stats(self, now: float) -> list[QueueStat]:
        """Per account with undelivered events: how many, and the oldest one's age."""
        ...

    async def breaker(self, account: str) -> Breaker: ...

    async def set_breaker(self, account: str, breaker: Breaker) -> None: ...

    async def outstanding(self) -> int:
        """Events still to deliver (claimed or not)."""
        ...

    @property
    def poll_interval(self) -> float | None:
        """How often a dispatcher must look for work nobody announces (other processes'
        completions, expired leases); ``None``: every change is announced here."""
        ...

    @property
    def writable(self) -> bool:
        """False while completions cannot be written: claim nothing more until they can."""
        ...

    @property
    def unwritten(self) -> int:
        """Completions made here and not yet written (buffered, or being written)."""
        ...

    async def written(self, *, hurry: bool = True, batch: int | None = None) -> None:
        """Return once the completions made so far are written, or writes fail. Without
        ``hurry`` they may wait a few milliseconds to go with others, in one write: at most
        until ``batch`` are buffered, where the store would batch more."""
        ...


class RecordStore(Protocol):
    """The provider's own records: accounts and their keys, webhook settings, validations."""

    async def settings(self, *, account: str = DEFAULT_ACCOUNT) -> dict[str, Any] | None: ...

    async def put_settings(
        self, document: Mapping[str, Any], now: float, *, account: str = DEFAULT_ACCOUNT
    ) -> None: ...

    async def delete_settings(self, *, account: str = DEFAULT_ACCOUNT) -> bool: ...

    async def settings_version(self) -> int:
        """A number that changes whenever any account's settings change (cheap, for polling)."""
        ...

    async def validation(
        self, validation_id: str, *, account: str = DEFAULT_ACCOUNT
    ) -> ValidationRow | None: ...

    async def save_validation(
        self,
        row: ValidationRow,
        notification: NewEvent,
        *,
        expected: ValidationRow | None,
    ) -> None:
        """Create (``expected`` is ``None``) or change a validation and store its event, in one
        transaction. A change whose ``expected`` row is no longer current raises
        :class:`~webhook_kit.errors.StaleUpdate` and stores nothing."""
        ...

    async def add_account(self, name: str, key_hash: str, now: float) -> AccountRow:
        """A new account with one key; a name in use raises
        :class:`~webhook_kit.errors.AlreadyExists`."""
        ...

    async def accounts(self, *, after: str = "", limit: int = 100) -> list[AccountRow]:
        """Accounts by name, after ``after``."""
        ...

    async def account_named(self, name: str) -> AccountRow | None: ...

    async def account(self, account_id: str) -> AccountRow | None: ...

    async def account_for_key(self, key_hash: str, now: float) -> str | None:
        """The account a key's hash belongs to, if the key is neither revoked nor expired."""
        ...

    async def keys(self, account: str) -> list[KeyRow]: ...

    async def add_key(self, account: str, key_hash: str, now: float, *, grace: float) -> None:
        """Add a key; the account's other live keys expire ``grace`` seconds from ``now``."""
        ...

    async def revoke_keys(self, account: str, now: float, *, key_id: str | None = None) -> int:
        """Revoke one key (by its id) or all of them; returns how many."""
        ...

    async def remove_account(self, account: str) -> bool:
        """Delete the account, its keys, settings, validations and events."""
        ...

    async def signing_keys(self, account: str) -> list[SigningKeyRow]:
        """The account's assertion-signing keys, oldest first."""
        ...

    async def add_signing_key(
        self, account: str, key: SigningKeyRow, *, retire_others_at: float | None
    ) -> None:
        """Add a key; with ``retire_others_at``, the account's other keys retire then."""
        ...


class Storage(Protocol):
    """One open database: both interfaces, and how it is shown to a user."""

    @property
    def events(self) -> EventStore: ...

    @property
    def records(self) -> RecordStore: ...

    @property
    def display(self) -> str:
        """The database as a user may see it (a path, or a URL without its password)."""
        ...

    async def close(self) -> None:
        """Write what is buffered, give back this process's claims, close."""
        ...


__all__ = [
    "AttemptRecord",
    "Claim",
    "EventStore",
    "RecordStore",
    "Requeued",
    "Storage",
]
