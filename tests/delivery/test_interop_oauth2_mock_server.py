"""The dispatcher against an independent authorization server (npm oauth2-mock-server) and the
example receiver, which verifies that server's tokens against its JWKS."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from examples.receiver.app import create_app
from tests.delivery.test_dispatcher import drive
from tests.interop_node import oauth2_mock_server
from webhook_kit.contract import notifications
from webhook_kit.contract.statuses import STATUSES
from webhook_kit.delivery.dispatcher import Dispatcher, DispatcherSettings, Target
from webhook_kit.delivery.policy import RetryPolicy
from webhook_kit.oauth.client import OAuthSettings
from webhook_kit.storage.base import Storage
from webhook_kit.storage.rows import AttemptRow, EventFilter
from webhook_kit.testing import serve_app
from webhook_kit.tls import CertFiles

# Interop: an npm authorization server as a node process.
pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Delivered:
    counts: dict[str, int]
    #: The attempts of the first event.
    first: list[AttemptRow]
    fetches: int


def deliver_all(
    url: str, token_url: str, ca_file: Path | None, scope: str | None = None
) -> Delivered:
    settings = DispatcherSettings(ca_file=ca_file, policy=RetryPolicy(schedule=()))
    target = Target(url, OAuthSettings(token_url, "interop-client", "interop-secret", scope=scope))

    async def scenario(storage: Storage) -> Delivered:
        async with Dispatcher(storage.events, settings, target=target) as d:
            for body in notifications.lifecycle():
                await d.enqueue(body)
            assert await d.wait_idle(60)
            assert d.oauth is not None
            fetches = d.oauth.fetches
        first = (await storage.events.events(EventFilter(), limit=1))[0]
        return Delivered(
            await storage.events.counts(),
            await storage.events.attempts(first.event_id),
            fetches,
        )

    result: Delivered = drive(scenario)
    return result


def files(certs_dir: Path) -> CertFiles:
    return CertFiles(certs_dir / "server.pem", certs_dir / "server-key.pem", certs_dir / "ca.pem")


def test_tokens_from_oauth2_mock_server_are_accepted(certs_dir: Path) -> None:
    cert = files(certs_dir)
    received: list[dict[str, object]] = []
    with oauth2_mock_server(cert.cert_file, cert.key_file) as auth:
        app = create_app(
            jwks_url=auth.jwks_url,
            issuer=auth.issuer,
            ca_file=str(cert.ca_file),
            handle=received.append,
        )
        with serve_app(app, certs_dir=certs_dir) as served:
            delivered = deliver_all(
                served.url("/webhook"), auth.token_url, cert.ca_file, scope="webhook"
            )
    assert delivered.counts == {"sent": len(STATUSES)}
    assert [n["status"] for n in received] == list(STATUSES)
    assert delivered.fetches == 1


def test_a_receiver_expecting_another_issuer_refuses_them(certs_dir: Path) -> None:
    cert = files(certs_dir)
    with oauth2_mock_server(cert.cert_file, cert.key_file) as auth:
        app = create_app(
            jwks_url=auth.jwks_url, issuer="https://someone-else.example", ca_file=str(cert.ca_file)
        )
        with serve_app(app, certs_dir=certs_dir) as served:
            delivered = deliver_all(served.url("/webhook"), auth.token_url, cert.ca_file)
    assert delivered.counts == {"failed": len(STATUSES)}
    (attempt,) = delivered.first
    # A 401 makes the dispatcher fetch a new token and try once more before it gives up.
    assert attempt.outcome == "unauthorized" and "after a token refresh" in attempt.reason
    assert delivered.fetches > 1
