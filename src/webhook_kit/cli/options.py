"""What the commands share: option groups, parameter types, and the few helpers around them.

Only click is imported here at module level (``--help`` must stay fast); a check that needs the
library imports it when it runs.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import click

if TYPE_CHECKING:
    from webhook_kit.delivery.guard import AddressPolicy
    from webhook_kit.oauth.client import OAuthSettings

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]


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


#: The sender flag (without its ``--`` or plugin prefix) that sets each settings field, so an
#: error a settings type raises names what the user typed.
FLAG_OF_FIELD = {
    "client_id": "client-id",
    "secret": "client-secret",
    "client_secret": "client-secret",
    "method": "auth-method",
    "auth_method": "auth-method",
    "credentials": "auth-method",
    "private_key": "private-key",
    "key_id": "key-id",
    "algorithm": "assertion-alg",
    "assertion_audience": "assertion-audience",
    "cert_file": "client-cert",
    "key_file": "client-key",
    "dpop": "dpop",
    "issuer": "issuer",
    "token_url": "token-url",
    "resource": "resource",
}
_LEADING_FIELD = re.compile(r"^([a-z_0-9]+)(?=[: ])")


def flag_named(message: str, prefix: str = "--") -> str:
    """``message`` with its leading settings field (``cert_file: ...``) replaced by the flag
    that sets it (``--client-cert: ...``)."""
    match = _LEADING_FIELD.match(message)
    if match is None or match.group(1) not in FLAG_OF_FIELD:
        return message
    return prefix + FLAG_OF_FIELD[match.group(1)] + message[match.end() :]


class Sender(NamedTuple):
    """The OAuth client options of the commands that send (emit and certify), as one value.
    The pytest plugin builds one from its own options, so both check the same way."""

    token_url: str | None
    client_id: str
    client_secret: str | None
    scope: str | None
    audience: str | None
    auth_method: str
    private_key: Path | None
    key_id: str | None
    assertion_alg: str
    assertion_audience: str
    client_cert: Path | None
    client_key: Path | None
    dpop: str | None
    issuer: str | None
    resource: str | None
    ca_file: Path | None

    def __repr__(self) -> str:
        return f"Sender(token_url={self.token_url!r}, client_id={self.client_id!r}, ...)"

    def oauth(self, timeout: float, *, prefix: str = "--") -> OAuthSettings:
        """The settings these options describe; :class:`ConfigError` naming the flag (with
        ``prefix``) for a missing, unused or unusable value. Never quotes a secret or a key."""
        from webhook_kit.errors import ConfigError

        try:
            return self._oauth(timeout, prefix)
        except ConfigError as exc:
            raise type(exc)(flag_named(str(exc), prefix)) from exc

    def _oauth(self, timeout: float, prefix: str) -> OAuthSettings:
        from webhook_kit.errors import ConfigError
        from webhook_kit.oauth import client_auth
        from webhook_kit.oauth.client import OAuthSettings

        method = client_auth.parse_method(self.auth_method, name="method")
        credential = client_auth.needs(method)
        secret_method = credential is client_auth.Credential.SECRET
        if secret_method and not self.client_secret:
            raise ConfigError(
                f"secret: {method} needs a client secret (or WEBHOOK_KIT_<COMMAND>_CLIENT_SECRET)"
            )
        if not secret_method and self.client_secret:
            raise ConfigError(f"secret: {method} does not use a client secret")
        unused = {
            "private_key": self.private_key,
            "key_id": self.key_id,
        }
        if credential is not client_auth.Credential.PRIVATE_KEY:
            for name, value in unused.items():
                if value is not None:
                    raise ConfigError(f"{name}: only private_key_jwt signs assertions")
        private_key = _read_key(self.private_key) if self.private_key is not None else None
        credentials = client_auth.ClientCredentials(
            self.client_id,
            method,
            secret=self.client_secret if secret_method else None,
            private_key=private_key,
            key_id=self.key_id,
            algorithm=client_auth.parse_algorithm(self.assertion_alg),
            cert_file=self.client_cert,
            key_file=self.client_key,
            assertion_audience=_audience(self.assertion_audience),
        )
        dpop = _dpop_algorithm(self.dpop)
        return OAuthSettings(
            self.token_url or "",
            scope=self.scope,
            audience=self.audience,
            timeout=timeout,
            credentials=credentials,
            dpop=dpop,
            issuer=self.issuer,
            resource=self.resource,
        )


def _read_key(path: Path) -> str:
    from webhook_kit.errors import ConfigError

    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"private_key: cannot read {path}: {exc.strerror}") from exc
    try:
        return data.decode("ascii")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"private_key: {path} is not a PEM file (a DER key? convert it with openssl pkey)"
        ) from exc


def _audience(value: str) -> Any:
    from webhook_kit.errors import ConfigError
    from webhook_kit.oauth.client_auth import ASSERTION_AUDIENCES

    if value not in ASSERTION_AUDIENCES:
        raise ConfigError(
            f"assertion_audience: {value!r} is not one of {', '.join(ASSERTION_AUDIENCES)}"
        )
    return value


def _dpop_algorithm(value: str | None) -> Any:
    from webhook_kit.errors import ConfigError
    from webhook_kit.oauth.dpop import ALGORITHMS

    if value is None or value in ALGORITHMS:
        return value
    raise ConfigError(f"dpop: unsupported algorithm {value!r}; use one of {', '.join(ALGORITHMS)}")


class _Choices(click.Choice[str]):
    """Choices read from the library when first needed, so ``--help`` of other commands and
    the module import stay cheap."""

    def __init__(self, load: Callable[[], tuple[str, ...]]) -> None:
        self._load = load
        self._loaded: tuple[str, ...] | None = None
        self.case_sensitive = True

    @property
    def choices(self) -> tuple[str, ...]:  # type: ignore[override]
        if self._loaded is None:
            self._loaded = self._load()
        return self._loaded


def _methods() -> tuple[str, ...]:
    from webhook_kit.oauth.client_auth import METHODS

    return METHODS


def _assertion_algorithms() -> tuple[str, ...]:
    from webhook_kit.oauth.client_auth import ALGORITHMS

    return ALGORITHMS


def _assertion_audiences() -> tuple[str, ...]:
    from webhook_kit.oauth.client_auth import ASSERTION_AUDIENCES

    return ASSERTION_AUDIENCES


def _dpop_algorithms() -> tuple[str, ...]:
    from webhook_kit.oauth.dpop import ALGORITHMS

    return ALGORITHMS


_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)


def sender_options(*, url_type: Url, ca_help: str, token_url_required: bool = True) -> Decorator:
    """The OAuth client options, handed to the command as one ``sender`` argument (the secret
    may come from WEBHOOK_KIT_<COMMAND>_CLIENT_SECRET instead of the command line)."""
    group = option_group(
        click.option(
            "--token-url",
            type=url_type,
            required=token_url_required,
            help="The endpoint's OAuth token URL (or --issuer to discover it).",
        ),
        click.option("--client-id", required=True, callback=credential),
        click.option(
            "--client-secret",
            callback=credential,
            help="For the client_secret_* methods. Or WEBHOOK_KIT_<COMMAND>_CLIENT_SECRET.",
        ),
        click.option("--scope"),
        click.option("--audience"),
        click.option(
            "--auth-method",
            type=_Choices(_methods),
            default="client_secret_basic",
            show_default=True,
            help="How the client authenticates at the token endpoint.",
        ),
        click.option(
            "--private-key",
            type=_FILE,
            help="private_key_jwt: the PEM private key that signs the client assertions.",
        ),
        click.option("--key-id", callback=credential, help="private_key_jwt: the assertions' kid."),
        click.option(
            "--assertion-alg",
            type=_Choices(_assertion_algorithms),
            default="RS256",
            show_default=True,
            help="private_key_jwt: the signing algorithm.",
        ),
        click.option(
            "--assertion-audience",
            type=_Choices(_assertion_audiences),
            default="token_endpoint",
            show_default=True,
            help="private_key_jwt: the assertion's aud (FAPI 2.0 recommends issuer).",
        ),
        click.option(
            "--client-cert",
            type=_FILE,
            help="A PEM client certificate for mutual TLS (the tls methods, or certificate-"
            "bound tokens with any method), on the token request and the webhook POST.",
        ),
        click.option("--client-key", type=_FILE, help="The PEM private key of --client-cert."),
        click.option(
            "--dpop",
            type=_Choices(_dpop_algorithms),
            help="Ask for DPoP-bound tokens (RFC 9449), proving possession of a fresh key of "
            "this algorithm on every request.",
        ),
        click.option(
            "--issuer",
            type=url_type,
            help="The authorization server's issuer: its RFC 8414 or OpenID metadata gives the "
            "token URL and the methods it takes.",
        ),
        click.option("--resource", help="RFC 8707 resource of the token request."),
        ca_option(ca_help),
    )

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(func)
        def command(**params: Any) -> Any:
            sender = Sender(**{name: params.pop(name) for name in Sender._fields})
            if sender.token_url is None and sender.issuer is None:
                raise click.UsageError("give --token-url, or --issuer to discover it")
            return func(sender=sender, **params)

        return group(command)

    return decorate


def check_sender(
    settings: OAuthSettings, ca_file: Path | None, policy: AddressPolicy | None = None
) -> None:
    """Before anything is sent: the client certificate and signing key are usable, and the
    authorization server's metadata (when there is one) advertises the method and the DPoP
    algorithm. A problem is a usage error (exit 2) naming the flag."""
    from webhook_kit.errors import ConfigError

    try:
        preflight(settings, ca_file, policy)
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from exc


def preflight(
    settings: OAuthSettings,
    ca_file: Path | None,
    policy: AddressPolicy | None = None,
    *,
    prefix: str = "--",
) -> None:
    """:func:`check_sender` for any front end: :class:`ConfigError` naming the option (with
    ``prefix``) instead of a usage error."""
    from webhook_kit.errors import ConfigError
    from webhook_kit.serving.loop import run

    try:
        run(_check_sender(settings, ca_file, policy))
    except ConfigError as exc:
        raise type(exc)(flag_named(str(exc), prefix)) from exc


async def _check_sender(
    settings: OAuthSettings, ca_file: Path | None, policy: AddressPolicy | None
) -> None:
    from webhook_kit.delivery.transport import make_session
    from webhook_kit.oauth.client import OAuthClient, check_supported
    from webhook_kit.tls import client_context

    async with make_session(client_context(ca_file), limit=2, policy=policy) as session:
        client = OAuthClient(settings, session, ca_file=ca_file)
        client.prepare()
        metadata = await client.metadata()
        if metadata is not None:
            check_supported(settings, metadata)
        c = settings.credentials
        issuer = settings.issuer or (metadata.issuer if metadata else None)
        if c is not None and c.method == "private_key_jwt":
            # Said now, not at the first token request: the aud needs the issuer.
            c.audience_for(token_endpoint=settings.token_url, issuer=issuer)


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
