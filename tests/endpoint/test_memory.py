"""Issue 10 #2: nobody without a token can make the endpoint keep unbounded memory."""

from __future__ import annotations

import json
import socket
import ssl
import time
from collections.abc import Callable
from typing import Any

from tests.helpers import KitClient, notification
from webhook_kit.endpoint.app import RECORDED_BODY_LIMIT
from webhook_kit.endpoint.inspector import live
from webhook_kit.endpoint.recorder import RECORD_OVERHEAD, Recorder, encode

#: The issue's body: 64 KiB of small JSON objects (about 1.5 MiB once parsed).
SMALL_OBJECTS = json.dumps([{"a": i} for i in range(6_500)]).encode()[: 64 * 1024 - 1]
SMALL_OBJECTS = SMALL_OBJECTS[: SMALL_OBJECTS.rindex(b"}") + 1] + b"]"


def test_a_refused_body_is_kept_as_bounded_text(start_endpoint: Any) -> None:
    sink = start_endpoint()
    kit = KitClient(sink)
    assert len(SMALL_OBJECTS) > 60_000
    assert kit.post(data=SMALL_OBJECTS, token=None).status_code == 401
    stored = sink.recorder.select()[-1]
    assert "body" not in stored and "_body_json" not in stored
    assert len(stored["body_text"]) == RECORDED_BODY_LIMIT
    assert sink.recorder.bytes_kept < RECORDED_BODY_LIMIT + 2 * RECORD_OVERHEAD + 4096


def test_many_refused_bodies_stay_within_the_byte_budget() -> None:
    recorder = Recorder(keep=100_000, max_bytes=1_000_000)
    for _ in range(500):
        recorder.add({"accepted": False, "body_text": "x" * RECORDED_BODY_LIMIT})
    assert recorder.bytes_kept <= 1_000_000
    per_record = RECORDED_BODY_LIMIT + RECORD_OVERHEAD
    assert 1_000_000 // per_record - 2 <= recorder.count() <= 1_000_000 // per_record
    assert [r["id"] for r in recorder.query()][-1] == 500  # the newest are the ones kept


def test_bodies_are_kept_compact_and_parsed_only_when_asked() -> None:
    recorder = Recorder()
    body = {"items": [{"a": i} for i in range(1000)]}
    recorder.add({"accepted": True, "body": body})
    stored = recorder.select()[0]
    assert isinstance(stored["_body_json"], bytes) and "body" not in stored
    assert recorder.query()[0]["body"] == body
    assert json.loads(encode(stored))["body"] == body


def test_the_newest_record_is_kept_even_alone_over_budget() -> None:
    recorder = Recorder(max_bytes=10)
    recorder.add({"body_text": "a" * 100})
    recorder.add({"body_text": "b" * 100})
    assert [r["body_text"][0] for r in recorder.query()] == ["b"]


def test_seen_keys_are_bounded_and_long_keys_hashed() -> None:
    from webhook_kit.endpoint import recorder as module

    recorder = Recorder(keep=10)
    long_key = "k" * 100_000
    recorder.add({"accepted": True, "idempotency_key": long_key})
    assert recorder.is_duplicate(long_key) and not recorder.is_duplicate("k" * 99_999)
    assert all(len(k) < 300 for k in recorder._seen)
    assert module.SEEN_LIMIT <= 100_000


def test_huge_headers_are_cut_short(start_endpoint: Any) -> None:
    sink = start_endpoint()
    kit = KitClient(sink)
    headers = {f"X-H{i}": "v" * 5000 for i in range(80)}
    assert kit.post(token=None, headers=headers).status_code == 401
    kept = sink.recorder.select()[-1]["headers"]
    assert len(kept) <= 65 and max(len(v) for v in kept.values()) <= 2051


def wait_until(condition: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def _stalled_stream(sink: Any) -> ssl.SSLSocket:
    """A stream reader that sends its request and then never reads."""
    ctx = ssl.create_default_context(cafile=sink.info.ca_file)
    raw = socket.create_connection(("127.0.0.1", sink.sock.getsockname()[1]))
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    conn = ctx.wrap_socket(raw, server_hostname="127.0.0.1")
    conn.sendall(b"GET /_kit/stream HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    return conn


def test_a_stalled_stream_reader_is_dropped_not_buffered(start_endpoint: Any) -> None:
    sink = start_endpoint()
    inspector = sink.app.state.inspector
    conn = _stalled_stream(sink)
    try:
        wait_until(lambda: inspector.readers == 1)  # subscribed
        kit = KitClient(sink)
        token = kit.token()
        padding = "p" * 200_000
        sent = 0
        # Loopback socket buffers absorb a few MiB before the server's queue grows at all.
        while inspector.readers and sent < 400:
            assert kit.post(notification(padding=padding), token=token).status_code == 200
            sent += 1
        assert inspector.readers == 0, "the stalled reader was never dropped"
        assert sink.recorder._listeners == []  # nothing is queued for it any more
    finally:
        conn.close()


def test_stream_readers_are_capped(start_endpoint: Any) -> None:
    sink = start_endpoint()
    inspector = sink.app.state.inspector
    conns = [_stalled_stream(sink) for _ in range(live.MAX_READERS)]
    try:
        wait_until(lambda: inspector.readers == live.MAX_READERS)
        response = KitClient(sink).http.get(sink.urls.base + "/_kit/stream", timeout=10)
        assert response.status_code == 503
        assert response.json()["error_type"] == "too_many_streams"
    finally:
        for conn in conns:
            conn.close()


def test_streams_closed_at_once_give_their_places_back(start_endpoint: Any) -> None:
    sink = start_endpoint()
    inspector = sink.app.state.inspector
    for _ in range(live.MAX_READERS * 3):
        _stalled_stream(sink).close()
    wait_until(lambda: inspector.readers == 0 and sink.recorder._listeners == [])
    with KitClient(sink).http.get(sink.urls.base + "/_kit/stream", stream=True, timeout=10) as r:
        assert r.status_code == 200
