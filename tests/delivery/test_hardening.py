"""Issue 10 on the delivery side: hostile receivers, a full database, files that are not
databases. Each test fails on the code before the fix."""

from __future__ import annotations

import asyncio
import base64
import os
import sqlite3
import stat
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from tests.delivery.hostile import NON_UTF8_LOCATION, raw_server, redirect
from tests.delivery.test_dispatcher import settings_for, target_for
from webhook_kit.contract import notifications
from webhook_kit.delivery.dispatcher import Dispatcher, Target
from webhook_kit.delivery.outcome import AttemptResult
from webhook_kit.delivery.policy import RetryPolicy
from webhook_kit.delivery.store import AttemptRecord, Store
from webhook_kit.endpoint.service import Endpoint
from webhook_kit.errors import ConfigError
from webhook_kit.ids import new_id
from webhook_kit.serving.loop import run


def _events(store: Store, n: int) -> list[int]:
    bodies = [
        notifications.build("on-course", validation_id=new_id(), previous_status=None)
        for _ in range(n)
    ]
    return [store.insert_event(body, 1.0) for body in bodies]


def test_a_reason_that_is_not_utf8_does_not_drop_the_batch(tmp_path: Path) -> None:
    """Finding 10: one reason with a lone surrogate (a Location that was not UTF-8) made SQLite
    refuse the whole batch, other events' attempts included."""
    store = Store(tmp_path / "s.db")
    seqs = _events(store, 3)
    reasons = ["HTTP 500", "302 redirect to /\udcff\udcfe not followed", "HTTP 503"]
    store.record_attempts(
        [
            AttemptRecord(seq, "", 1, 2.0, AttemptResult("http_error", reason, 1.0), "failed", None)
            for seq, reason in zip(seqs, reasons, strict=True)
        ]
    )
    stored = [r[0] for r in store._db.execute("SELECT reason FROM attempts ORDER BY seq")]
    assert stored == ["HTTP 500", "302 redirect to /\\udcff\\udcfe not followed", "HTTP 503"]
    store.close()


def test_a_non_utf8_location_from_a_real_receiver_is_recorded(
    start_endpoint: Any, certs_dir: Path, tmp_path: Path
) -> None:
    """Finding 10, end to end: every event keeps its attempt, the Location is shown escaped."""
    sink: Endpoint = start_endpoint()
    store = Store(tmp_path / "d.db")
    with raw_server(redirect(NON_UTF8_LOCATION), certs_dir=certs_dir) as port:
        info = sink.info
        target = Target(f"https://127.0.0.1:{port}/webhook", target_for(sink).oauth)
        assert info.ca_file is not None

        async def scenario() -> list[str]:
            settings = settings_for(sink, policy=RetryPolicy(schedule=()))
            async with Dispatcher(store, settings, target=target) as d:
                ids = await d.enqueue_many(
                    notifications.build("on-course", validation_id=new_id(), previous_status=None)
                    for _ in range(5)
                )
                assert await d.wait_idle(30)
            return ids

        ids = run(scenario())
    for event_id in ids:
        attempts = store.attempts(event_id)
        assert len(attempts) == 1, event_id
        assert attempts[0]["outcome"] == "redirect"
        assert attempts[0]["reason"] == "302 redirect to /moved/\\udcff\\udcfe\\udcc3( not followed"
        assert store.event(event_id)["state"] == "failed"  # type: ignore[index]
    store.close()


def test_an_echoed_secret_in_any_encoding_is_not_stored(
    start_endpoint: Any, certs_dir: Path, tmp_path: Path
) -> None:
    """Finding 19: a receiver echoing the Basic credentials (base64 of client_id:secret) or the
    URL-encoded secret in its Location; the stored reason holds neither."""
    sink: Endpoint = start_endpoint(
        client_id="echo-client", client_secret="s3cret/Value=with:signs!"
    )
    info = sink.info
    basic = base64.b64encode(f"{info.client_id}:{info.client_secret}".encode())
    encoded = quote(info.client_secret, safe="").encode()
    location = b"/?auth=" + basic + b"&s=" + encoded
    store = Store(tmp_path / "e.db")
    with raw_server(redirect(location), certs_dir=certs_dir) as port:
        target = Target(f"https://127.0.0.1:{port}/webhook", target_for(sink).oauth)

        async def scenario() -> str:
            settings = settings_for(sink, policy=RetryPolicy(schedule=()))
            async with Dispatcher(store, settings, target=target) as d:
                event_id = await d.enqueue(
                    notifications.build("on-course", validation_id=new_id(), previous_status=None)
                )
                assert await d.wait_idle(30)
            return event_id

        event_id = run(scenario())
    reason = store.attempts(event_id)[0]["reason"]
    assert reason.startswith("302 redirect to /?auth=")
    assert basic.decode()[8:-4] not in reason and encoded.decode() not in reason
    assert "********" in reason
    store.close()


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_a_file_that_is_not_a_database_is_refused_before_its_mode_changes(
    tmp_path: Path,
) -> None:
    """Finding 14: ``--db`` made the file mode 0600 before checking what the file was."""
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\n")
    notes.chmod(0o644)
    with pytest.raises(ConfigError, match="not an SQLite database"):
        Store(notes)
    assert _mode(notes) == 0o644 and notes.read_text() == "my notes\n"

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo, 0o644)
    with pytest.raises(ConfigError, match="not a regular file"):
        Store(fifo)
    assert _mode(fifo) == 0o644
    assert not (tmp_path / "pipe.lock").exists()

    fresh = tmp_path / "fresh.db"
    Store(fresh).close()
    assert _mode(fresh) == 0o600


