"""Metrics: every method, read back through prometheus_client's own exposition parser."""

from __future__ import annotations

import asyncio
import socket
import urllib.error
import urllib.request
from collections.abc import Iterable
from pathlib import Path

import prometheus_client
import pytest
import requests
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette

from webhook_kit.errors import ServerError
from webhook_kit.metrics import (
    DeliveryMetrics,
    EndpointMetrics,
    QueueStat,
    account_label,
    metrics_route,
    serve_metrics,
)
from webhook_kit.testing import serve_app

Sample = tuple[str, dict[str, str], float]


def scrape(registry: CollectorRegistry) -> list[Sample]:
    return parse(generate_latest(registry).decode())


def parse(text: str) -> list[Sample]:
    return [
        (sample.name, dict(sample.labels), sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    ]


def value(samples: Iterable[Sample], name: str, **labels: str) -> float:
    found = [v for n, lab, v in samples if n == name and lab == labels]
    assert len(found) == 1, (name, labels, found)
    return found[0]


def label_sets(samples: Iterable[Sample], name: str) -> list[dict[str, str]]:
    return [lab for n, lab, _ in samples if n == name]


def test_attempts_count_by_account_and_outcome() -> None:
    metrics = DeliveryMetrics()
    metrics.attempt("acme", "success", None, 0.004)
    metrics.attempt("acme", "success", None, 0.2)
    metrics.attempt("acme", "timeout", None, 10.0)
    metrics.attempt("globex", "failure", "tls_error", 0.03)  # the two calling styles agree
    metrics.attempt("globex", "tls_error", None, 0.03)
    metrics.attempt("globex", "failure", "not-a-class", 0.5)

    samples = scrape(metrics.registry)
    total = "webhook_kit_deliveries_total"
    assert value(samples, total, account="acme", outcome="success") == 2
    assert value(samples, total, account="acme", outcome="timeout") == 1
    assert value(samples, total, account="globex", outcome="tls_error") == 2
    assert value(samples, total, account="globex", outcome="other") == 1
    assert {frozenset(lab) for lab in label_sets(samples, total)} == {
        frozenset({"account", "outcome"})
    }

    count = "webhook_kit_attempt_seconds_count"
    assert value(samples, count, account="acme") == 3
    assert value(samples, count, account="globex") == 3
    assert value(samples, "webhook_kit_attempt_seconds_sum", account="acme") == pytest.approx(
        10.204
    )
    bucket = "webhook_kit_attempt_seconds_bucket"
    assert value(samples, bucket, account="acme", le="0.001") == 0
    assert value(samples, bucket, account="acme", le="0.005") == 1
    assert value(samples, bucket, account="acme", le="0.25") == 2
    assert value(samples, bucket, account="acme", le="5.0") == 2
    assert value(samples, bucket, account="acme", le="10.0") == 3
    assert value(samples, bucket, account="acme", le="+Inf") == 3
    bounds = [lab["le"] for lab in label_sets(samples, bucket) if lab["account"] == "acme"]
    assert bounds[0] == "0.001" and "30.0" in bounds


def test_token_fetches_by_result() -> None:
    metrics = DeliveryMetrics()
    metrics.token_fetch("acme", True)
    metrics.token_fetch("acme", True)
    metrics.token_fetch("acme", False)
    samples = scrape(metrics.registry)
    name = "webhook_kit_token_fetches_total"
    assert value(samples, name, account="acme", result="ok") == 2
    assert value(samples, name, account="acme", result="error") == 1
    assert len(label_sets(samples, name)) == 2


def test_breaker_state_is_one_of_three() -> None:
    metrics = DeliveryMetrics()
    metrics.breaker("acme", "closed")
    metrics.breaker("globex", "open")
    metrics.breaker("acme", "half_open")
    samples = scrape(metrics.registry)
    name = "webhook_kit_breaker_state"
    states = {(lab["account"], lab["state"]): v for n, lab, v in samples if n == name}
    assert states == {
        ("acme", "closed"): 0,
        ("acme", "open"): 0,
        ("acme", "half_open"): 1,
        ("globex", "closed"): 0,
        ("globex", "open"): 1,
        ("globex", "half_open"): 0,
    }
    with pytest.raises(ValueError, match="breaker state"):
        metrics.breaker("acme", "ajar")  # type: ignore[arg-type]


def test_queue_gauges_are_read_at_scrape_time() -> None:
    snapshot = [QueueStat("acme", 3, 12.5), QueueStat("globex", 0, 0.0)]
    metrics = DeliveryMetrics(queue_stats=lambda: snapshot)
    samples = scrape(metrics.registry)
    assert value(samples, "webhook_kit_queue_depth", account="acme") == 3
    assert value(samples, "webhook_kit_oldest_pending_seconds", account="acme") == 12.5
    assert value(samples, "webhook_kit_queue_depth", account="globex") == 0
    assert value(samples, "webhook_kit_scrape_errors_total") == 0

    snapshot = [QueueStat("acme", 7, 30.0)]
    samples = scrape(metrics.registry)
    assert value(samples, "webhook_kit_queue_depth", account="acme") == 7
    assert label_sets(samples, "webhook_kit_queue_depth") == [{"account": "acme"}]


def test_a_failing_queue_snapshot_does_not_break_the_scrape() -> None:
    healthy = True

    def stats() -> list[QueueStat]:
        if not healthy:
            raise RuntimeError("snapshot not ready")
        return [QueueStat("acme", 2, 1.0)]

    metrics = DeliveryMetrics(queue_stats=stats)
    metrics.attempt("acme", "success", None, 0.01)
    healthy = False
    for scrapes in (1, 2):
        samples = scrape(metrics.registry)
        names = {n for n, _, _ in samples}
        assert "webhook_kit_queue_depth" not in names
        assert "webhook_kit_oldest_pending_seconds" not in names
        assert value(samples, "webhook_kit_scrape_errors_total") == scrapes
        assert value(samples, "webhook_kit_deliveries_total", account="acme", outcome="success")
    healthy = True
    samples = scrape(metrics.registry)
    assert value(samples, "webhook_kit_queue_depth", account="acme") == 2
    assert value(samples, "webhook_kit_scrape_errors_total") == 2


def test_a_bad_row_in_the_snapshot_counts_as_a_failed_read() -> None:
    bad = QueueStat("acme", "many", 1.0)  # type: ignore[arg-type]
    metrics = DeliveryMetrics(queue_stats=lambda: [bad])
    samples = scrape(metrics.registry)
    assert "webhook_kit_queue_depth" not in {n for n, _, _ in samples}
    assert value(samples, "webhook_kit_scrape_errors_total") == 1


LEAKS = [
    "https://client:s3cret@hooks.example.com/webhook?token=abc",
    "hooks.example.com/webhook",
    "Bearer eyJhbGciOiJSUzI1NiJ9",
    'acme",outcome="success"} 1\nfake_metric{a="',
    "a" * 41,
    "k" * 43,  # the length of a secrets.token_urlsafe(32) key
    "acme@example.com",
    "",
    "-leading-dash",
    "acmé",
]


@pytest.mark.parametrize("leak", LEAKS)
def test_a_value_that_is_not_an_account_id_is_never_exposed(leak: str) -> None:
    metrics = DeliveryMetrics(queue_stats=lambda: [QueueStat(leak, 1, 2.0)])
    metrics.attempt(leak, "success", None, 0.01)
    metrics.attempt(leak, "http_error", None, 0.01)
    metrics.token_fetch(leak, False)
    metrics.breaker(leak, "open")
    page = generate_latest(metrics.registry).decode()
    if leak:
        assert leak not in page
    samples = parse(page)
    accounts = {lab["account"] for _, lab, _ in samples if "account" in lab}
    assert accounts == {"invalid"}
    assert value(samples, "webhook_kit_deliveries_total", account="invalid", outcome="success")
    assert account_label(leak) == "invalid"


def test_invalid_ids_share_one_series() -> None:
    urls = ["https://a.example/x", "https://b.example/y"]
    metrics = DeliveryMetrics(
        queue_stats=lambda: [QueueStat(u, 2, float(i)) for i, u in enumerate(urls)]
    )
    for url in urls:
        metrics.attempt(url, "success", None, 0.01)
    samples = scrape(metrics.registry)
    assert value(samples, "webhook_kit_deliveries_total", account="invalid", outcome="success") == 2
    assert value(samples, "webhook_kit_queue_depth", account="invalid") == 4
    assert value(samples, "webhook_kit_oldest_pending_seconds", account="invalid") == 1


@pytest.mark.parametrize(
    "account", ["acme", "7b0e6f3c-2f1d-4c7e-9a53-0d3c1f6b2a11", "42", "acme_eu.prod", "a" * 40]
)
def test_account_ids_are_kept(account: str) -> None:
    assert account_label(account) == account


def test_two_instances_do_not_share_anything() -> None:
    first = DeliveryMetrics(queue_stats=lambda: [QueueStat("acme", 1, 1.0)])
    second = DeliveryMetrics(queue_stats=lambda: [QueueStat("acme", 5, 1.0)])
    first.attempt("acme", "success", None, 0.01)
    first.attempt("acme", "success", None, 0.01)
    second.attempt("acme", "success", None, 0.01)
    one, two = scrape(first.registry), scrape(second.registry)
    assert value(one, "webhook_kit_deliveries_total", account="acme", outcome="success") == 2
    assert value(two, "webhook_kit_deliveries_total", account="acme", outcome="success") == 1
    assert value(one, "webhook_kit_queue_depth", account="acme") == 1
    assert value(two, "webhook_kit_queue_depth", account="acme") == 5
    global_names = {n for n, _, _ in parse(generate_latest(prometheus_client.REGISTRY).decode())}
    assert not any(n.startswith("webhook_kit_") for n in global_names)


def test_forget_drops_an_accounts_series() -> None:
    metrics = DeliveryMetrics()
    for account in ("acme", "globex"):
        metrics.attempt(account, "success", None, 0.01)
        metrics.attempt(account, "timeout", None, 10.0)
        metrics.token_fetch(account, True)
        metrics.breaker(account, "open")
    metrics.forget("acme")
    samples = scrape(metrics.registry)
    assert {lab.get("account") for _, lab, _ in samples} == {"globex"}
    metrics.attempt("acme", "success", None, 0.01)  # comes back fresh, from zero
    samples = scrape(metrics.registry)
    assert value(samples, "webhook_kit_deliveries_total", account="acme", outcome="success") == 1
    metrics.forget("https://not.an/account")  # names no account: nothing to drop
    assert scrape(metrics.registry) == samples


def test_endpoint_counts_notifications_and_tokens() -> None:
    metrics = EndpointMetrics()
    metrics.accepted(duplicate=False)
    metrics.accepted(duplicate=False)
    metrics.accepted(duplicate=True)
    metrics.refused("invalid_token", 401)
    metrics.refused("use_dpop_nonce", 401)
    metrics.refused("invalid_notification", 422)
    metrics.refused("payload_too_large", 413)
    metrics.refused("invalid_json", 400)
    metrics.refused("something_new", 400)
    metrics.token_issued()
    metrics.token_refused("invalid_client")
    metrics.token_refused("made_up")
    samples = scrape(metrics.registry)
    name = "webhook_kit_notifications_total"
    assert value(samples, name, result="accepted", reason="new") == 2
    assert value(samples, name, result="accepted", reason="duplicate") == 1
    assert value(samples, name, result="refused", reason="unauthorized") == 2
    assert value(samples, name, result="refused", reason="schema") == 1
    assert value(samples, name, result="refused", reason="too_large") == 1
    assert value(samples, name, result="refused", reason="invalid_json") == 1
    assert value(samples, name, result="refused", reason="other") == 1
    assert value(samples, name, result="refused", reason="unsupported_media_type") == 0
    tokens = "webhook_kit_token_requests_total"
    assert value(samples, tokens, result="issued", reason="none") == 1
    assert value(samples, tokens, result="refused", reason="invalid_client") == 1
    assert value(samples, tokens, result="refused", reason="other") == 1
    assert value(samples, tokens, result="refused", reason="slow_down") == 0
    assert "made_up" not in generate_latest(metrics.registry).decode()


@pytest.mark.slow
def test_metrics_route_in_a_starlette_app_over_https(certs_dir: Path) -> None:
    metrics = DeliveryMetrics()
    metrics.attempt("acme", "success", None, 0.01)
    app = Starlette(
        routes=[
            metrics_route(metrics.registry),
            metrics_route(metrics.registry, path="/private/metrics", bearer_token="scrape-me"),
        ]
    )
    with serve_app(app, certs_dir=certs_dir) as served:
        answer = requests.get(served.url("/metrics"), verify=str(served.ca_file), timeout=10)
        assert answer.status_code == 200
        assert answer.headers["content-type"] == CONTENT_TYPE_LATEST
        samples = parse(answer.text)
        assert value(samples, "webhook_kit_deliveries_total", account="acme", outcome="success")

        private = served.url("/private/metrics")
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "scrape-me"}):
            refused = requests.get(private, headers=headers, verify=str(served.ca_file), timeout=10)
            assert refused.status_code == 401
            assert refused.json()["error_type"] == "unauthorized"
            assert refused.headers["www-authenticate"].startswith("Bearer")
            assert "webhook_kit" not in refused.text
        allowed = requests.get(
            private,
            headers={"Authorization": "Bearer scrape-me"},
            verify=str(served.ca_file),
            timeout=10,
        )
        assert allowed.status_code == 200
        assert parse(allowed.text) == samples


