"""``schemas``: the shipped JSON Schemas; ``demo``: the whole kit end to end, on one machine."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Literal

import click

from webhook_kit.cli.options import certs_dir_option, errors_to_exit, server_name_option


@click.command()
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


@click.command()
@server_name_option()
@certs_dir_option()
def demo(server: Literal["uvicorn", "hypercorn"], certs_dir: Path) -> None:
    """The main job: start an endpoint, send it every status through the dispatcher, certify it.

    Needs nothing but the install; exits 0 when all nine notifications arrived and certify passed.
    """
    from webhook_kit.demo import run_demo

    with errors_to_exit():
        ok = run_demo(server=server, certs_dir=certs_dir, echo=click.echo)
    sys.exit(0 if ok else 1)
