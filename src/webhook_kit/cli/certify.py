"""``certify``: check, requirement by requirement, that a receiver meets the contract."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from webhook_kit.cli.options import (
    HTTP_OR_HTTPS_URL,
    Sender,
    check_sender,
    errors_to_exit,
    sender_options,
    settings_errors_are_usage,
    timeout_option,
)

if TYPE_CHECKING:
    from webhook_kit.certify.model import CertifySettings, Report, SoakSettings


def _duration(ctx: click.Context, param: click.Parameter, value: str | None) -> float | None:
    """``90``, ``90s``, ``10m`` or ``1h`` as seconds (the plugin parses the same way)."""
    from webhook_kit.parsing import duration

    if value is None:
        return None
    seconds = duration(value)
    if seconds is None:
        raise click.BadParameter(f"expected a duration like 90s, 10m or 1h, got {value!r}")
    if not 0 < seconds <= 7 * 86400:
        raise click.BadParameter("a soak lasts between 1 second and 7 days")
    return seconds


@click.command()
@click.argument("url", type=HTTP_OR_HTTPS_URL)
@sender_options(
    url_type=HTTP_OR_HTTPS_URL,
    ca_help="Also trust this CA (a pass is then development-only).",
    token_url_required=False,
)
@click.option(
    "--jwks-url",
    type=HTTP_OR_HTTPS_URL,
    help="The receiver's JWKS, for the algorithm-confusion forgeries (default: discovered "
    "from the token's iss).",
)
@click.option(
    "--other-client-cert",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A second client certificate the receiver's TLS trusts, for oauth.mtls_other_cert "
    "(default: a self-signed one certify makes).",
)
@click.option(
    "--other-client-key",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The private key of --other-client-cert.",
)
@timeout_option("Seconds a 2xx may take.")
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
def certify(sender: Sender, fmt: str, output: Path | None, **options: Any) -> None:
    """Certify, check by check, that the endpoint at URL meets the requirements.

    \b
    Requirements: url, https, oauth, json, delivery, availability, robustness.
    fail = a documented requirement is violated; warn = hardening advice that
    lets nobody in (--strict makes it fail); skip = could not run.
    Every check is described in docs/certify.md.
    Exit 0 = pass (warnings allowed), 1 = fail, 2 = usage error.
    """
    from webhook_kit.certify.pipeline import certify as run_certify
    from webhook_kit.serving.loop import run

    with settings_errors_are_usage():
        settings = _settings(sender, **options)
    check_sender(settings.oauth, sender.ca_file)
    show = fmt == "text" and output is None
    with errors_to_exit(), _progress(enabled=show, soak=settings.soak) as (progress, soaked):
        result = run(run_certify(settings, progress, soaked))
    _report(result, fmt, output)
    sys.exit(0 if result.verdict == "pass" else 1)


def _settings(
    sender: Sender, *, timeout: float, soak_for: float | None, rate: float, **options: Any
) -> CertifySettings:
    from webhook_kit.certify.model import CertifySettings, SoakSettings

    soak: SoakSettings | None = SoakSettings(soak_for, rate) if soak_for is not None else None
    return CertifySettings(
        oauth=sender.oauth(timeout),
        issuer=sender.issuer,
        ca_file=sender.ca_file,
        soak=soak,
        **options,
    )


def _report(result: Report, fmt: str, output: Path | None) -> None:
    """The report on stdout, or in ``output`` with only the verdict line on stdout."""
    from webhook_kit.certify import report as reports

    if fmt == "json":
        text = reports.to_json(result)
    elif fmt == "junit":
        text = reports.to_junit(result)
    else:
        text = reports.to_text(result, color=output is None and sys.stdout.isatty())
    if output is None:
        click.echo(text, nl=not text.endswith("\n"))
        return
    try:
        output.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")
    except OSError as exc:
        raise click.ClickException(f"cannot write {output}: {exc.strerror}") from exc
    click.echo(reports.verdict_line(result))


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
