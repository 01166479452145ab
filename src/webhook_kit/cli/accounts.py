"""``accounts``: the provider's customers, administered on its database.

``add`` prints the new account's API key once (only its hash is stored); ``rotate-key`` adds a
key and lets the old ones work for a grace period; ``revoke-key`` stops one key or all at once;
``remove`` deletes an account with its keys, settings, validations and events.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

from webhook_kit.cli.options import echo_json, errors_to_exit, settings_errors_are_usage

if TYPE_CHECKING:
    from webhook_kit.storage.base import Storage

T = TypeVar("T")
DB_OPTION = click.option(
    "--db",
    required=True,
    help="The provider's database: an SQLite file or postgresql://user@host:port/dbname.",
)
JSON_OPTION = click.option("--json", "as_json", is_flag=True, help="Print JSON.")
#: Account names: shown to operators, kept in logs; printable and short.
NAME = click.STRING


def _with_storage(db: str, work: Callable[[Storage], Awaitable[T]]) -> T:
    from webhook_kit.storage.url import DatabaseUrl, open_storage

    with settings_errors_are_usage():
        url = DatabaseUrl.parse(db)

    async def main() -> T:
        storage = await open_storage(url)
        try:
            return await work(storage)
        finally:
            await storage.close()

    with errors_to_exit():
        return asyncio.run(main())


def _check_name(name: str) -> str:
    if not name or len(name) > 100 or not name.isprintable() or name != name.strip():
        raise click.BadParameter("1 to 100 printable characters, no surrounding spaces")
    return name


async def _account_id(storage: Storage, name: str) -> str:
    from webhook_kit.errors import ConfigError

    account = await storage.records.account_named(name)
    if account is None:
        raise ConfigError(f"no account named {name!r}")
    return account.id


@click.group()
def accounts() -> None:
    """Administer the provider's accounts (customers) and their API keys."""


@accounts.command()
@click.argument("name", callback=lambda ctx, param, value: _check_name(value))
@DB_OPTION
@JSON_OPTION
def add(name: str, db: str, as_json: bool) -> None:
    """Add an account; prints its API key, once."""
    from webhook_kit.provider import apikeys

    key = apikeys.new_key()

    async def work(storage: Storage) -> dict[str, Any]:
        account = await storage.records.add_account(name, apikeys.key_hash(key), time.time())
        return {"id": account.id, "name": account.name, "apikey": key}

    created = _with_storage(db, work)
    if as_json:
        echo_json(created)
    else:
        click.echo(f"account {created['name']} ({created['id']}) added")
        click.echo(f"apikey: {key}")
        click.echo("Keep it now: only its hash is stored, it cannot be shown again.")


@accounts.command(name="list")
@DB_OPTION
@click.option("--after", default="", help="List the accounts named after this one.")
@click.option("--limit", type=click.IntRange(1, 10_000), default=100, show_default=True)
@JSON_OPTION
def list_(db: str, after: str, limit: int, as_json: bool) -> None:
    """List accounts by name."""

    async def work(storage: Storage) -> list[dict[str, Any]]:
        rows = await storage.records.accounts(after=after, limit=limit)
        return [{"id": a.id, "name": a.name, "created_at": a.created_at} for a in rows]

    found = _with_storage(db, work)
    if as_json:
        echo_json(found)
        return
    from webhook_kit.display import visible

    for account in found:
        click.echo(f"{account['id']:<18} {visible(account['name'])}")


@accounts.command()
@click.argument("name")
@DB_OPTION
@JSON_OPTION
def keys(name: str, db: str, as_json: bool) -> None:
    """List an account's keys (by id: the start of their hash) and their state."""

    async def work(storage: Storage) -> list[dict[str, Any]]:
        now = time.time()
        rows = await storage.records.keys(await _account_id(storage, name))
        return [
            {"key_id": k.key_id, "state": k.state(now), "expires_at": k.expires_at} for k in rows
        ]

    found = _with_storage(db, work)
    if as_json:
        echo_json(found)
        return
    for key in found:
        click.echo(f"{key['key_id']}  {key['state']}")


@accounts.command(name="rotate-key")
@click.argument("name")
@DB_OPTION
@click.option(
    "--grace",
    default="1h",
    show_default=True,
    help="How long the account's current keys keep working (e.g. 0, 30m, 1h, 7d).",
)
@JSON_OPTION
def rotate_key(name: str, db: str, grace: str, as_json: bool) -> None:
    """Give an account a new API key; its current keys stop after the grace period."""
    from webhook_kit.parsing import duration
    from webhook_kit.provider import apikeys

    seconds = duration(grace) if grace.strip() not in ("0", "0s") else 0.0
    if seconds is None:
        raise click.BadParameter("a duration such as 30m, 1h or 7d", param_hint="--grace")
    key = apikeys.new_key()

    async def work(storage: Storage) -> str:
        account = await _account_id(storage, name)
        await storage.records.add_key(account, apikeys.key_hash(key), time.time(), grace=seconds)
        return account

    account = _with_storage(db, work)
    if as_json:
        echo_json({"id": account, "name": name, "apikey": key, "grace_seconds": seconds})
    else:
        click.echo(f"apikey: {key}")
        click.echo(f"The previous keys of {name} stop working in {grace}.")


@accounts.command(name="rotate-signing-key")
@click.argument("name")
@DB_OPTION
@click.option(
    "--overlap",
    default="1h",
    show_default=True,
    help="How long the new key is published before it signs (authorization servers cache JWKS).",
)
def rotate_signing_key(name: str, db: str, overlap: str) -> None:
    """Give an account a new key for signing client assertions (private_key_jwt).

    The new key is in the account's JWKS at once and signs after --overlap; the old one stays
    published a few minutes longer than it signs.
    """
    from webhook_kit.parsing import duration
    from webhook_kit.provider import signing

    seconds = duration(overlap) if overlap.strip() not in ("0", "0s") else 0.0
    if seconds is None:
        raise click.BadParameter("a duration such as 30m, 1h or 7d", param_hint="--overlap")

    async def work(storage: Storage) -> str:
        account = await _account_id(storage, name)
        key = await signing.rotate(storage.records, account, time.time(), overlap=seconds)
        return key.kid

    kid = _with_storage(db, work)
    click.echo(f"new signing key {kid} for {name}: published now, signing in {overlap}")


@accounts.command(name="revoke-key")
@click.argument("name")
@DB_OPTION
@click.option("--key-id", help="The key to revoke (see `accounts keys`); default: every key.")
def revoke_key(name: str, db: str, key_id: str | None) -> None:
    """Revoke one of an account's keys at once, or all of them."""

    async def work(storage: Storage) -> int:
        account = await _account_id(storage, name)
        return await storage.records.revoke_keys(account, time.time(), key_id=key_id)

    count = _with_storage(db, work)
    if key_id is not None and count == 0:
        raise click.ClickException(f"no live key {key_id!r} for {name}")
    click.echo(f"{count} key(s) of {name} revoked")


@accounts.command()
@click.argument("name")
@DB_OPTION
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def remove(name: str, db: str, yes: bool) -> None:
    """Remove an account with its keys, settings, validations and events."""
    if name == "default":
        raise click.UsageError("the default account (provider --apikey) cannot be removed")
    if not yes:
        click.confirm(f"Remove {name} and all its data?", abort=True)

    async def work(storage: Storage) -> bool:
        return await storage.records.remove_account(await _account_id(storage, name))

    _with_storage(db, work)
    click.echo(f"account {name} removed")
