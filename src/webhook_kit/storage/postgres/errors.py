"""asyncpg's exceptions turned into the store's own, in one place; and the bound on one call of
the provider's API."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

from webhook_kit.display import visible
from webhook_kit.errors import ConfigError, DuplicateEvent, StoreError, StoreUnavailable

#: The longest a call of the provider's API waits for the database (the connection included)
#: before it answers 503: a server that froze must not hold a client for a minute.
CALL_DEADLINE = 10.0

#: The server is gone, going, or not there yet: try again later.
UNAVAILABLE: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.TooManyConnectionsError,
)
#: Settings that will not work however often they are tried.
REFUSED: tuple[type[BaseException], ...] = (
    # Before InterfaceError, its base: a URL parameter the driver rejects (``sslmode=bogus``).
    asyncpg.ClientConfigurationError,
    asyncpg.InvalidPasswordError,
    asyncpg.InvalidAuthorizationSpecificationError,
    asyncpg.InvalidCatalogNameError,
    asyncpg.InsufficientPrivilegeError,
)


def describe(exc: BaseException) -> str:
    """The driver's message on one line (it never holds the password), with the server's text
    in it made safe to print: it comes from the network."""
    text = str(exc).strip().splitlines()
    return visible(text[0]) if text else type(exc).__name__


@asynccontextmanager
async def translated(what: str) -> AsyncIterator[None]:
    """Run a database call; its failure becomes a :class:`StoreError` naming ``what``."""
    try:
        yield
    except StoreError:
        raise
    except asyncpg.UniqueViolationError as exc:
        raise DuplicateEvent(f"{what}: {describe(exc)}") from exc
    except REFUSED as exc:
        raise ConfigError(f"{what}: {describe(exc)}") from exc
    except UNAVAILABLE as exc:
        raise StoreUnavailable(f"{what}: the database cannot be reached ({describe(exc)})") from exc
    except asyncpg.PostgresError as exc:
        raise StoreError(f"{what}: {describe(exc)}") from exc


def unanswered(what: str, deadline: float) -> StoreUnavailable:
    """The error of a call the database did not answer within its deadline."""
    return StoreUnavailable(f"{what}: the database did not answer within {deadline:g} s")


@asynccontextmanager
async def bounded_call(
    pool: asyncpg.Pool, what: str, deadline: float = CALL_DEADLINE
) -> AsyncIterator[Any]:
    """A pooled connection for one call, translated (:func:`translated`); the connection is
    closed if the call, its wait for the connection included, is not done within ``deadline``.

    Closed, not the task cancelled: a cancelled statement makes the driver ask the server to
    cancel it, and a rollback waits for that answer, from a server that may be what hangs, for
    up to the command timeout (30 s); so would the connection's release. Closing fails the
    statement, or the rollback, at once."""
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline
    cut = False
    async with translated(what):
        try:
            conn = await pool.acquire(timeout=deadline)
        except TimeoutError:
            raise unanswered(what, deadline) from None

        def close() -> None:
            nonlocal cut
            cut = True
            conn.terminate()

        timer = loop.call_at(end, close)
        try:
            yield conn
        except Exception as exc:
            if cut:
                raise unanswered(what, deadline) from exc
            raise
        finally:
            timer.cancel()
            await pool.release(conn)
