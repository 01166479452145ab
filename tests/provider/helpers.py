"""The provider API client lives in ``harnesses.clients``, shared with ``scripts/``; here, what a
test reads of a running provider's own database."""

from __future__ import annotations

import asyncio
from typing import Any

from harnesses.clients import ProviderClient as ProviderClient
from webhook_kit.provider.service import Provider
from webhook_kit.storage.sqlite import SqliteStorage


def sqlite_of(provider: Provider) -> SqliteStorage:
    """The running provider's SQLite database (the tests' default, ``:memory:``)."""
    storage = provider.storage
    assert isinstance(storage, SqliteStorage), f"not an SQLite database: {storage!r}"
    return storage


def stored_settings(provider: Provider) -> dict[str, Any] | None:
    """The webhook settings as stored, the secret included.

    Read from the test's thread on the provider's SQLite connection (which allows it): one
    statement, while the provider is between requests.
    """
    return asyncio.run(sqlite_of(provider).records.settings())
