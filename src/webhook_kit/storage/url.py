"""``--db``: which database a command uses, and how to open it.

A path, or ``sqlite:///path``, is an SQLite file (the default: nothing to install or run);
``postgresql://user@host:port/dbname`` (or ``postgres://``) is a PostgreSQL server; its
``?schema=NAME`` keeps the kit's tables in a schema of their own (default ``public``), so that
several installations, or tests, can share one database.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from webhook_kit.display import visible
from webhook_kit.errors import ConfigError
from webhook_kit.storage.base import Storage

Backend = Literal["sqlite", "postgresql"]
#: Query parameters of a PostgreSQL URL that hold a secret (libpq's, as asyncpg reads them).
SECRET_PARAMETERS = frozenset({"password", "sslpassword"})


def check_schema(name: str) -> str:
    """A schema name the kit will quote as an SQL identifier: letters, digits, underscores."""
    if not name or not all(c.isalnum() or c == "_" for c in name):
        raise ConfigError(f"schema name {visible(name)!r}: use letters, digits and underscores")
    return name


@dataclass(frozen=True)
class DatabaseUrl:
    backend: Backend
    #: The file path (SQLite) or the full connection URL (PostgreSQL; may hold a password).
    target: str

    @classmethod
    def parse(cls, text: str) -> DatabaseUrl:
        text = text.strip()
        if not text:
            raise ConfigError("--db: give a file path or a postgresql:// URL")
        scheme = text.split(":", 1)[0].lower() if "://" in text else ""
        if scheme in ("postgresql", "postgres"):
            try:
                parts = urlsplit(text)
                for host in parts.netloc.rsplit("@", 1)[-1].split(","):  # libpq's host lists
                    urlsplit(f"//{host}").port  # noqa: B018 (read for its check)
            except ValueError:  # else the driver's, as an internal error
                # Not the parser's words: they may quote a piece of the password.
                raise ConfigError(
                    "--db: not a valid PostgreSQL URL: a port is not a number, or a [host] not "
                    "an IPv6 address (percent-encode / ? # [ ] @ in a password)"
                ) from None
            if not parts.path.strip("/"):
                raise ConfigError("--db: the PostgreSQL URL needs a database name (…/dbname)")
            query = parse_qsl(parts.query, keep_blank_values=True)
            schemas = [value for key, value in query if key == "schema"]
            if len(schemas) > 1:
                raise ConfigError("--db: give ?schema= once")
            if schemas:
                check_schema(schemas[0])
            return cls("postgresql", text)
        if scheme == "sqlite":
            path = text[len("sqlite://") :]
            if not path.startswith("/"):
                raise ConfigError("--db: write an SQLite URL as sqlite:///path/to/file.db")
            path = path[1:] if path.startswith("//") else path
            if path == "/:memory:":
                return cls("sqlite", ":memory:")
            return cls("sqlite", path)
        if scheme:
            raise ConfigError(
                f"--db: unknown database scheme {scheme!r}: use a path, sqlite:///path "
                "or postgresql://user@host:port/dbname"
            )
        if text == ":memory:":
            return cls("sqlite", text)
        return cls("sqlite", str(Path(text).expanduser().resolve()))

    @property
    def display(self) -> str:
        """Safe to print and log: a PostgreSQL URL loses its password."""
        if self.backend == "sqlite":
            return self.target
        parts = urlsplit(self.target)
        query = parse_qsl(parts.query, keep_blank_values=True)
        if parts.password is None and not any(k in SECRET_PARAMETERS for k, _ in query):
            return self.target  # as given: urlunsplit would rewrite postgresql:///db as :/db
        if parts.password is not None:
            netloc = parts.netloc.rsplit("@", 1)[1]
            parts = parts._replace(netloc=f"{parts.username or ''}:***@{netloc}")
        if any(k in SECRET_PARAMETERS for k, _ in query):
            masked = [(k, "***" if k in SECRET_PARAMETERS else v) for k, v in query]
            parts = parts._replace(query=urlencode(masked, safe="*"))
        shown = urlunsplit(parts)
        # With no host (a socket given as ?host=), urlunsplit drops the "//" that --db needs.
        return shown if parts.netloc else shown.replace(":", "://", 1)

    @property
    def schema(self) -> str:
        """The PostgreSQL schema the tables live in."""
        query = dict(parse_qsl(urlsplit(self.target).query))
        return query.get("schema", "public")

    @property
    def connect_target(self) -> str:
        """The URL as the driver takes it (without the kit's own ``schema`` parameter)."""
        parts = urlsplit(self.target)
        query = [(k, v) for k, v in parse_qsl(parts.query) if k != "schema"]
        return urlunsplit(parts._replace(query=urlencode(query)))

    @property
    def multi_process(self) -> bool:
        """Whether several processes (workers) may share it."""
        return self.backend == "postgresql"


async def open_storage(
    url: DatabaseUrl | str, *, schema: str | None = None, clock: Callable[[], float] = time.time
) -> Storage:
    """Open (creating or migrating as needed) the database ``url`` names.

    ``schema`` (PostgreSQL only) keeps the tables in a schema of their own, so that tests and
    several installations can share one database.
    """
    db = url if isinstance(url, DatabaseUrl) else DatabaseUrl.parse(url)
    if db.backend == "sqlite":
        from webhook_kit.storage.sqlite import SqliteStorage

        return SqliteStorage.open(db.target, clock)
    from webhook_kit.storage.postgres import PostgresStorage

    return await PostgresStorage.open(db, schema=schema, clock=clock)
