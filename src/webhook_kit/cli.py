"""The ``webhook-kit`` command line: a thin click layer over the library.

Only click is imported at module level, so ``webhook-kit --help`` starts fast; each command imports
what it needs. Exit codes are decided here: 0 success, 1 failure or unusable files/ports, 2 usage,
3 crash (an unexpected exception, see ``_KitGroup``).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import click

from webhook_kit._version import __version__
from webhook_kit.contract.statuses import LEGACY_ALIASES, STATUSES

if TYPE_CHECKING:
    from webhook_kit.endpoint.settings import FaultRule


@contextmanager
def _errors_to_exit() -> Iterator[None]:
    """Library errors become one clear line and exit 1 (usage errors stay click's exit 2)."""
    from webhook_kit.errors import WebhookKitError

    try:
        yield
    except WebhookKitError as exc:
        raise click.ClickException(str(exc)) from exc


class _KitGroup(click.Group):
    """Exit codes: 0 success, 1 failure, 2 usage error, 3 crash.

    A crash is an exception nobody expected (a bug): one line on stderr naming its type, exit 3,
    and the traceback only with ``--log-level debug``. The message is left out: it could quote
    an argument, and arguments include secrets.
    """

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as exc:
            if ctx.params.get("log_level") == "debug":
                import traceback

                traceback.print_exc(file=sys.stderr)
                hint = ""
            else:
                hint = " (--log-level debug shows the traceback)"
            click.echo(
                f"webhook-kit: internal error: {type(exc).__name__}; this is a bug{hint}",
                err=True,
            )
            ctx.exit(EXIT_CRASH)


EXIT_CRASH = 3


@click.group(
    cls=_KitGroup,
    context_settings={"auto_envvar_prefix": "WEBHOOK_KIT", "help_option_names": ["-h", "--help"]},
)
@click.version_option(__version__, prog_name="webhook-kit")
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="warning",
    show_default=True,
    help="Log to stderr at this level (secrets are never logged at any level).",
)
def main(log_level: str) -> None:
    """A local HTTPS + OAuth webhook receiver and conformance kit for validation-status webhooks.

    \b
    Start here:   webhook-kit demo
    Receive:      webhook-kit serve --port 0 --json
    Send:         webhook-kit emit URL --token-url U --client-id ID --client-secret S --all
    Provider API: webhook-kit provider --port 0 --json
    Certify:      webhook-kit certify URL --token-url U --client-id ID --client-secret S
    Certificates: webhook-kit certs
    Schemas:      webhook-kit schemas --out DIR
    """
    import logging

    logging.basicConfig(
        level=log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def _parse_rules(
    ctx: click.Context, param: click.Parameter, values: tuple[str, ...]
) -> tuple[FaultRule, ...]:
    from webhook_kit.endpoint.settings import FaultRule
    from webhook_kit.errors import ConfigError

    try:
        return tuple(FaultRule.parse(v) for v in values)
    except ConfigError as exc:
        raise click.BadParameter(str(exc)) from exc


def _options(
    *options: Callable[[Callable[..., Any]], Callable[..., Any]],
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Apply several click options as one decorator, listed in --help order."""

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        for option in reversed(options):
            func = option(func)
        return func

    return decorate


class FiniteFloat(click.FloatRange):
    """A float in a range; ``nan`` and ``inf`` (which ``float()`` accepts) are refused."""

    name = "finite float"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        import math

        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return number


def _timeout_option(help_text: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    return click.option(
        "--timeout",
        type=FiniteFloat(min=0.1, max=3600),
        default=10.0,
        show_default=True,
        help=help_text,
    )


_PUBLIC_ONLY = _options(
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


def _listen_host(ctx: click.Context, param: click.Parameter, value: str) -> str:
    from webhook_kit.delivery.guard import host_problem
    from webhook_kit.display import visible

    problem = host_problem(value.strip("[]"))
    if problem is not None:
        raise click.BadParameter(visible(problem))
    return value


def _server_options(func: Callable[..., Any]) -> Callable[..., Any]:
    return _options(
        click.option(
            "--host",
            default="127.0.0.1",
            show_default=True,
            callback=_listen_host,
            help="Interface to listen on.",
        ),
        click.option(
            "--port",
            type=click.IntRange(0, 65535),
            default=8443,
            show_default=True,
            help="0 picks a free port.",
        ),
        click.option(
            "--server",
            type=click.Choice(["uvicorn", "hypercorn"]),
            default="uvicorn",
            show_default=True,
            help="hypercorn also speaks HTTP/2.",
        ),
        click.option(
            "--certs-dir",
            type=click.Path(file_okay=False, path_type=Path),
            default=Path("certs"),
            show_default=True,
            help="Where the development CA and leaf are kept.",
        ),
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
        click.option(
            "--json", "as_json", is_flag=True, help="Print one JSON line when ready, nothing else."
        ),
    )(func)


@main.command()
@_server_options
@click.option("--path", default="/webhook", show_default=True, help="Path of the webhook route.")
@click.option("--client-id", help="OAuth client id the endpoint accepts (default: generated).")
@click.option("--client-secret", help="OAuth client secret (default: generated).")
@click.option(
    "--audience", default="webhook-kit", show_default=True, help="The 'aud' tokens must carry."
)
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    default=("webhook",),
    show_default=True,
    help="Scopes the issuer grants (repeatable).",
)
@click.option(
    "--token-ttl",
    type=click.IntRange(1, 366 * 86400),
    default=3600,
    show_default=True,
    help="Access token lifetime, seconds.",
)
@click.option(
    "--max-body",
    type=click.IntRange(1, 64 * 1024 * 1024),
    default=1024 * 1024,
    show_default=True,
    help="Body size limit, bytes (413 above).",
)
@click.option("--legacy-statuses", is_flag=True, help="Also accept v2.32's 'documen2-uploaded'.")
@click.option(
    "--record",
    "record_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Append every request to this JSON-lines file (read back on start).",
)
@click.option(
    "--keep",
    type=click.IntRange(min=1, max=1_000_000),
    default=10_000,
    show_default=True,
    help="Requests kept in memory (also bounded to 64 MiB of request data).",
)
@click.option(
    "--respond",
    "respond",
    multiple=True,
    callback=_parse_rules,
    metavar="STATUS=CODE[xN]",
    help="Answer CODE to STATUS (or * for all), the first N times if given. Repeatable.",
)
@click.option(
    "--fail-rate",
    type=FiniteFloat(0, 1),
    default=0.0,
    show_default=True,
    help="Fraction of valid notifications answered with --fail-code.",
)
@click.option("--fail-code", type=click.IntRange(400, 599), default=503, show_default=True)
@click.option(
    "--delay",
    type=FiniteFloat(0, 3600),
    default=0.0,
    show_default=True,
    help="Seconds to wait before answering a valid notification.",
)
@click.option(
    "--retry-after",
    type=click.IntRange(0, 7 * 86400),
    help="Retry-After seconds on injected 429/503 answers.",
)
@click.option(
    "--seed", type=click.IntRange(0, 2**63 - 1), help="Seed for --fail-rate, for repeatable runs."
)
def serve(as_json: bool, **options: Any) -> None:
    """Run the HTTPS, OAuth-protected mock endpoint until SIGINT/SIGTERM.

    It issues its own tokens (POST /oauth/token, client credentials), checks every request
    (bearer token, JSON, schema) and records it; GET /_kit/deliveries lists what arrived.
    """
    from webhook_kit.endpoint.settings import EndpointSettings, FaultSettings
    from webhook_kit.errors import ConfigError

    faults = {
        k: options.pop(k)
        for k in ("respond", "fail_rate", "fail_code", "delay", "retry_after", "seed")
    }
    options["scopes"] = tuple(options["scopes"])
    try:
        settings = EndpointSettings(faults=FaultSettings(**faults), **options)
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from exc
    with _errors_to_exit():
        _run_endpoint(settings, as_json)


def _run_endpoint(settings: Any, as_json: bool) -> None:
    from functools import partial

    from webhook_kit.endpoint.console import Console, route_stderr_logging
    from webhook_kit.endpoint.service import Endpoint
    from webhook_kit.serving.loop import run_until_signal
    from webhook_kit.serving.servers import is_loopback

    endpoint = Endpoint(settings)
    info = endpoint.info
    if not is_loopback(endpoint.sock):
        click.echo(
            f"warning: listening on {settings.host}, which other machines can reach; /_kit/* "
            "(deliveries, inspector, rotate-key) has no authentication. "
            "Use --host 127.0.0.1 unless that is what you want.",
            err=True,
        )
    console = Console()
    errors = Console(sys.stderr)
    restore_logging = route_stderr_logging(errors)

    def ready() -> None:
        if as_json:
            click.echo(json.dumps(info.as_json()))
            return
        click.echo(f"webhook-kit {__version__} endpoint ready ({settings.server}, TLS)")
        for label, value in info.as_json().items():
            click.echo(f"  {label:<14}{value}")
        click.echo(f"  {'deliveries':<14}{endpoint.urls.deliveries}")
        if endpoint.recorder.skipped_lines:
            click.echo(
                f"  (skipped {endpoint.recorder.skipped_lines} unreadable lines in the record file)"
            )
        click.echo("Press Ctrl+C to stop.")
        # Through a queue and a thread: output nobody reads must not stop the server.
        endpoint.recorder.subscribe(partial(_print_request, write=console.line))

    try:
        run_until_signal(endpoint.run, ready)
    finally:
        console.close()
        if console.dropped:
            errors.line(f"({console.dropped} request lines were dropped: output not read)")
        errors.close()
        restore_logging()


def _print_request(record: dict[str, Any], write: Callable[[str], None] = click.echo) -> None:
    from webhook_kit.display import visible

    # status, event_id and reason come from whoever reached the port, token or not.
    mark = "dup " if record.get("duplicate") else ""
    write(
        f"{visible(record.get('received_at', '-'))} {visible(record.get('http_status', '-'))} "
        f"{visible(record.get('status', '-')):<19} {mark}{visible(record.get('event_id', '-'))} "
        f"{visible(record.get('reason', ''))}"
    )


def _sender_options(
    *,
    token_url_check: Callable[..., str | None],
    ca_help: str,
    token_url_required: bool = True,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The OAuth client options that emit and certify share (the secret may come from
    WEBHOOK_KIT_<COMMAND>_CLIENT_SECRET instead of the command line)."""
    return _options(
        click.option(
            "--token-url",
            required=token_url_required,
            callback=token_url_check,
            help="The endpoint's OAuth token URL.",
        ),
        click.option("--client-id", required=True, callback=_credential),
        click.option(
            "--client-secret",
            required=True,
            callback=_credential,
            help="Or WEBHOOK_KIT_<COMMAND>_CLIENT_SECRET.",
        ),
        click.option("--scope"),
        click.option("--audience"),
        click.option(
            "--auth-method",
            type=click.Choice(["client_secret_basic", "client_secret_post"]),
            default="client_secret_basic",
            show_default=True,
            callback=_credential,
        ),
        click.option(
            "--ca",
            "ca_file",
            type=click.Path(exists=True, dir_okay=False, path_type=Path),
            help=ca_help,
        ),
    )


def _absolute_url(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """An absolute http(s) URL; plain http is allowed here so that certify can fail it."""
    return _checked_url(value, ("https", "http"))


def _checked_url(value: str | None, schemes: tuple[str, ...]) -> str | None:
    from webhook_kit.delivery.guard import url_problem
    from webhook_kit.display import visible

    if value is None:
        return None
    problem = url_problem(value, schemes=schemes)
    if problem is not None:
        raise click.BadParameter(f"{problem}, got '{visible(value)}'")
    return value


def _credential(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """Client id and secret: text a token request can carry. Any other character is fine: both
    methods form-encode it (RFC 6749 section 2.3.1)."""
    if value is None:
        return None
    if any(ord(c) < 0x20 or ord(c) == 0x7F or 0xD800 <= ord(c) <= 0xDFFF for c in value):
        raise click.BadParameter("must not contain control characters or undecodable bytes")
    return value


def _duration(ctx: click.Context, param: click.Parameter, value: str | None) -> float | None:
    """``90``, ``90s``, ``10m`` or ``1h`` as seconds."""
    if value is None:
        return None
    import re

    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*", value)
    if match is None:
        raise click.BadParameter(f"expected a duration like 90s, 10m or 1h, got {value!r}")
    seconds = float(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[match.group(2)]
    if not 0 < seconds <= 7 * 86400:
        raise click.BadParameter("a soak lasts between 1 second and 7 days")
    return seconds


@main.command()
@click.argument("url", callback=_absolute_url)
@_sender_options(
    token_url_check=_absolute_url,
    ca_help="Also trust this CA (a pass is then development-only).",
    token_url_required=False,
)
@click.option(
    "--issuer",
    callback=_absolute_url,
    help="Find the token URL (and JWKS) from this issuer's RFC 8414 or OpenID metadata.",
)
@click.option(
    "--jwks-url",
    callback=_absolute_url,
    help="The receiver's JWKS, for the algorithm-confusion forgeries (default: discovered "
    "from the token's iss).",
)
@_timeout_option("Seconds a 2xx may take.")
@click.option(
    "--probes",
    type=click.IntRange(1, 1000),
    default=10,
    show_default=True,
    help="Availability probes.",
)
@click.option("--strict", is_flag=True, help="Warnings fail too (a hardening gate).")
@click.option(
    "--expiry-wait",
    type=click.FloatRange(0, 86400),
    default=0,
    show_default=True,
    help="Replay the real token after it expires, when that is at most this many seconds "
    "away (0: off).",
)
@click.option(
    "--expiry-leeway",
    type=click.FloatRange(0, 3600),
    default=60,
    show_default=True,
    help="Seconds past exp before the replay (clock-skew tolerance is not a flaw).",
)
@click.option(
    "--soak",
    "soak_for",
    callback=_duration,
    help="Send notifications at a steady rate for this long (e.g. 90s, 10m, 1h) and report "
    "uptime and latency.",
)
@click.option(
    "--rate",
    type=click.FloatRange(min=0.01, max=100),
    default=1.0,
    show_default=True,
    help="Notifications per second during --soak.",
)
@click.option(
    "--deadline",
    type=click.FloatRange(min=1, max=86400),
    default=300,
    show_default=True,
    help="Seconds the whole run may take (plus --soak and --expiry-wait).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json", "junit"]),
    default="text",
    show_default=True,
)
@click.option(
    "--output",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Write the report here (the verdict line still goes to stdout).",
)
def certify(
    url: str,
    token_url: str | None,
    client_id: str,
    client_secret: str,
    scope: str | None,
    audience: str | None,
    auth_method: Literal["client_secret_basic", "client_secret_post"],
    ca_file: Path | None,
    issuer: str | None,
    jwks_url: str | None,
    timeout: float,
    probes: int,
    strict: bool,
    expiry_wait: float,
    expiry_leeway: float,
    soak_for: float | None,
    rate: float,
    deadline: float,
    fmt: str,
    output: Path | None,
) -> None:
    """Certify, check by check, that the endpoint at URL meets the requirements.

    \b
    Requirements: url, https, oauth, json, delivery, availability, robustness.
    fail = a documented requirement is violated; warn = hardening advice that
    lets nobody in (--strict makes it fail); skip = could not run.
    Every check is described in docs/certify.md.
    Exit 0 = pass (warnings allowed), 1 = fail, 2 = usage error.
    """
    from webhook_kit.certify import report as reports
    from webhook_kit.certify.model import CertifySettings, SoakSettings
    from webhook_kit.certify.pipeline import certify as run_certify
    from webhook_kit.oauth.client import OAuthSettings
    from webhook_kit.serving.loop import run

    if token_url is None and issuer is None:
        raise click.UsageError("give --token-url, or --issuer to discover it")
    with _errors_to_exit():
        settings = CertifySettings(
            url,
            OAuthSettings(
                token_url or "",
                client_id,
                client_secret,
                scope=scope,
                audience=audience,
                auth_method=auth_method,
                timeout=timeout,
            ),
            issuer=issuer,
            jwks_url=jwks_url,
            ca_file=ca_file,
            probes=probes,
            strict=strict,
            expiry_wait=expiry_wait,
            expiry_leeway=expiry_leeway,
            soak=SoakSettings(soak_for, rate) if soak_for is not None else None,
            deadline=deadline,
        )
    show = fmt == "text" and output is None
    with _errors_to_exit(), _progress(enabled=show, soak=settings.soak) as (progress, soaked):
        result = run(run_certify(settings, progress, soaked))
    if fmt == "json":
        text = reports.to_json(result)
    elif fmt == "junit":
        text = reports.to_junit(result)
    else:
        text = reports.to_text(result, color=output is None and sys.stdout.isatty())
    if output is not None:
        try:
            output.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")
        except OSError as exc:
            raise click.ClickException(f"cannot write {output}: {exc.strerror}") from exc
        click.echo(reports.verdict_line(result))
    else:
        click.echo(text, nl=not text.endswith("\n"))
    sys.exit(0 if result.verdict == "pass" else 1)


@contextmanager
def _progress(*, enabled: bool, soak: Any = None) -> Iterator[tuple[Any, Any]]:
    """Transient progress bars on stderr while the checks (and a soak) run."""
    if not enabled:
        yield None, None
        return
    from rich.console import Console
    from rich.progress import Progress

    from webhook_kit.certify.pipeline import CHECK_IDS

    console = Console(stderr=True)
    with Progress(console=console, transient=True, disable=not console.is_terminal) as bar:
        task = bar.add_task("certifying", total=len(CHECK_IDS))
        soak_task = bar.add_task("soak", total=None, visible=False) if soak else None

        def advance(check: Any) -> None:
            bar.update(task, advance=1, description=f"{check.id} {check.verdict}")

        def soaked(done: int, planned: int) -> None:
            if soak_task is not None:
                bar.update(soak_task, completed=done, total=planned, visible=True)

        yield advance, soaked


@main.command()
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("certs"),
    show_default=True,
)
@click.option(
    "--renew", is_flag=True, help="Make new certificates even if the current ones are usable."
)
@click.option("--json", "as_json", is_flag=True, help="Print the facts as JSON.")
def certs(directory: Path, renew: bool, as_json: bool) -> None:
    """Make (or reuse) the development CA and server certificate, and show them."""
    from webhook_kit import tls

    with _errors_to_exit():
        files, made = tls.ensure_dev_certs(directory, force=renew, option="--dir")
        leaf = tls.read_cert_info(files.cert_file)
    facts = {
        "ca_file": str(files.ca_file),
        "cert_file": str(files.cert_file),
        "key_file": str(files.key_file),
        "identities": list(leaf.identities),
        "not_after": leaf.not_after.isoformat(),
        "days_left": int(leaf.days_left),
        "renewed": made,
    }
    if as_json:
        click.echo(json.dumps(facts))
        return
    click.echo("made new certificates" if made else "reusing existing certificates")
    for key, value in facts.items():
        if key != "renewed":
            click.echo(f"  {key:<11}{', '.join(value) if isinstance(value, list) else value}")
    click.echo(f"Trust {files.ca_file} in your sender (for example --ca {files.ca_file}).")


@main.command()
@_server_options
@click.option(
    "--db",
    default="webhook-kit-provider.db",
    show_default=True,
    help="SQLite file (':memory:' for none).",
)
@click.option(
    "--apikey", help="The API key clients must send in the apikey header (default: generated)."
)
@click.option(
    "--ca",
    "ca_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Also trust this CA when delivering (e.g. certs/ca.pem).",
)
@click.option(
    "--concurrency",
    type=click.IntRange(1, 1024),
    default=16,
    show_default=True,
    help="Deliveries in flight at once.",
)
@_timeout_option("Seconds per delivery attempt.")
@_PUBLIC_ONLY
def provider(as_json: bool, **options: Any) -> None:
    """Run the provider API (/validas/v1) and deliver its events in the background.

    Settings, test, event queries and the validation lifecycle, as the service offers them;
    every status change is stored in the SQLite file, then delivered through the dispatcher
    (at-least-once: a restart on the same file delivers what was left). One provider at a time
    may use a database file. Webhook and token URLs may be on public or loopback addresses;
    see --allow-private and --public-only.
    """
    from webhook_kit.errors import ConfigError
    from webhook_kit.provider.service import Provider, ProviderSettings
    from webhook_kit.serving.loop import run_until_signal

    try:
        settings = ProviderSettings(**options)
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from exc
    with _errors_to_exit():
        instance = Provider(settings)
        info = instance.info

        def ready() -> None:
            if as_json:
                click.echo(json.dumps(info.as_json()))
                return
            click.echo(f"webhook-kit {__version__} provider ready ({settings.server}, TLS)")
            for label, value in info.as_json().items():
                click.echo(f"  {label:<9}{value}")
            click.echo(f"  {'openapi':<9}{info.base_url}/openapi.json")
            click.echo("Press Ctrl+C to stop.")

        run_until_signal(instance.run, ready)


def _https_url(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    return _checked_url(value, ("https",))


#: The nine statuses, and v2.32's alias only when named explicitly.
EMIT_STATUSES = [*STATUSES, *LEGACY_ALIASES]


@main.command()
@click.argument("url", callback=_https_url)
@_sender_options(token_url_check=_https_url, ca_help="Also trust this CA (never 'skip verify').")
@click.option(
    "--status",
    "statuses",
    multiple=True,
    type=click.Choice(EMIT_STATUSES),
    help="A status to send (repeatable, in order; v2.32's documen2-uploaded only if named).",
)
@click.option(
    "--all",
    "all_statuses",
    is_flag=True,
    help="Send all nine statuses in lifecycle order (the default).",
)
@_timeout_option("Seconds per delivery attempt and per token request.")
@click.option(
    "--retries",
    type=click.IntRange(0, 20),
    default=0,
    show_default=True,
    help="Retries per notification (1 s, 2 s, 4 s, ...).",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON line per outcome.")
@_PUBLIC_ONLY
def emit(
    url: str,
    token_url: str,
    client_id: str,
    client_secret: str,
    scope: str | None,
    audience: str | None,
    auth_method: Literal["client_secret_basic", "client_secret_post"],
    ca_file: Path | None,
    statuses: tuple[str, ...],
    all_statuses: bool,
    timeout: float,
    retries: int,
    as_json: bool,
    public_only: bool,
    allow_private: bool,
) -> None:
    """Send notifications for one validation to URL through the real dispatcher.

    Exits 0 when every notification got a 2xx, 1 otherwise. URL and the token URL may be on a
    public or a loopback address; see --allow-private and --public-only.
    """
    from webhook_kit.delivery.emit import EmitOutcome
    from webhook_kit.delivery.emit import emit as run_emit
    from webhook_kit.delivery.guard import policy_of
    from webhook_kit.display import visible
    from webhook_kit.oauth.client import OAuthSettings
    from webhook_kit.serving.loop import run

    if statuses and all_statuses:
        raise click.UsageError("use --status or --all, not both")
    if public_only and allow_private:
        raise click.UsageError("use --public-only or --allow-private, not both")
    chosen = statuses or STATUSES
    oauth = OAuthSettings(
        token_url,
        client_id,
        client_secret,
        scope=scope,
        audience=audience,
        auth_method=auth_method,
        timeout=timeout,
    )

    def show(outcome: EmitOutcome) -> None:
        if as_json:
            click.echo(json.dumps(outcome.__dict__))
            return
        mark = "sent  " if outcome.state == "sent" else "FAILED"
        # The reason may quote the receiver (a redirect's Location): shown, never acted on.
        click.echo(
            f"{mark} {outcome.status:<19} {outcome.attempts} attempt(s) "
            f"{outcome.duration_ms:8.1f} ms  {visible(outcome.reason)}"
        )

    with _errors_to_exit():
        outcomes = run(
            run_emit(
                url,
                oauth,
                chosen,
                ca_file=ca_file,
                timeout=timeout,
                retries=retries,
                echo=show,
                address_policy=policy_of(public_only=public_only, allow_private=allow_private),
            )
        )
    sent = sum(1 for o in outcomes if o.state == "sent")
    if not as_json:
        click.echo(f"{sent}/{len(outcomes)} sent")
    sys.exit(0 if sent == len(outcomes) else 1)


@main.command()
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write the schemas into this directory.",
)
def schemas(out: Path | None) -> None:
    """List the shipped JSON Schemas (2020-12), or write them with --out."""
    from webhook_kit.contract import schema as schema_module

    if out is not None:
        try:
            written = schema_module.write_all(out)
        except OSError as exc:
            raise click.ClickException(f"cannot write schemas to {out}: {exc.strerror}") from exc
        for path in written:
            click.echo(str(path))
        return
    for name in schema_module.SCHEMA_NAMES:
        document = schema_module.load(name)
        click.echo(f"{name:<13}{document['$id']}  {document.get('title', '')}")


@main.command()
@click.option(
    "--server", type=click.Choice(["uvicorn", "hypercorn"]), default="uvicorn", show_default=True
)
@click.option(
    "--certs-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("certs"),
    show_default=True,
)
def demo(server: Literal["uvicorn", "hypercorn"], certs_dir: Path) -> None:
    """The main job: start an endpoint, send it every status through the dispatcher, certify it.

    Needs nothing but the install; exits 0 when all nine notifications arrived and certify passed.
    """
    from webhook_kit.demo import run_demo

    with _errors_to_exit():
        ok = run_demo(server=server, certs_dir=certs_dir, echo=click.echo)
    sys.exit(0 if ok else 1)