def test_a_second_store_on_one_file_is_refused_until_the_first_closes(tmp_path: Path) -> None:
    """Finding 5 (the lock itself; tests/provider has the two-process test)."""
    path = tmp_path / "one.db"
    first = Store(path)
    with pytest.raises(ConfigError, match=f"pid {os.getpid()}"):
        Store(path)
    first.close()
    Store(path).close()


@pytest.mark.slow
def test_a_full_database_holds_deliveries_and_loses_no_completion(
    start_endpoint: Any, tmp_path: Path
) -> None:
    """Finding 15: when attempts cannot be written (the database is full), deliveries stop until
    they can; then the held attempts are written, and a restart sends nothing again.

    Before the fix the batch was dropped and deliveries went on: every event delivered while
    the disk was full went out again after a restart.
    """
    sink: Endpoint = start_endpoint()
    path = tmp_path / "full.db"
    store = Store(path)
    count = 300

    async def scenario() -> None:
        settings = settings_for(sink, concurrency=2, policy=RetryPolicy(schedule=()))
        async with Dispatcher(store, settings, target=target_for(sink)) as d:
            await d.enqueue_many(
                notifications.build("on-course", validation_id=new_id(), previous_status=None)
                for _ in range(count)
            )
            # The database may grow by no page from now on: attempts soon cannot be written.
            pages = store._db.execute("PRAGMA page_count").fetchone()[0]
            store._db.execute(f"PRAGMA max_page_count = {pages}")
            deadline = asyncio.get_running_loop().time() + 30
            while not d._store_failing:
                assert asyncio.get_running_loop().time() < deadline, "the database never filled"
                await asyncio.sleep(0.01)
            held_at = len(sink.recorder.query())
            await asyncio.sleep(1.5)  # the retry timer fires in between: still full
            assert len(sink.recorder.query()) <= held_at + 2  # at most what was in flight
            assert held_at < count
            store._db.execute("PRAGMA max_page_count = 1073741823")
            assert await d.wait_idle(60)

    run(scenario())
    assert store.counts() == {"sent": count}
    assert len(sink.recorder.query()) == count
    store.close()

    async def restart() -> None:
        async with Dispatcher(Store(path), settings_for(sink), target=target_for(sink)) as d:
            assert d.queued == 0

    run(restart())
    assert len(sink.recorder.query()) == count  # nothing went out twice


def test_storage_errors_are_store_errors(tmp_path: Path) -> None:
    from webhook_kit.errors import StoreError

    store = Store(tmp_path / "small.db")
    pages = store._db.execute("PRAGMA page_count").fetchone()[0]
    store._db.execute(f"PRAGMA max_page_count = {pages}")
    with pytest.raises(StoreError, match="full"):
        _events(store, 200)
    with pytest.raises(sqlite3.IntegrityError):  # a caller's mistake stays what it is
        store._db.execute("PRAGMA max_page_count = 1073741823")
        body = notifications.build("on-course", validation_id="v", previous_status=None)
        store.insert_event(body, 1.0)
        store.insert_event(body, 1.0)
    store.close()


def test_credentials_basic_auth_cannot_encode_are_a_token_error_not_a_crash(
    start_endpoint: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Finding 16 for library users: a non-Latin-1 secret with client_secret_basic is
    form-encoded (RFC 6749 section 2.3.1) and sent; the endpoint refuses it as a wrong secret."""
    from webhook_kit.oauth.client import OAuthSettings

    sink: Endpoint = start_endpoint()
    info = sink.info
    target = Target(info.url, OAuthSettings(info.token_url, info.client_id, "s\u20acret"))
    store = Store(tmp_path / "c.db")

    async def scenario() -> str:
        settings = settings_for(sink, policy=RetryPolicy(schedule=()))
        async with Dispatcher(store, settings, target=target) as d:
            event_id = await d.enqueue(
                notifications.build("on-course", validation_id=new_id(), previous_status=None)
            )
            assert await d.wait_idle(30)
        return event_id

    attempt = store.attempts(run(scenario()))[0]
    assert attempt["outcome"] == "token_error"
    assert "invalid_client" in attempt["reason"]
    assert not [r for r in caplog.records if r.exc_info]
    store.close()
