"""The metrics as deployed: ``serve``'s ``/metrics`` after real notifications and token requests,
and a worker's ``--metrics-port`` after real deliveries. Every page is read with
``prometheus_client``'s own parser."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import KitClient, notification
from tests.storage.workers import start_worker
from webhook_kit.contract.notifications import build
from webhook_kit.endpoint.service import Endpoint
from webhook_kit.ids import new_id
from webhook_kit.provider.webhook_settings import validate
from webhook_kit.storage.base import Storage
from webhook_kit.storage.rows import NewEvent
from webhook_kit.storage.url import open_storage

pytestmark = pytest.mark.slow

T = TypeVar("T")
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
WAIT = 60.0


def parse(text: str) -> Samples:
    """Every sample of the page by (name, labels)."""
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def scrape(url: str, **kw: Any) -> tuple[str, Samples]:
    http = requests.Session()
    http.trust_env = False
    try:
        response = http.get(url, timeout=30, **kw)
    finally:
        http.close()
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return response.text, parse(response.text)


def test_serve_counts_notifications_and_token_requests(start_endpoint: Any) -> None:
    sink: Endpoint = start_endpoint()
    kit = KitClient(sink)
    url = sink.urls.base + "/metrics"
    verify = sink.info.ca_file
    _, before = scrape(url, verify=verify)
    notes = "webhook_kit_notifications_total"
    tokens = "webhook_kit_token_requests_total"
    # Every series is there from the start, at zero.
    assert value(before, notes, result="accepted", reason="new") == 0
    assert value(before, notes, result="refused", reason="unauthorized") == 0
    assert value(before, tokens, result="issued", reason="none") == 0

    token = kit.token()
    first = notification()
    assert kit.post(first, token=token).json()["duplicate"] is False
    assert kit.post(first, token=token).json()["duplicate"] is True
    assert kit.post(notification(), token=token).status_code == 200
    assert kit.post(notification(), token=None).status_code == 401
    assert kit.post(notification(), token="not-a-jwt").status_code == 401
    assert kit.post(data=b"{not json", token=token).status_code == 400
    assert kit.post({"event_id": "e"}, token=token).status_code == 422
    wrong = kit.http.post(
        sink.info.token_url,
        data={"grant_type": "client_credentials"},
        auth=(sink.info.client_id, "wrong-secret"),
        timeout=10,
    )
    assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_client"
    grant = kit.http.post(
        sink.info.token_url,
        data={"grant_type": "password"},
        auth=(sink.info.client_id, sink.info.client_secret),
        timeout=10,
    )
    assert grant.json()["error"] == "unsupported_grant_type"

    text, after = scrape(url, verify=verify)
    assert value(after, notes, result="accepted", reason="new") == 2
    assert value(after, notes, result="accepted", reason="duplicate") == 1
    assert value(after, notes, result="refused", reason="unauthorized") == 2
    assert value(after, notes, result="refused", reason="invalid_json") == 1
    assert value(after, notes, result="refused", reason="schema") == 1
    assert value(after, tokens, result="issued", reason="none") == 1
    assert value(after, tokens, result="refused", reason="invalid_client") == 1
    assert value(after, tokens, result="refused", reason="unsupported_grant_type") == 1
    assert value(after, tokens, result="refused", reason="slow_down") == 0
    for secret in (sink.info.client_secret, token, first["event_id"]):
        assert secret not in text
    # The webhook route still answers as before, and /metrics takes no POST.
    assert kit.http.post(url, timeout=10).status_code in (404, 405)

    # Failed client authentications until the limiter answers 429 slow_down: counted too.
    for _ in range(100):
        refused = kit.http.post(
            sink.info.token_url,
            data={"grant_type": "client_credentials"},
            auth=(sink.info.client_id, "wrong-secret"),
            timeout=10,
        )
        if refused.status_code == 429:
            break
    assert refused.status_code == 429 and refused.json()["error"] == "slow_down"
    _, limited = scrape(url, verify=verify)
    assert value(limited, tokens, result="refused", reason="slow_down") == 1
    failures = value(limited, tokens, result="refused", reason="invalid_client")
    assert failures is not None and failures >= 2
    kit.close()


def on_db(url: str, work: Callable[[Storage], Awaitable[T]]) -> T:
    async def main() -> T:
        storage = await open_storage(url)
        try:
            return await work(storage)
        finally:
            await storage.close()

    return asyncio.run(main())


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then closed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def events_of(account: str, count: int) -> list[NewEvent]:
    return [
        NewEvent.of(build("on-course", validation_id=new_id(), previous_status=None), account)
        for _ in range(count)
    ]


def test_worker_metrics_after_deliveries(
    postgres_url: str, start_endpoint: Any, certs_dir: Path, tmp_path: Path
) -> None:
    sink: Endpoint = start_endpoint()
    info = sink.info
    down = f"https://127.0.0.1:{closed_port()}"
    healthy = validate(
        {
            "url": info.url,
            "auth": {
                "token_url": info.token_url,
                "client_id": info.client_id,
                "client_secret": info.client_secret,
            },
        }
    )
    dead = validate(
        {
            "url": down + "/webhook",
            "auth": {
                "token_url": down + "/oauth/token",
                "client_id": "dead-client",
                "client_secret": "dead-secret-value",
            },
        }
    )

    async def setup(storage: Storage) -> tuple[str, str]:
        now = time.time()
        a = await storage.records.add_account("alpha-corp", "hash-alpha", now)
        b = await storage.records.add_account("beta-corp", "hash-beta", now)
        await storage.records.put_settings(healthy, now, account=a.id)
        await storage.records.put_settings(dead, now, account=b.id)
        # B: more validations than the breaker's threshold (5), so that it opens.
        await storage.events.insert([*events_of(a.id, 3), *events_of(b.id, 8)])
        return a.id, b.id

    a, b = on_db(postgres_url, setup)
    worker = start_worker(
        tmp_path,
        postgres_url,
        str(certs_dir / "ca.pem"),
        "worker",
        concurrency=8,
        timeout=3,
        lease=10,
        extra=["--metrics-port", "0"],
    )
    try:
        url = worker.info["metrics_url"]
        assert url.startswith("http://127.0.0.1:")
        deliveries = "webhook_kit_deliveries_total"

        def settled(samples: Samples) -> bool:
            return (
                value(samples, deliveries, account=a, outcome="success") == 3
                and value(samples, "webhook_kit_breaker_state", account=b, state="open") == 1
                and (value(samples, "webhook_kit_queue_depth", account=b) or 0) >= 1
                # The queue snapshot is refreshed every few seconds: wait for one taken after
                # A's completions were written.
                and value(samples, "webhook_kit_queue_depth", account=a) in (None, 0)
            )

        deadline = time.monotonic() + WAIT
        text, samples = scrape(url)
        while not settled(samples):
            if time.monotonic() > deadline:
                raise AssertionError(f"the worker's metrics never settled:\n{text}")
            time.sleep(0.2)  # a polling interval: the condition is re-checked every turn
            text, samples = scrape(url)
    finally:
        assert worker.stop() == 0, worker.stderr_tail()

    # Deliveries by outcome: A's all succeeded; B's endpoint is down (its token fetch fails).
    failed_b = value(samples, deliveries, account=b, outcome="token_error") or 0
    assert failed_b >= 5
    assert value(samples, deliveries, account=a, outcome="token_error") in (None, 0)
    # The attempt histogram: one observation per attempt, buckets cumulative.
    histogram = "webhook_kit_attempt_seconds"
    assert value(samples, histogram + "_count", account=a) == 3
    assert value(samples, histogram + "_count", account=b) == failed_b
    buckets = sorted(
        (float(dict(labels)["le"]), v)
        for (name, labels), v in samples.items()
        if name == histogram + "_bucket" and dict(labels)["account"] == a
    )
    assert buckets[-1] == (float("inf"), 3)
    assert [v for _, v in buckets] == sorted(v for _, v in buckets)
    # Token fetches: A fetched (once, then cached), B's all failed.
    assert (value(samples, "webhook_kit_token_fetches_total", account=a, result="ok") or 0) >= 1
    assert (value(samples, "webhook_kit_token_fetches_total", account=b, result="error") or 0) >= 5
    assert value(samples, "webhook_kit_token_fetches_total", account=a, result="error") in (None, 0)
    # Breaker: B's open (one state at a time); A's never left closed.
    assert value(samples, "webhook_kit_breaker_state", account=b, state="closed") == 0
    assert value(samples, "webhook_kit_breaker_state", account=a, state="open") in (None, 0)
    # Queue: B's events wait, A's are done.
    assert (value(samples, "webhook_kit_queue_depth", account=b) or 0) >= 3
    assert value(samples, "webhook_kit_queue_depth", account=a) in (None, 0)
    assert (value(samples, "webhook_kit_oldest_pending_seconds", account=b) or 0) > 0
    # Labels are account ids: no name, URL or secret on the page.
    accounts = {dict(labels).get("account") for (_, labels) in samples} - {None}
    assert accounts <= {a, b}, accounts
    for secret in (
        "alpha-corp",
        "beta-corp",
        info.url,
        info.client_secret,
        down,
        "dead-secret-value",
        json.dumps(healthy),
    ):
        assert secret not in text
