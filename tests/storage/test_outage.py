"""PostgreSQL going away and coming back, through a TCP forwarder the test cuts (the real server,
shared with other tests, is never touched): the API answers 503 with ``Retry-After`` and loses
nothing; delivery resumes; bad database settings get a clear error, never a traceback."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from harnesses.clients import ProviderClient
from tests.storage.test_contract import event, now
from tests.storage.test_pg_chains import run
from tests.tcp_proxy import TcpProxy
from webhook_kit.endpoint.service import Endpoint
from webhook_kit.errors import StoreUnavailable
from webhook_kit.storage.postgres import POOL_SIZE
from webhook_kit.storage.postgres.errors import CALL_DEADLINE, bounded_call
from webhook_kit.storage.postgres.events import PostgresEvents
from webhook_kit.storage.url import open_storage

pytestmark = pytest.mark.slow


@pytest.fixture
def proxied(postgres_url: str) -> Iterator[tuple[str, TcpProxy]]:
    """The test's database URL, reached through a forwarder the test can cut."""
    parts = urlsplit(postgres_url)
    proxy = TcpProxy((parts.hostname or "127.0.0.1", parts.port or 5432))
    netloc = f"{parts.username}@127.0.0.1:{proxy.port}"
    yield urlunsplit(parts._replace(netloc=netloc)), proxy
    proxy.close()


