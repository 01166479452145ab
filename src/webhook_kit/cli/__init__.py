"""The ``webhook-kit`` command line: a thin click layer over the library.

One module per command or pair of commands (``endpoint``: serve and certs, ``provider``, ``emit``,
``certify``, ``tools``: schemas and demo), with what they share in ``options``. Only click is
imported at module level, so ``webhook-kit --help`` starts fast; each command imports what it
needs when it runs. Exit codes are decided here: 0 success, 1 failure or unusable files/ports,
2 usage, 3 crash (an unexpected exception, see ``_KitGroup``).
"""

from __future__ import annotations

import sys
from typing import Any

import click

from webhook_kit._version import __version__
from webhook_kit.cli.accounts import accounts
from webhook_kit.cli.certify import certify as certify_command
from webhook_kit.cli.emit import emit as emit_command
from webhook_kit.cli.endpoint import certs, serve
from webhook_kit.cli.provider import provider as provider_command
from webhook_kit.cli.provider import worker as worker_command
from webhook_kit.cli.tools import demo, schemas

EXIT_CRASH = 3


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


for command in (
    serve,
    certs,
    provider_command,
    worker_command,
    accounts,
    emit_command,
    certify_command,
    schemas,
    demo,
):
    main.add_command(command)
