"""``provider``: the provider API, delivering its events in the background; ``worker``: a
delivery process with no API, on a PostgreSQL database shared with a provider."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from webhook_kit.cli.options import (
    FiniteFloat,
    address_policy,
    address_policy_options,
    announce_ready,
    ca_option,
    echo_json,
    errors_to_exit,
    option_group,
    server_options,
    settings_errors_are_usage,
    timeout_option,
)

if TYPE_CHECKING:
    from webhook_kit.delivery.dispatcher import DispatcherSettings


DB_HELP = (
    "The database: an SQLite file path (or sqlite:///path; ':memory:' for none), or "
    "postgresql://user@host:port/dbname for several processes."
)

#: How events are delivered: the same flags on the provider and on a worker.
delivery_options = option_group(
    ca_option("Also trust this CA when delivering (e.g. certs/ca.pem)."),
    click.option(
        "--concurrency",
        type=click.IntRange(1, 1024),
        default=16,
        show_default=True,
        help="Deliveries in flight at once (per process).",
    ),
    timeout_option("Seconds per delivery attempt."),
    click.option(
        "--lease",
        type=FiniteFloat(min=1, max=86400),
        default=60.0,
        show_default=True,
        help="Seconds a claimed event is this process's alone; a process that dies loses its "
        "claims after this long (at least three --timeout).",
    ),
    address_policy_options,
)


def delivery_settings(options: dict[str, Any]) -> DispatcherSettings:
    """The :data:`delivery_options`, taken out of ``options``."""
    from webhook_kit.delivery.dispatcher import DispatcherSettings

    policy = address_policy(
        public_only=options.pop("public_only"), allow_private=options.pop("allow_private")
    )
    with settings_errors_are_usage():
        return DispatcherSettings(
            concurrency=options.pop("concurrency"),
            timeout=options.pop("timeout"),
            ca_file=options.pop("ca_file"),
            address_policy=policy,
            lease=options.pop("lease"),
        )


@click.command()
@server_options
@click.option("--db", default="webhook-kit-provider.db", show_default=True, help=DB_HELP)
@click.option(
    "--apikey", help="The API key clients must send in the apikey header (default: generated)."
)
@delivery_options
@click.option(
    "--metrics-token",
    help="The bearer token GET /metrics needs (default: generated, shown when ready).",
)
@click.option(
    "--workers",
    type=click.IntRange(0, 64),
    default=0,
    show_default=True,
    help="Deliver from this many separate worker processes (PostgreSQL only); 0 delivers here.",
)
def provider(as_json: bool, **options: Any) -> None:
    """Run the provider API (/validas/v1) and deliver its events in the background.

    Settings, test, event queries and the validation lifecycle, as the service offers them;
    every status change is stored in the database, then delivered through the dispatcher
    (at-least-once: a restart on the same database delivers what was left). SQLite needs
    nothing installed, and one process at a time may use a file; with PostgreSQL, --workers N
    (or `webhook-kit worker` on other machines) delivers from several processes, keeping each
    validation's events in order. Webhook and token URLs may be on public or loopback
    addresses; see --allow-private and --public-only.
    """
    from webhook_kit.provider.service import Provider, ProviderSettings
    from webhook_kit.serving.loop import run_until_signal

    delivery = delivery_settings(options)
    with settings_errors_are_usage():
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


@click.command()
@click.option(
    "--db", required=True, help="postgresql://user@host:port/dbname (shared with a provider)."
)
@delivery_options
@click.option(
    "--metrics-port",
    type=click.IntRange(0, 65535),
    help="Serve Prometheus metrics at http://127.0.0.1:PORT/metrics (0 picks a free port).",
)
@click.option("--json", "as_json", is_flag=True, help="Print readiness as one JSON line.")
# Set by `provider --workers` through the environment (WEBHOOK_KIT_WORKER_PARENT_PIPE), not by
# users: stdin is then the provider's pipe, and its end stops the worker.
@click.option("--parent-pipe", is_flag=True, hidden=True)
def worker(as_json: bool, **options: Any) -> None:
    """Deliver a provider's events from a PostgreSQL database, with no API.

    Run any number, here or on other machines: they need nothing but the database. Each claims
    due events (one validation's events go out in order, whichever worker sends them), delivers
    them with the webhook settings stored there, and records every attempt. A worker that dies
    loses its claims after a lease (60 s), and another takes them over. While the database
    cannot be reached, it waits and tries again.
    """
    from webhook_kit.provider.worker import WorkerSettings, run_worker
    from webhook_kit.serving.loop import run_until_signal

    delivery = delivery_settings(options)
    with settings_errors_are_usage():
        settings = WorkerSettings(
            db=options.pop("db"),
            delivery=delivery,
            metrics_port=options.pop("metrics_port"),
            parent_pipe=options.pop("parent_pipe"),
        )

    def ready(metrics_url: str | None) -> None:
        import os

        from webhook_kit.storage.url import DatabaseUrl

        facts: dict[str, Any] = {
            "worker": os.getpid(),
            "db": DatabaseUrl.parse(settings.db).display,
        }
        if metrics_url is not None:
            facts["metrics_url"] = metrics_url
        if as_json:
            echo_json(facts)
        else:
            click.echo(f"webhook-kit worker {facts['worker']} ready: {facts['db']}")
            if metrics_url is not None:
                click.echo(f"metrics: {metrics_url}")
            click.echo("Press Ctrl+C to stop.")

    with errors_to_exit():
        run_until_signal(lambda _, shutdown: run_worker(settings, ready, shutdown), lambda: None)