def _get(url: str, token: str | None = None) -> tuple[int, str, str]:
    request = urllib.request.Request(url)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, answer.headers["Content-Type"], answer.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read().decode()


@pytest.mark.slow
def test_standalone_server_answers_a_real_scrape_and_stops() -> None:
    async def main() -> None:
        metrics = DeliveryMetrics(queue_stats=lambda: [QueueStat("acme", 4, 9.0)])
        metrics.attempt("acme", "connect_error", None, 0.002)
        server = await serve_metrics(metrics.registry)
        assert server.host == "127.0.0.1" and server.port > 0
        async with server:
            status, content_type, body = await asyncio.to_thread(_get, server.url)
            assert status == 200
            assert content_type == CONTENT_TYPE_LATEST
            samples = parse(body)
            assert value(samples, "webhook_kit_queue_depth", account="acme") == 4
            name = "webhook_kit_deliveries_total"
            assert value(samples, name, account="acme", outcome="connect_error") == 1
            missing = await asyncio.to_thread(_get, server.url.replace("/metrics", "/other"))
            assert missing[0] == 404
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((server.host, server.port), timeout=5).close()

    asyncio.run(main())


@pytest.mark.slow
def test_standalone_server_with_a_token_and_a_taken_port() -> None:
    async def main() -> None:
        metrics = EndpointMetrics()
        metrics.token_issued()
        async with await serve_metrics(metrics.registry, bearer_token="t0ken") as server:
            refused = await asyncio.to_thread(_get, server.url)
            assert refused[0] == 401 and "webhook_kit" not in refused[2]
            status, _, body = await asyncio.to_thread(_get, server.url, "t0ken")
            assert status == 200
            samples = parse(body)
            name = "webhook_kit_token_requests_total"
            assert value(samples, name, result="issued", reason="none") == 1
            with pytest.raises(ServerError, match="cannot serve metrics"):
                await serve_metrics(metrics.registry, port=server.port)

    asyncio.run(main())
