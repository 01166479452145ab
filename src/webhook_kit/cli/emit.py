"""``emit``: send one validation's notifications through the real dispatcher."""

from __future__ import annotations

import sys
from functools import partial
from typing import TYPE_CHECKING

import click

from webhook_kit.cli.options import (
    HTTPS_URL,
    Sender,
    address_policy,
    address_policy_options,
    check_sender,
    echo_json,
    errors_to_exit,
    json_option,
    sender_options,
    settings_errors_are_usage,
    timeout_option,
)
from webhook_kit.contract.statuses import LEGACY_ALIASES, STATUSES

if TYPE_CHECKING:
    from webhook_kit.delivery.emit import EmitOutcome

#: The nine statuses, and v2.32's alias only when named explicitly.
EMIT_STATUSES = [*STATUSES, *LEGACY_ALIASES]


@click.command()
@click.argument("url", type=HTTPS_URL)
@sender_options(
    url_type=HTTPS_URL,
    ca_help="Also trust this CA (never 'skip verify').",
    token_url_required=False,
)
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
@timeout_option("Seconds per delivery attempt and per token request.")
@click.option(
    "--retries",
    type=click.IntRange(0, 20),
    default=0,
    show_default=True,
    help="Retries per notification (1 s, 2 s, 4 s, ...).",
)
@click.option(
    "--db",
    default=":memory:",
    show_default=True,
    help="Keep the events and their attempts here: an SQLite file, or "
    "postgresql://user@host:port/dbname?schema=NAME. Give emit a database or schema of its own: "
    "a provider's workers deliver every event in theirs.",
)
@json_option("One JSON line per outcome.")
@address_policy_options
def emit(
    url: str,
    sender: Sender,
    statuses: tuple[str, ...],
    all_statuses: bool,
    timeout: float,
    retries: int,
    db: str,
    as_json: bool,
    public_only: bool,
    allow_private: bool,
) -> None:
    """Send notifications for one validation to URL through the real dispatcher.

    Exits 0 when every notification got a 2xx, 1 otherwise. URL and the token URL may be on a
    public or a loopback address; see --allow-private and --public-only.

    \b
    Client authentication (--auth-method), each with its flags:
      client_secret_basic, client_secret_post   --client-secret
      private_key_jwt                           --private-key [--key-id --assertion-alg
                                                --assertion-audience]
      tls_client_auth,
      self_signed_tls_client_auth               --client-cert --client-key
    Any method may add --client-cert/--client-key (certificate-bound tokens) or --dpop
    (DPoP-bound tokens). A method the token endpoint's metadata does not list is a usage error.
    """
    from webhook_kit.delivery.emit import emit as run_emit
    from webhook_kit.serving.loop import run
    from webhook_kit.storage.url import DatabaseUrl

    if statuses and all_statuses:
        raise click.UsageError("use --status or --all, not both")
    policy = address_policy(public_only=public_only, allow_private=allow_private)
    with settings_errors_are_usage():
        DatabaseUrl.parse(db)
        oauth = sender.oauth(timeout)
    check_sender(oauth, sender.ca_file, policy)

    with errors_to_exit():
        outcomes = run(
            run_emit(
                url,
                oauth,
                statuses or STATUSES,
                ca_file=sender.ca_file,
                timeout=timeout,
                retries=retries,
                db=db,
                echo=partial(_show, as_json=as_json),
                address_policy=policy,
            )
        )
    sent = sum(1 for o in outcomes if o.state == "sent")
    if not as_json:
        click.echo(f"{sent}/{len(outcomes)} sent")
    sys.exit(0 if sent == len(outcomes) else 1)


def _show(outcome: EmitOutcome, as_json: bool) -> None:
    if as_json:
        echo_json(outcome.__dict__)
        return
    from webhook_kit.display import visible

    mark = "sent  " if outcome.state == "sent" else "FAILED"
    # The reason may quote the receiver (a redirect's Location): shown, never acted on.
    click.echo(
        f"{mark} {outcome.status:<19} {outcome.attempts} attempt(s) "
        f"{outcome.duration_ms:8.1f} ms  {visible(outcome.reason)}"
    )
