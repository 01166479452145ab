"""Issue 10 on the delivery side: hostile receivers, a full database, files that are not
databases. Each test fails on the code before the fix."""

from __future__ import annotations

import asyncio
import base64
import os
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from tests.delivery.hostile import NON_UTF8_LOCATION, raw_server, redirect
from tests.delivery.test_dispatcher import drive, settings_for, target_for
from webhook_kit.contract import notifications
from webhook_kit.delivery.dispatcher import Dispatcher, Target
from webhook_kit.delivery.outcome import AttemptResult
from webhook_kit.delivery.policy import RetryPolicy
from webhook_kit.endpoint.service import Endpoint
from webhook_kit.errors import ConfigError, DuplicateEvent, StoreError
from webhook_kit.ids import new_id
from webhook_kit.serving.loop import run
from webhook_kit.storage.base import EventStore, Storage
from webhook_kit.storage.rows import AttemptRecord, Claim, NewEvent
from webhook_kit.storage.sqlite import SqliteStorage


def _body() -> NewEvent:
    return NewEvent.of(
        notifications.build("on-course", validation_id=new_id(), previous_status=None)
    )


async def _claimed(events: EventStore, n: int) -> list[Claim]:
    """``n`` new events (each its own validation), claimed for an attempt."""
    await events.insert([_body() for _ in range(n)])
    claims = await events.claim(time.time() + 1, n, 60.0, accounts=["default"])
    assert len(claims) == n
    return claims


def test_a_reason_that_is_not_utf8_does_not_drop_the_batch(tmp_path: Path) -> None:
    """Finding 10: one reason with a lone surrogate (a Location that was not UTF-8) made SQLite
    refuse the whole batch, other events' attempts included."""
    reasons = ["HTTP 500", "302 redirect to /\udcff\udcfe not followed", "HTTP 503"]

    async def scenario(storage: Storage) -> None:
        claims = await _claimed(storage.events, 3)
        for claim, reason in zip(claims, reasons, strict=True):
            result = AttemptResult("http_error", reason, 1.0)
            storage.events.complete(AttemptRecord(claim, 1, 2.0, result, "failed", None))
        stored = [(await storage.events.attempts(c.event_id)) for c in claims]
        assert [[a.reason for a in attempts] for attempts in stored] == [
            ["HTTP 500"],
            ["302 redirect to /\\udcff\\udcfe not followed"],
            ["HTTP 503"],
        ]

    drive(scenario, db=str(tmp_path / "s.db"))


def test_a_non_utf8_location_from_a_real_receiver_is_recorded(
    start_endpoint: Any, certs_dir: Path, tmp_path: Path
) -> None:
    """Finding 10, end to end: every event keeps its attempt, the Location is shown escaped."""
    sink: Endpoint = start_endpoint()
    with raw_server(redirect(NON_UTF8_LOCATION), certs_dir=certs_dir) as port:
        info = sink.info
        target = Target(f"https://127.0.0.1:{port}/webhook", target_for(sink).oauth)
        assert info.ca_file is not None

        async def scenario(storage: Storage) -> None:
            settings = settings_for(sink, policy=RetryPolicy(schedule=()))
            async with Dispatcher(storage.events, settings, target=target) as d:
                ids = await d.enqueue_many(
                    notifications.build("on-course", validation_id=new_id(), previous_status=None)
                    for _ in range(5)
                )
                assert await d.wait_idle(30)
            for event_id in ids:
                attempts = await storage.events.attempts(event_id)
                assert len(attempts) == 1, event_id
                assert attempts[0].outcome == "redirect"
                assert (
                    attempts[0].reason
                    == "302 redirect to /moved/\\udcff\\udcfe\\udcc3( not followed"
                )
                row = await storage.events.event(event_id)
                assert row is not None and row.state == "failed"

        drive(scenario, db=str(tmp_path / "d.db"))


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
    with raw_server(redirect(location), certs_dir=certs_dir) as port:
        target = Target(f"https://127.0.0.1:{port}/webhook", target_for(sink).oauth)

        async def scenario(storage: Storage) -> str:
            settings = settings_for(sink, policy=RetryPolicy(schedule=()))
            async with Dispatcher(storage.events, settings, target=target) as d:
                event_id = await d.enqueue(
                    notifications.build("on-course", validation_id=new_id(), previous_status=None)
                )
                assert await d.wait_idle(30)
            return (await storage.events.attempts(event_id))[0].reason

        reason = drive(scenario, db=str(tmp_path / "e.db"))
    assert reason.startswith("302 redirect to /?auth=")
    assert basic.decode()[8:-4] not in reason and encoded.decode() not in reason
    assert "********" in reason


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def _close(storage: SqliteStorage) -> None:
    asyncio.run(storage.close())


def test_a_file_that_is_not_a_database_is_refused_before_its_mode_changes(
    tmp_path: Path,
) -> None:
    """Finding 14: ``--db`` made the file mode 0600 before checking what the file was."""
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\n")
    notes.chmod(0o644)
    with pytest.raises(ConfigError, match="not an SQLite database"):
        SqliteStorage.open(str(notes))
    assert _mode(notes) == 0o644 and notes.read_text() == "my notes\n"

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo, 0o644)
    with pytest.raises(ConfigError, match="not a regular file"):
        SqliteStorage.open(str(fifo))
    assert _mode(fifo) == 0o644
    assert not (tmp_path / "pipe.lock").exists()

    fresh = tmp_path / "fresh.db"
    _close(SqliteStorage.open(str(fresh)))
    assert _mode(fresh) == 0o600


