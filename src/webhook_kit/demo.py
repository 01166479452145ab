"""``webhook-kit demo``: the whole loop on one machine, needing nothing but the install."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from webhook_kit import notifications
from webhook_kit.delivery.outcome import AttemptResult
from webhook_kit.delivery.transport import deliver, make_session
from webhook_kit.oauth.client import OAuthClient, OAuthSettings
from webhook_kit.sink.runner import SinkInfo, running_sink
from webhook_kit.sink.settings import ServerName, SinkSettings
from webhook_kit.tls import client_context


async def _emit_all(info: SinkInfo) -> list[tuple[str, AttemptResult]]:
    assert info.ca_file is not None
    settings = OAuthSettings(info.token_url, info.client_id, info.client_secret)
    results = []
    async with make_session(client_context(Path(info.ca_file))) as session:
        oauth = OAuthClient(settings, session)
        for body in notifications.lifecycle():
            result = await deliver(session, oauth, info.url, body, timeout=10)
            results.append((body["status"], result))
    return results


def run_demo(*, server: ServerName, certs_dir: Path, echo: Callable[[str], None]) -> bool:
    settings = SinkSettings(port=0, server=server, certs_dir=certs_dir)
    with running_sink(settings) as sink:
        info = sink.info
        echo(f"endpoint  {info.url}  ({server}, OAuth token URL {info.token_url})")
        results = asyncio.run(_emit_all(info))
        received = sink.recorder.query(accepted=True)
    for status, result in results:
        echo(f"  {status:<20} {result.outcome:<8} {result.reason:<6} {result.duration_ms:8.1f} ms")
    sent = sum(1 for _, r in results if r.ok)
    ok = sent == len(results) and len(received) == len(results)
    echo(
        f"{sent}/{len(results)} delivered, {len(received)} accepted by the endpoint: "
        + ("PASS" if ok else "FAIL")
    )
    return ok
