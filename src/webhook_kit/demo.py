"""``webhook-kit demo``: the whole loop on one machine, needing nothing but the install.

An endpoint (``serve``) starts on a free port; every status is sent to it through the real
dispatcher (TLS verified against the kit's CA, a real OAuth token); then ``certify`` checks it and
prints its report.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from webhook_kit.certify import report as reports
from webhook_kit.certify.model import CertifySettings
from webhook_kit.certify.pipeline import certify
from webhook_kit.contract.statuses import STATUSES
from webhook_kit.delivery.emit import EmitOutcome, emit
from webhook_kit.endpoint.service import running_endpoint
from webhook_kit.endpoint.settings import EndpointSettings, ServerName
from webhook_kit.oauth.client import OAuthSettings
from webhook_kit.serving.loop import run


def run_demo(*, server: ServerName, certs_dir: Path, echo: Callable[[str], None]) -> bool:
    settings = EndpointSettings(port=0, server=server, certs_dir=certs_dir)
    with running_endpoint(settings) as endpoint:
        info = endpoint.info
        assert info.ca_file is not None
        ca_file = Path(info.ca_file)
        echo(f"1. endpoint ready: {info.url} ({server}, TLS, OAuth token URL {info.token_url})")
        echo("2. sending every status through the dispatcher:")

        def show(outcome: EmitOutcome) -> None:
            echo(
                f"   {outcome.status:<19} {outcome.state:<6} {outcome.reason:<8} "
                f"{outcome.duration_ms:7.1f} ms"
            )

        oauth = OAuthSettings(info.token_url, info.client_id, info.client_secret)
        outcomes = run(emit(info.url, oauth, STATUSES, ca_file=ca_file, echo=show))
        received = endpoint.recorder.query(accepted=True)
        sent = sum(1 for o in outcomes if o.state == "sent")
        echo(f"   {sent}/{len(outcomes)} delivered, {len(received)} accepted by the endpoint")
        echo("3. certifying the endpoint:")
        report = run(certify(CertifySettings(info.url, oauth, ca_file=ca_file)))
    echo(reports.to_text(report).rstrip("\n"))
    return sent == len(STATUSES) and len(received) >= len(STATUSES) and report.verdict == "pass"