def test_a_second_store_on_one_file_is_refused_until_the_first_closes(tmp_path: Path) -> None:
    """Finding 5 (the lock itself; tests/provider has the two-process test)."""
    path = str(tmp_path / "one.db")
    first = SqliteStorage.open(path)
    with pytest.raises(ConfigError, match=f"pid {os.getpid()}"):
        SqliteStorage.open(path)
    _close(first)
    _close(SqliteStorage.open(path))


def _sqlite_lock_is_held(path: Path) -> bool:
    """Whether another process is kept from SQLite's lock bytes of ``path`` (the 512 bytes at
    1 GiB, where a connection in WAL mode holds a read lock for as long as it is open)."""
    probe = (
        "import fcntl, os, sys\n"
        "fd = os.open(sys.argv[1], os.O_RDWR)\n"
        "try:\n"
        "    fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 512, 1 << 30)\n"
        "except OSError:\n"
        "    sys.exit(3)\n"
    )
    result = subprocess.run([sys.executable, "-c", probe, str(path)], timeout=30)
    assert result.returncode in (0, 3)
    return result.returncode == 3


def test_a_second_store_on_a_hard_link_is_refused_and_the_first_keeps_its_locks(
    tmp_path: Path,
) -> None:
    """The lock was on the file's name: a hard link opened the same database a second time.
    Refusing it must not drop the first store's SQLite locks (closing any descriptor of a file
    drops all of the process's fcntl locks on it)."""
    path, link = tmp_path / "one.db", tmp_path / "hard.db"
    first = SqliteStorage.open(str(path))
    os.link(path, link)
    assert _sqlite_lock_is_held(path)
    with pytest.raises(ConfigError, match=f"hard.db is in use by .* \\(pid {os.getpid()}\\)"):
        SqliteStorage.open(str(link))
    assert _sqlite_lock_is_held(path)

    async def write_and_read() -> None:
        await first.events.insert([_body()])
        assert await first.events.counts() == {"pending": 1}

    asyncio.run(write_and_read())
    _close(first)
    assert not _sqlite_lock_is_held(path)
    _close(SqliteStorage.open(str(link)))  # free again once closed, under either name


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
    path = str(tmp_path / "full.db")
    count = 300

    async def scenario() -> None:
        storage = SqliteStorage.open(path)
        settings = settings_for(sink, concurrency=2, policy=RetryPolicy(schedule=()))
        async with Dispatcher(storage.events, settings, target=target_for(sink)) as d:
            await d.enqueue_many(
                notifications.build("on-course", validation_id=new_id(), previous_status=None)
                for _ in range(count)
            )
            # The database may grow by no page from now on: attempts soon cannot be written.
            pages = storage._db.execute("PRAGMA page_count").fetchone()[0]
            storage._db.execute(f"PRAGMA max_page_count = {pages}")
            deadline = asyncio.get_running_loop().time() + 30
            while storage.events.writable:
                assert asyncio.get_running_loop().time() < deadline, "the database never filled"
                await asyncio.sleep(0.01)
            held_at = len(sink.recorder.query())
            await asyncio.sleep(1.5)  # the retry timer fires in between: still full
            assert len(sink.recorder.query()) <= held_at + 2  # at most what was in flight
            assert held_at < count
            storage._db.execute("PRAGMA max_page_count = 1073741823")
            assert await d.wait_idle(60)
        assert await storage.events.counts() == {"sent": count}
        await storage.close()

    run(scenario())
    assert len(sink.recorder.query()) == count

    async def restart(storage: Storage) -> None:
        async with Dispatcher(storage.events, settings_for(sink), target=target_for(sink)):
            assert await storage.events.outstanding() == 0

    drive(restart, db=path)
    assert len(sink.recorder.query()) == count  # nothing went out twice


def test_storage_errors_are_store_errors(tmp_path: Path) -> None:
    async def scenario() -> None:
        storage = SqliteStorage.open(str(tmp_path / "small.db"))
        pages = storage._db.execute("PRAGMA page_count").fetchone()[0]
        storage._db.execute(f"PRAGMA max_page_count = {pages}")
        with pytest.raises(StoreError, match="full"):
            for _ in range(200):
                await storage.events.insert([_body()])
        # A caller's mistake stays what it is: a repeated event id, not a full database.
        storage._db.execute("PRAGMA max_page_count = 1073741823")
        body = _body()
        await storage.events.insert([body])
        with pytest.raises(DuplicateEvent, match="event_id"):
            await storage.events.insert([body])
        await storage.close()

    asyncio.run(scenario())


def test_credentials_basic_auth_cannot_encode_are_a_token_error_not_a_crash(
    start_endpoint: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Finding 16 for library users: a non-Latin-1 secret with client_secret_basic is
    form-encoded (RFC 6749 section 2.3.1) and sent; the endpoint refuses it as a wrong secret."""
    from webhook_kit.oauth.client import OAuthSettings

    sink: Endpoint = start_endpoint()
    info = sink.info
    target = Target(info.url, OAuthSettings(info.token_url, info.client_id, "s\u20acret"))

    async def scenario(storage: Storage) -> tuple[str, str]:
        settings = settings_for(sink, policy=RetryPolicy(schedule=()))
        async with Dispatcher(storage.events, settings, target=target) as d:
            event_id = await d.enqueue(
                notifications.build("on-course", validation_id=new_id(), previous_status=None)
            )
            assert await d.wait_idle(30)
        attempt = (await storage.events.attempts(event_id))[0]
        return attempt.outcome, attempt.reason

    outcome, reason = drive(scenario, db=str(tmp_path / "c.db"))
    assert outcome == "token_error"
    assert "invalid_client" in reason
    assert not [r for r in caplog.records if r.exc_info]
