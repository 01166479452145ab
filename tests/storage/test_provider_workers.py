"""``provider --workers N`` supervises its workers, as real processes on a real PostgreSQL: one
that dies is logged and replaced, and they do not outlive a provider that dies; a worker started
by hand keeps running whatever its stdin."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest
import requests

from tests.storage.workers import (
    Database,
    KitProcess,
    lifecycles,
    settings_document,
    start_worker,
)
from webhook_kit.endpoint.service import Endpoint
from webhook_kit.provider.workers import PARENT_PIPE_ENV

pytestmark = pytest.mark.slow

T = TypeVar("T")

#: Seconds a process may take to start, stop or deliver on a busy machine.
DEADLINE = 60.0


def wait_for(condition: Callable[[], T], what: str, timeout: float = DEADLINE) -> T:
    """``condition()`` once it is true; :class:`TimeoutError` naming ``what`` if it never is."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"not within {timeout:g} s: {what}")
        time.sleep(0.05)  # a polling interval: the condition is re-checked every turn


def alive(pid: int) -> bool:
    """The process runs: a zombie (dead, not reaped yet by its new parent) counts as gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


class ProviderRun:
    """A ``provider --workers N`` process; every worker pid seen, to kill what outlives it."""

    def __init__(self, process: KitProcess) -> None:
        self.process = process
        self.seen: set[int] = set()

    def workers(self) -> set[int]:
        """Its live worker processes (its only children)."""
        found = subprocess.run(
            ["pgrep", "-P", str(self.process.process.pid)], capture_output=True, text=True
        ).stdout.split()
        pids = {int(pid) for pid in found if alive(int(pid))}
        self.seen |= pids
        return pids

    def log(self) -> str:
        return self.process.log.read_text(errors="replace")


def two_workers(run: ProviderRun, gone: int | None = None) -> set[int]:
    """The provider's two workers, ``gone`` not among them (else none)."""
    pids = run.workers()
    return pids if len(pids) == 2 and gone not in pids else set()


def kill_and_see_replaced(run: ProviderRun, victim: int) -> None:
    """SIGKILL one worker; the provider logs it and starts another in its place."""
    os.kill(victim, signal.SIGKILL)
    logged = f"(pid {victim}) was killed by SIGKILL"
    wait_for(lambda: logged in run.log(), f"the provider logging: {logged}")
    wait_for(lambda: two_workers(run, victim), f"a worker in place of {victim}")


@contextmanager
def provider_with_workers(
    work: Path, postgres_url: str, certs_dir: Path, count: int
) -> Iterator[ProviderRun]:
    args = [
        *("provider", "--port", "0", "--json", "--db", postgres_url, "--workers", str(count)),
        *("--certs-dir", str(certs_dir), "--ca", str(certs_dir / "ca.pem"), "--apikey", "k"),
    ]
    run = ProviderRun(KitProcess(args, work / "provider.log", cwd=work))
    try:
        yield run
    finally:
        run.process.stop()
        for pid in run.seen:  # left behind by a provider that did not stop them
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_a_killed_worker_is_logged_and_replaced_and_delivery_goes_on(
    start_endpoint: Any, postgres_url: str, certs_dir: Path, tmp_path: Path
) -> None:
    """Each of the two workers SIGKILLed in turn: the provider logs it and starts another, so
    events posted afterwards (only the replacements can deliver them) all arrive, in order."""
    sink: Endpoint = start_endpoint()
    with provider_with_workers(tmp_path, postgres_url, certs_dir, 2) as run:
        originals = wait_for(lambda: two_workers(run), "2 workers")
        for victim in sorted(originals):
            kill_and_see_replaced(run, victim)
        assert not run.workers() & originals
        assert run.log().count("ERROR webhook_kit.provider: delivery worker") == 2, run.log()

        api = requests.Session()
        api.trust_env = False  # REQUESTS_CA_BUNDLE would replace the CA given here
        api.verify, api.headers["apikey"] = run.process.info["ca_file"], "k"
        base = run.process.info["base_url"]
        auth = {"token_url": sink.info.token_url, "client_id": sink.info.client_id}
        auth["client_secret"] = sink.info.client_secret or ""
        settings: dict[str, Any] = {"url": sink.info.url, "auth": auth}
        assert api.post(f"{base}/webhook/settings", json=settings).status_code == 201
        ids = [api.post(f"{base}/validation").json()["data"]["id"] for _ in range(5)]
        for validation_id in ids:
            answer = api.put(f"{base}/validation/{validation_id}/cancellation")
            assert answer.status_code == 200, answer.text
        wait_for(lambda: len(sink.recorder.query()) >= 10, "every event delivered")
        for validation_id in ids:
            statuses = [r["status"] for r in sink.recorder.query(validation_id=validation_id)]
            assert statuses == ["on-course", "cancelled"]
        api.close()
        assert run.process.stop() == 0
    # Stopping is not a crash: nothing more logged as one, no worker started after it.
    assert run.log().count("ERROR") == 2, run.log()
    assert not any(alive(pid) for pid in run.seen)


def test_the_workers_of_a_killed_provider_stop(
    postgres_url: str, certs_dir: Path, tmp_path: Path
) -> None:
    with provider_with_workers(tmp_path, postgres_url, certs_dir, 2) as run:
        workers = wait_for(lambda: two_workers(run), "2 workers")
        run.process.kill()
        wait_for(
            lambda: not any(alive(pid) for pid in workers),
            "the workers of a SIGKILLed provider stopping",
        )
        # Each stopped as on SIGTERM, saying why.
        assert run.log().count("the provider that started this worker is gone") == 2


def test_only_a_worker_started_by_a_provider_stops_at_the_end_of_its_stdin(
    start_endpoint: Any, postgres_url: str, certs_dir: Path, tmp_path: Path
) -> None:
    """The end of stdin stops a worker given the provider's pipe; one started by hand, with
    /dev/null for stdin, goes on delivering until SIGTERM."""
    sink: Endpoint = start_endpoint()
    ca = str(certs_dir / "ca.pem")
    options: dict[str, Any] = {"concurrency": 4, "timeout": 5.0, "lease": 30.0}
    with Database(postgres_url) as db:
        db.put_settings(settings_document(sink.info.as_json()))
        by_hand = start_worker(
            tmp_path, postgres_url, ca, "by-hand", stdin=subprocess.DEVNULL, **options
        )
        piped: KitProcess | None = None
        try:
            piped = start_worker(
                tmp_path,
                postgres_url,
                ca,
                "piped",
                stdin=subprocess.PIPE,
                env={**os.environ, PARENT_PIPE_ENV: "1"},
                **options,
            )
            assert piped.process.stdin is not None
            piped.process.stdin.close()
            wait_for(lambda: piped.process.poll() is not None, "the piped worker stopping")
            assert piped.process.returncode == 0, piped.stderr_tail()

            events = [e for chain in lifecycles(3, 2, random.Random(7)) for e in chain]
            db.insert(events)
            db.wait_for_counts(lambda counts: counts.get("sent") == len(events), DEADLINE)
            assert by_hand.process.poll() is None
            assert "is gone" not in by_hand.stderr_tail()
        finally:
            if piped is not None:
                piped.kill()
            code = by_hand.stop()
    assert code == 0, by_hand.stderr_tail()