def until(condition: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def configured(
    proxied: tuple[str, TcpProxy], start_endpoint: Any, start_provider: Any
) -> tuple[TcpProxy, Endpoint, ProviderClient, str]:
    """A provider on the proxied database, its settings saved, one validation made: (proxy,
    its endpoint, its API, that validation)."""
    url, proxy = proxied
    sink: Endpoint = start_endpoint()
    api = ProviderClient(start_provider(db=url))
    assert api.configure(sink).status_code == 201
    return proxy, sink, api, api.new_validation()


def test_the_api_answers_503_while_the_database_is_away_and_loses_nothing(
    proxied: tuple[str, TcpProxy], start_endpoint: Any, start_provider: Any
) -> None:
    proxy, sink, api, before = configured(proxied, start_endpoint, start_provider)

    proxy.cut()
    refused = api.call("POST", "/validation")
    assert refused.status_code == 503
    assert refused.headers["Retry-After"].isdigit()
    assert refused.json()["error_type"] == "storage_unavailable"
    assert "try again" in refused.json()["error_message"]
    assert api.call("GET", "/webhook/events").status_code == 503

    proxy.restore()
    # The pool gets new connections on its own: the next calls succeed.
    until(lambda: api.call("GET", "/webhook/settings").status_code == 200)
    after = api.new_validation()

    def delivered() -> bool:
        return {r["validation_id"] for r in sink.recorder.query()} >= {before, after}

    until(delivered)  # the claim cut off in flight is given back, not left to its lease
    assert len(sink.recorder.query()) == 2  # the refused call stored nothing


def test_the_api_answers_503_in_bounded_time_while_the_database_hangs(
    proxied: tuple[str, TcpProxy], start_endpoint: Any, start_provider: Any
) -> None:
    """A server that froze (connections open, nothing answers): every call is cut off after
    the call's deadline, not the driver's command timeout and then its cancel request's."""
    proxy, sink, api, before = configured(proxied, start_endpoint, start_provider)

    proxy.hang()
    for method, path in (("GET", "/webhook/events?limit=1"), ("POST", "/validation")):
        # Well under the 60 s the driver alone takes; a bound, not a measurement.
        refused = api.call(method, path, timeout=CALL_DEADLINE + 15)
        assert refused.status_code == 503, refused.text
        assert refused.headers["Retry-After"].isdigit()
        assert "try again" in refused.json()["error_message"]

    proxy.resume()
    until(lambda: api.call("GET", "/webhook/settings").status_code == 200)
    after = api.new_validation()
    until(lambda: {r["validation_id"] for r in sink.recorder.query()} >= {before, after})
    # The POST cut off may have been committed before its answer was lost: at most one more.
    assert len({r["validation_id"] for r in sink.recorder.query()}) in (2, 3)


def test_delivery_resumes_after_the_database_comes_back(
    proxied: tuple[str, TcpProxy], start_endpoint: Any, start_provider: Any
) -> None:
    url, proxy = proxied
    sink: Endpoint = start_endpoint()
    api = ProviderClient(start_provider(db=url))
    assert api.configure(sink).status_code == 201
    first = api.new_validation()
    until(lambda: len(sink.recorder.query()) == 1)
    proxy.cut()
    time.sleep(0.5)  # the experiment: the dispatcher polls a database that is away
    proxy.restore()
    until(lambda: api.call("GET", "/webhook/settings").status_code == 200)
    second = api.new_validation()
    until(lambda: {r["validation_id"] for r in sink.recorder.query()} == {first, second})


def run_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "webhook_kit", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_an_unreachable_database_stops_the_provider_with_the_reason(
    proxied: tuple[str, TcpProxy], tmp_path: Any
) -> None:
    url, proxy = proxied
    proxy.cut()
    done = run_cli("provider", "--port", "0", "--db", url, "--certs-dir", str(tmp_path))
    assert done.returncode == 1, done.stderr
    assert "cannot be reached" in done.stderr
    assert "Traceback" not in done.stderr


def test_unknown_credentials_are_named_not_retried(postgres_url: str, tmp_path: Any) -> None:
    parts = urlsplit(postgres_url)
    wrong = urlunsplit(
        parts._replace(netloc=f"no_such_role:secret-pw@{parts.hostname}:{parts.port}")
    )
    for command in (
        ["provider", "--port", "0", "--certs-dir", str(tmp_path)],
        ["worker"],
    ):
        done = run_cli(*command, "--db", wrong)
        assert done.returncode == 1, done.stderr
        assert "no_such_role" in done.stderr
        assert "secret-pw" not in done.stderr + done.stdout  # the password is never shown
        assert "Traceback" not in done.stderr


def test_a_worker_waits_for_the_database_then_starts(proxied: tuple[str, TcpProxy]) -> None:
    url, proxy = proxied
    proxy.cut()
    with subprocess.Popen(
        [sys.executable, "-m", "webhook_kit", "worker", "--json", "--db", url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as worker:
        try:
            assert worker.stderr is not None and worker.stdout is not None
            line = worker.stderr.readline()  # the first failed attempt, logged
            assert "cannot be reached" in line and "trying again" in line
            proxy.restore()
            ready = worker.stdout.readline()  # blocks until ready
            assert '"worker"' in ready
        finally:
            worker.terminate()
            assert worker.wait(15) == 0


def test_a_call_cut_off_in_a_transaction_ends_at_its_deadline(
    proxied: tuple[str, TcpProxy],
) -> None:
    """The server freezes mid-transaction: the call ends at its deadline, its rollback
    included (a cancelled task would have the driver wait 30 s for the frozen server), and the
    pool serves the next call once the server is back."""
    url, proxy = proxied

    async def main() -> None:
        storage = await open_storage(url)
        try:
            assert isinstance(storage.events, PostgresEvents)
            pool = storage.events._pool  # the store's own pool, as its calls use it

            async def call() -> None:
                async with bounded_call(pool, "cut", deadline=1) as conn, conn.transaction():
                    await conn.execute("SELECT 1")
                    proxy.hang()
                    await conn.execute("SELECT 2")

            with pytest.raises(StoreUnavailable, match="did not answer within 1 s"):
                await asyncio.wait_for(call(), 20)
            proxy.resume()
            assert await storage.records.settings() is None
        finally:
            await storage.close()

    asyncio.run(main())


def test_concurrent_requeues_never_wait_for_their_own_pool(postgres_url: str) -> None:
    """More calls than the pool has connections, each announcing new work: the notice takes a
    connection of its own once the call's is back, never while holding it."""

    async def scenario(events: PostgresEvents, conn: Any) -> None:
        new = [event(f"v{n}") for n in range(3 * POOL_SIZE)]
        await events.insert(new)
        await conn.execute("UPDATE events SET state = 'sent'; UPDATE heads SET pending = 0")
        done = await asyncio.wait_for(
            asyncio.gather(*(events.requeue(e.event_id, now()) for e in new)), 60
        )
        assert done == ["requeued"] * len(new)
        assert await events.counts() == {"pending": len(new)}

    run(postgres_url, scenario)
