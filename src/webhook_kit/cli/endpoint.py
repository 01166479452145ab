"""``serve``: the kit's HTTPS, OAuth-protected endpoint; ``certs``: the certificates it uses."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from webhook_kit.cli.options import (
    FiniteFloat,
    announce_ready,
    certs_dir_option,
    echo_json,
    errors_to_exit,
    json_option,
    option_group,
    server_options,
    settings_errors_are_usage,
)
from webhook_kit.oauth.client_auth import DEFAULT_METHOD, METHODS, SECRET_METHODS

if TYPE_CHECKING:
    from webhook_kit.endpoint.service import Endpoint
    from webhook_kit.endpoint.settings import EndpointSettings, FaultRule
    from webhook_kit.oauth.credentials import ClientRegistration

#: The options that become the endpoint's ``FaultSettings``.
FAULT_OPTIONS = ("respond", "fail_rate", "fail_code", "delay", "retry_after", "seed")
#: The options that register the sender client (a ``ClientRegistration``), by field.
CLIENT_OPTIONS = {
    "client_auth_method": "method",
    "client_public_key": "public_key_file",
    "client_jwks_url": "jwks_url",
    "client_jwks_ca": "jwks_ca_file",
    "client_ca": "client_ca_file",
    "client_subject_dn": "subject_dn",
    "client_san": "san",
    "client_cert": "client_cert_file",
}
#: A registration's field as the flag that sets it, for usage errors.
FIELD_FLAGS = {
    "client_id": "--client-id",
    "secret": "--client-secret",
    "method": "--client-auth-method",
    "client_auth_method": "--client-auth-method",
    **{field: "--" + option.replace("_", "-") for option, field in CLIENT_OPTIONS.items()},
}


def _parse_rules(
    ctx: click.Context, param: click.Parameter, values: tuple[str, ...]
) -> tuple[FaultRule, ...]:
    from webhook_kit.endpoint.settings import FaultRule
    from webhook_kit.errors import ConfigError

    try:
        return tuple(FaultRule.parse(v) for v in values)
    except ConfigError as exc:
        raise click.BadParameter(str(exc)) from exc


client_options = option_group(
    click.option(
        "--client-auth-method",
        type=click.Choice(METHODS),
        help=f"How the sender authenticates (default {DEFAULT_METHOD}).",
    ),
    click.option(
        "--client-public-key",
        type=click.Path(dir_okay=False, path_type=Path),
        help="private_key_jwt: the sender's public key, certificate or JWKS file.",
    ),
    click.option(
        "--client-jwks-url",
        metavar="URL",
        help="private_key_jwt: the HTTPS URL where the sender publishes its JWKS.",
    ),
    click.option(
        "--client-jwks-ca",
        type=click.Path(dir_okay=False, path_type=Path),
        help="An extra CA to trust when fetching --client-jwks-url.",
    ),
    click.option(
        "--client-ca",
        type=click.Path(dir_okay=False, path_type=Path),
        help="The CA of the sender's client certificates (tls_client_auth, --token-binding mtls).",
    ),
    click.option(
        "--client-subject-dn",
        metavar="DN",
        help="tls_client_auth: the certificate's subject, e.g. 'CN=sender,O=Bank'.",
    ),
    click.option(
        "--client-san",
        metavar="NAME",
        help="tls_client_auth: a DNS name, URI, IP or e-mail the certificate's SAN must hold.",
    ),
    click.option(
        "--client-cert",
        type=click.Path(dir_okay=False, path_type=Path),
        help="self_signed_tls_client_auth: the sender's self-signed certificate.",
    ),
    click.option(
        "--token-binding",
        # Spelled here, not imported from the verifier (joserfc) to keep start-up cheap;
        # a test holds it equal to verifier.BINDINGS.
        type=click.Choice(["none", "mtls", "dpop"]),
        default="none",
        show_default=True,
        help="What /webhook requires: a certificate-bound (mtls) or DPoP-bound token.",
    ),
    click.option(
        "--dpop-nonce", is_flag=True, help="Require server nonces in DPoP proofs (RFC 9449 §8)."
    ),
)


@click.command()
@server_options
@click.option("--path", default="/webhook", show_default=True, help="Path of the webhook route.")
@click.option("--client-id", help="OAuth client id the endpoint accepts (default: generated).")
@click.option("--client-secret", help="OAuth client secret (default: generated).")
@client_options
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
    from webhook_kit.oauth.issuer import TokenSettings

    faults = {name: options.pop(name) for name in FAULT_OPTIONS}
    client = {field: options.pop(name) for name, field in CLIENT_OPTIONS.items()}
    with settings_errors_are_usage():
        tokens = TokenSettings(
            audience=options.pop("audience"),
            scopes=tuple(options.pop("scopes")),
            ttl=options.pop("token_ttl"),
        )
        registration = _registration(client, options)
        settings = EndpointSettings(
            faults=FaultSettings(**faults), tokens=tokens, client=registration, **options
        )
    with errors_to_exit():
        _run_endpoint(settings, as_json)


def _registration(fields: dict[str, Any], options: dict[str, Any]) -> ClientRegistration | None:
    """The sender's registration from the ``--client-*`` flags; ``None`` leaves the plain
    ``--client-id``/``--client-secret`` pair (or a generated one) to the settings. Errors name
    the flag, and every file is read and checked now (exit 2 rather than a failed start)."""
    from webhook_kit.errors import ConfigError
    from webhook_kit.oauth.credentials import ClientCredentials, ClientRegistration

    given = {k: v for k, v in fields.items() if v is not None}
    if not given or given == {"method": DEFAULT_METHOD}:
        return None
    method = given.setdefault("method", DEFAULT_METHOD)
    client_id = options.pop("client_id") or ClientCredentials.generate().client_id
    secret = options.pop("client_secret")
    if secret is None and method in SECRET_METHODS:
        secret = ClientCredentials.generate().client_secret
    try:
        registration = ClientRegistration(client_id, secret=secret, **given)
        registration.check_files()
    except ConfigError as exc:
        field, sep, rest = str(exc).partition(":")
        name, _, path = field.partition(" ")
        if sep and name in FIELD_FLAGS:
            flag = FIELD_FLAGS[name]
            raise type(exc)(f"{flag}{' ' + path if path else ''}:{rest}") from exc
        raise
    return registration


def _run_endpoint(settings: EndpointSettings, as_json: bool) -> None:
    from functools import partial

    from webhook_kit.endpoint.console import Console, route_stderr_logging
    from webhook_kit.endpoint.service import Endpoint
    from webhook_kit.serving.loop import run_until_signal
    from webhook_kit.serving.servers import is_loopback

    endpoint = Endpoint(settings)
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
        _announce(endpoint, as_json)
        # Through a queue and a thread: output nobody reads must not stop the server.
        if not as_json:
            endpoint.recorder.subscribe(partial(print_request, write=console.line))

    try:
        run_until_signal(endpoint.run, ready)
    finally:
        console.close()
        if console.dropped:
            errors.line(f"({console.dropped} request lines were dropped: output not read)")
        errors.close()
        restore_logging()


def _announce(endpoint: Endpoint, as_json: bool) -> None:
    skipped = endpoint.recorder.skipped_lines
    facts = endpoint.info.as_json()
    extra = {"deliveries": endpoint.urls.deliveries}
    if not as_json:
        # The banner shows what a person registers the sender with; a key or certificate
        # client has no secret to show.
        facts = {k: v for k, v in facts.items() if v not in (None, "")}
        extra["client_auth"] = endpoint.credentials.method
        extra["metadata"] = endpoint.urls.metadata
        if endpoint.settings.token_binding != "none":
            extra["token_binding"] = endpoint.settings.token_binding
    announce_ready(
        "endpoint",
        endpoint.settings.server,
        facts,
        as_json=as_json,
        width=14,
        extra=extra,
        notes=(f"  (skipped {skipped} unreadable lines in the record file)",) if skipped else (),
    )


def print_request(record: dict[str, Any], write: Callable[[str], None] = click.echo) -> None:
    """One line per request the endpoint recorded."""
    from webhook_kit.display import visible

    # status, event_id and reason come from whoever reached the port, token or not.
    mark = "dup " if record.get("duplicate") else ""
    write(
        f"{visible(record.get('received_at', '-'))} {visible(record.get('http_status', '-'))} "
        f"{visible(record.get('status', '-')):<19} {mark}{visible(record.get('event_id', '-'))} "
        f"{visible(record.get('reason', ''))}"
    )


@click.command()
@certs_dir_option("--dir", "directory")
@click.option(
    "--renew", is_flag=True, help="Make new certificates even if the current ones are usable."
)
@json_option("Print the facts as JSON.")
def certs(directory: Path, renew: bool, as_json: bool) -> None:
    """Make (or reuse) the development CA and server certificate, and show them."""
    from webhook_kit import tls

    with errors_to_exit():
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
        echo_json(facts)
        return
    click.echo("made new certificates" if made else "reusing existing certificates")
    for key, value in facts.items():
        if key != "renewed":
            click.echo(f"  {key:<11}{', '.join(value) if isinstance(value, list) else value}")
    click.echo(f"Trust {files.ca_file} in your sender (for example --ca {files.ca_file}).")
