"""The example receiver, tested the way a customer tests theirs: with the webhook-kit plugin.

``webhook_endpoint`` plays the authorization server (its token URL and JWKS), ``serve_app`` runs the
receiver over real HTTPS, ``webhook_dispatcher`` sends every status, and ``certify_url`` runs the
same checks as ``webhook-kit certify``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from webhook_kit.contract.statuses import STATUSES
from webhook_kit.testing import EndpointHandle, WebhookDispatcher, certify_url, serve_app

from .app import create_app


def receiver_for(sink: EndpointHandle, received: list[dict[str, Any]]) -> Any:
    return create_app(
        jwks_url=sink.jwks_url,
        issuer=sink.issuer,
        audience=sink.audience,
        ca_file=str(sink.ca_file),
        handle=received.append,
    )


def test_every_status_reaches_the_handler_once(
    webhook_endpoint: EndpointHandle, webhook_dispatcher: WebhookDispatcher, webhook_certs_dir: Path
) -> None:
    received: list[dict[str, Any]] = []
    with serve_app(receiver_for(webhook_endpoint, received), certs_dir=webhook_certs_dir) as served:
        outcomes = webhook_dispatcher.send(
            served.url("/webhook"),
            token_url=webhook_endpoint.token_url,
            client_id=webhook_endpoint.client_id,
            client_secret=webhook_endpoint.client_secret,
        )
    assert [o.state for o in outcomes] == ["sent"] * len(STATUSES)
    assert [n["status"] for n in received] == list(STATUSES)


def test_the_receiver_is_certified(
    webhook_endpoint: EndpointHandle, webhook_certs_dir: Path
) -> None:
    with serve_app(receiver_for(webhook_endpoint, []), certs_dir=webhook_certs_dir) as served:
        report = certify_url(served.url("/webhook"), webhook_endpoint)
    failures = [f"{c.id}: {c.detail}" for c in report.checks if c.verdict == "fail"]
    assert report.verdict == "pass", failures
