"""``provider``: the provider API, delivering its events in the background."""

from __future__ import annotations

from typing import Any

import click

from webhook_kit.cli.options import (
    address_policy,
    address_policy_options,
    announce_ready,
    ca_option,
    errors_to_exit,
    server_options,
    settings_errors_are_usage,
    timeout_option,
)


@click.command()
@server_options
@click.option(
    "--db",
    default="webhook-kit-provider.db",
    show_default=True,
    help="SQLite file (':memory:' for none).",
)
@click.option(
    "--apikey", help="The API key clients must send in the apikey header (default: generated)."
)
@ca_option("Also trust this CA when delivering (e.g. certs/ca.pem).")
@click.option(
    "--concurrency",
    type=click.IntRange(1, 1024),
    default=16,
    show_default=True,
    help="Deliveries in flight at once.",
)
@timeout_option("Seconds per delivery attempt.")
@address_policy_options
def provider(as_json: bool, **options: Any) -> None:
    """Run the provider API (/validas/v1) and deliver its events in the background.

    Settings, test, event queries and the validation lifecycle, as the service offers them;
    every status change is stored in the SQLite file, then delivered through the dispatcher
    (at-least-once: a restart on the same file delivers what was left). One provider at a time
    may use a database file. Webhook and token URLs may be on public or loopback addresses;
    see --allow-private and --public-only.
    """
    from webhook_kit.delivery.dispatcher import DispatcherSettings
    from webhook_kit.provider.service import Provider, ProviderSettings
    from webhook_kit.serving.loop import run_until_signal

    policy = address_policy(
        public_only=options.pop("public_only"), allow_private=options.pop("allow_private")
    )
    with settings_errors_are_usage():
        delivery = DispatcherSettings(
            concurrency=options.pop("concurrency"),
            timeout=options.pop("timeout"),
            ca_file=options.pop("ca_file"),
            address_policy=policy,
        )
        settings = ProviderSettings(**options, delivery=delivery)
    with errors_to_exit():
        instance = Provider(settings)
        info = instance.info

        def ready() -> None:
            announce_ready(
                "provider",
                settings.server,
                info.as_json(),
                as_json=as_json,
                width=9,
                extra={"openapi": f"{info.base_url}/openapi.json"},
            )

        run_until_signal(instance.run, ready)
