"""What the commands share: option groups, parameter types, and the few helpers around them.

Only click is imported here at module level (``--help`` must stay fast); a check that needs the
library imports it when it runs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

import click

if TYPE_CHECKING:
    from webhook_kit.delivery.guard import AddressPolicy
    from webhook_kit.oauth.client import OAuthSettings

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]
AuthMethod = Literal["client_secret_basic", "client_secret_post"]


@contextmanager
def errors_to_exit() -> Iterator[None]:
    """Library errors become one clear line and exit 1 (usage errors stay click's exit 2)."""
    from webhook_kit.errors import WebhookKitError

    try:
        yield
    except WebhookKitError as exc:
        raise click.ClickException(str(exc)) from exc


@contextmanager
def settings_errors_are_usage() -> Iterator[None]:
    """A settings object refusing the options it was built from is a usage error (exit 2)."""
    from webhook_kit.errors import ConfigError

    try:
        yield
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from exc


def option_group(*options: Decorator) -> Decorator:
    """Apply several click options as one decorator, listed in --help order."""

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        for option in reversed(options):
            func = option(func)
        return func

    return decorate


# Parameter types and checks.


class FiniteFloat(click.FloatRange):
    """A float in a range; ``nan`` and ``inf`` (which ``float()`` accepts) are refused."""

    name = "finite float"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        import math

        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return number


class Url(click.types.StringParamType):
    """An absolute URL with a host in one of ``schemes``, as the delivery guard defines it."""

    def __init__(self, *schemes: str) -> None:
        self.schemes = schemes

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        from webhook_kit.delivery.guard import url_problem
        from webhook_kit.display import visible

        url = super().convert(value, param, ctx)
        problem = url_problem(url, schemes=self.schemes)
        if problem is not None:
            self.fail(f"{problem}, got '{visible(url)}'", param, ctx)
        return url


#: Where notifications and token requests go.
HTTPS_URL = Url("https")
#: Plain http is accepted where certify should fail it with a report rather than refuse it.
HTTP_OR_HTTPS_URL = Url("https", "http")


def credential(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """Client id and secret: text a token request can carry. Any other character is fine: both
    methods form-encode it (RFC 6749 section 2.3.1)."""
    if value is None:
        return None
    if any(ord(c) < 0x20 or ord(c) == 0x7F or 0xD800 <= ord(c) <= 0xDFFF for c in value):
        raise click.BadParameter("must not contain control characters or undecodable bytes")
    return value


def listen_host(ctx: click.Context, param: click.Parameter, value: str) -> str:
    from webhook_kit.delivery.guard import host_problem
    from webhook_kit.display import visible

    problem = host_problem(value.strip("[]"))
    if problem is not None:
        raise click.BadParameter(visible(problem))
    return value


# Single options more than one command has.


def timeout_option(help_text: str) -> Decorator:
    return click.option(
        "--timeout",
        type=FiniteFloat(min=0.1, max=3600),
        default=10.0,
        show_default=True,
        help=help_text,
    )


def json_option(help_text: str) -> Decorator:
    return click.option("--json", "as_json", is_flag=True, help=help_text)


def ca_option(help_text: str) -> Decorator:
    return click.option(
        "--ca",
        "ca_file",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        help=help_text,
    )


def server_name_option(help_text: str | None = None) -> Decorator:
    return click.option(
        "--server",
        type=click.Choice(["uvicorn", "hypercorn"]),
        default="uvicorn",
        show_default=True,
        help=help_text,
    )


def certs_dir_option(*names: str, help_text: str | None = None) -> Decorator:
    return click.option(
        *(names or ("--certs-dir",)),
        type=click.Path(file_okay=False, path_type=Path),
        default=Path("certs"),
        show_default=True,
        help=help_text,
    )


# Option groups.

address_policy_options = option_group(
    click.option(
        "--public-only",
        is_flag=True,
        help="Connect to public addresses only: refuse loopback and private ones too.",
    ),
    click.option(
        "--allow-private",
        is_flag=True,
        help="Also connect to private (LAN) addresses: 10/8, 172.16/12, 192.168/16, fc00::/7, "
        "100.64/10. By default only public and loopback addresses are allowed; link-local and "
        "cloud metadata addresses never are (checked on the address connected to).",
    ),
)


def address_policy(*, public_only: bool, allow_private: bool) -> AddressPolicy:
    """The one policy the two flags of :data:`address_policy_options` choose (both: exit 2)."""
    from webhook_kit.delivery.guard import policy_of

    if public_only and allow_private:
        raise click.UsageError("use --public-only or --allow-private, not both")
    return policy_of(public_only=public_only, allow_private=allow_private)


#: The options of the two commands that run a server (serve and provider).
server_options = option_group(
    click.option(
        "--host",
        default="127.0.0.1",
        show_default=True,
        callback=listen_host,
        help="Interface to listen on.",
    ),
    click.option(
        "--port",
        type=click.IntRange(0, 65535),
        default=8443,
        show_default=True,
        help="0 picks a free port.",
    ),
    server_name_option("hypercorn also speaks HTTP/2."),
    certs_dir_option(help_text="Where the development CA and leaf are kept."),
    click.option(
        "--certfile",
        type=click.Path(dir_okay=False, path_type=Path),
        help="Your own server certificate (PEM); needs --keyfile.",
    ),
    click.option(
        "--keyfile",
        type=click.Path(dir_okay=False, path_type=Path),
        help="Your own private key (PEM).",
    ),
    json_option("Print one JSON line when ready, nothing else."),
)


class Sender(NamedTuple):
    """The OAuth client options of the commands that send (emit and certify), as one value."""

    token_url: str | None
    client_id: str
    client_secret: str
    scope: str | None
    audience: str | None
    auth_method: AuthMethod
    ca_file: Path | None

    def __repr__(self) -> str:
        return f"Sender(token_url={self.token_url!r}, client_id={self.client_id!r}, ...)"

    def oauth(self, timeout: float) -> OAuthSettings:
        from webhook_kit.oauth.client import OAuthSettings

        return OAuthSettings(
            self.token_url or "",
            self.client_id,
            self.client_secret,
            scope=self.scope,
            audience=self.audience,
            auth_method=self.auth_method,
            timeout=timeout,
        )


def sender_options(*, url_type: Url, ca_help: str, token_url_required: bool = True) -> Decorator:
    """The OAuth client options, handed to the command as one ``sender`` argument (the secret
    may come from WEBHOOK_KIT_<COMMAND>_CLIENT_SECRET instead of the command line)."""
    group = option_group(
        click.option(
            "--token-url",
            type=url_type,
            required=token_url_required,
            help="The endpoint's OAuth token URL.",
        ),
        click.option("--client-id", required=True, callback=credential),
        click.option(
            "--client-secret",
            required=True,
            callback=credential,
            help="Or WEBHOOK_KIT_<COMMAND>_CLIENT_SECRET.",
        ),
        click.option("--scope"),
        click.option("--audience"),
        click.option(
            "--auth-method",
            type=click.Choice(["client_secret_basic", "client_secret_post"]),
            default="client_secret_basic",
            show_default=True,
            callback=credential,
        ),
        ca_option(ca_help),
    )

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(func)
        def command(**params: Any) -> Any:
            sender = Sender(**{name: params.pop(name) for name in Sender._fields})
            return func(sender=sender, **params)

        return group(command)

    return decorate


def announce_ready(
    what: str,
    server: str,
    facts: dict[str, Any],
    *,
    as_json: bool,
    width: int,
    extra: dict[str, Any] | None = None,
    notes: tuple[str, ...] = (),
) -> None:
    """What a server command prints once it listens: its facts as one JSON line, or a banner
    (``extra``: rows after the facts, ``notes``: lines after the rows)."""
    if as_json:
        echo_json(facts)
        return
    from webhook_kit._version import __version__

    click.echo(f"webhook-kit {__version__} {what} ready ({server}, TLS)")
    for label, value in {**facts, **(extra or {})}.items():
        click.echo(f"  {label:<{width}}{value}")
    for note in notes:
        click.echo(note)
    click.echo("Press Ctrl+C to stop.")


def echo_json(document: Any) -> None:
    import json

    click.echo(json.dumps(document))
