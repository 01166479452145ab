"""Issue 10 #13 and #16: one crafted request or record-file line must not cause lasting 500s."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from tests.helpers import KitClient, notification
from webhook_kit.cli import main
from webhook_kit.endpoint.recorder import Recorder
from webhook_kit.serving.strict_json import MAX_DEPTH, PayloadError, parse_json

LONE_SURROGATE_EVENT = (
    b'{"event_id": "evt-\\ud800", "status": "on-course", "validation_id": "v"}'  # JSON escape
)


def deliveries(kit: KitClient) -> Any:
    response = kit.http.get(kit.sink.urls.deliveries, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


@pytest.mark.parametrize("server", ["uvicorn", "hypercorn"])
def test_lone_surrogate_from_a_stranger_does_not_break_the_deliveries(
    start_endpoint: Any, server: str
) -> None:
    kit = KitClient(start_endpoint(server=server))
    refused = kit.post(data=LONE_SURROGATE_EVENT, token=None)
    assert refused.status_code == 401
    listed = deliveries(kit)
    assert listed["count"] == 1 and listed["deliveries"][0]["reason"].startswith("401")
    assert "\\ud800" in listed["deliveries"][0]["body_text"]  # kept, as the text it was
    assert kit.http.get(kit.sink.urls.base + "/_kit/deliveries.jsonl", timeout=10).ok
    assert kit.post(notification()).status_code == 200  # and the endpoint carries on
    assert deliveries(kit)["count"] == 2


def test_lone_surrogate_with_a_token_is_400_naming_it(start_endpoint: Any) -> None:
    kit = KitClient(start_endpoint())
    response = kit.post(data=LONE_SURROGATE_EVENT)
    assert response.status_code == 400
    error = response.json()
    assert error["error_type"] == "invalid_json" and "surrogate" in error["error_message"]
    assert deliveries(kit)["deliveries"][0]["http_status"] == 400


@pytest.mark.slow
@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 5_000, 100_000])
def test_deep_nesting_is_400_and_recorded(start_endpoint: Any, depth: int) -> None:
    kit = KitClient(start_endpoint())
    body = notification()
    text = json.dumps(body)[:-1] + ', "extra": ' + "[" * depth + "]" * depth + "}"
    response = kit.post(data=text.encode())
    assert response.status_code == 400, response.text
    assert f"nested deeper than {MAX_DEPTH}" in response.json()["error_message"]
    listed = deliveries(kit)
    assert listed["count"] == 1 and listed["deliveries"][0]["http_status"] == 400


def test_unauthenticated_deep_nesting_is_recorded(start_endpoint: Any) -> None:
    kit = KitClient(start_endpoint())
    assert kit.post(data=b"[" * 100_000 + b"]" * 100_000, token=None).status_code == 401
    assert deliveries(kit)["count"] == 1


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b'{"a": 1e400}', "out of range"),
        (b'{"a": -1e400}', "out of range"),
        (b'{"a": NaN}', "NaN"),
        (b'{"a": "\\udc00"}', "surrogate"),
        (b'{"\\ud800": 1}', "surrogate"),
        (b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1), "nested"),
        (b"1" * 5000, "digits"),
        (b'{"a": "\xff"}', "UTF-8"),
    ],
)
def test_parse_json_refuses_with_a_reason(body: bytes, problem: str) -> None:
    with pytest.raises(PayloadError, match=problem):
        parse_json(body)


def test_parse_json_keeps_what_is_fine() -> None:
    assert parse_json(b'{"a": "\\ud83d\\ude00", "b": 1.5}') == {"a": "\U0001f600", "b": 1.5}
    depth = MAX_DEPTH
    assert parse_json(b"[" * depth + b"]" * depth) is not None


HOSTILE_LINES = [
    '{"id": 1e400, "accepted": true}',
    '{"id": 2, "body": {"x": 1e400}}',
    '{"id": 3, "event_id": "\\ud800"}',
    '{"id": 4, "body": ' + "[" * 5000 + "]" * 5000 + "}",
    '{"id": ' + "9" * 5000 + "}",
    '{"id": true}',
    '{"id": "5"}',
    '{"id": -1}',
    "[1, 2]",
    "null",
    '"just a string"',
    "\x00\x01garbage",
    '{"id": 6, "headers": {"a": [1]}, "status": 7, "accepted": "yes"}',
]


def test_hostile_record_lines_are_skipped_and_start_succeeds(
    start_endpoint: Any, tmp_path: Path
) -> None:
    record = tmp_path / "deliveries.jsonl"
    good = '{"id": 7, "accepted": true, "status": "on-course", "idempotency_key": "k"}'
    record.write_bytes(("\n".join([*HOSTILE_LINES, good]) + "\n").encode("utf-8", "surrogatepass"))
    sink = start_endpoint(record_file=record)
    assert sink.recorder.skipped_lines == len(HOSTILE_LINES) - 1  # the last one is repaired
    kit = KitClient(sink)
    listed = deliveries(kit)
    repaired = [d for d in listed["deliveries"] if d["id"] == 6][0]
    assert "headers" not in repaired and "status" not in repaired and "accepted" not in repaired
    assert sink.recorder.is_duplicate("k")
    assert kit.post(notification()).json()["received"] is True
    assert deliveries(kit)["deliveries"][-1]["id"] == 8


def test_an_overlong_record_line_is_skipped(tmp_path: Path) -> None:
    record = tmp_path / "deliveries.jsonl"
    record.write_bytes(b'{"id": 1, "x": "' + b"a" * 10_000 + b'"}\n{"id": 2}\n{"id": 3}')
    loaded = Recorder(path=record, max_line_bytes=1024)
    assert [r["id"] for r in loaded.query()] == [2, 3]
    assert loaded.skipped_lines == 1
    loaded.close()


@pytest.mark.parametrize("keep", ["1000000000000000000000000000000", "1000001", "0", "-5"])
def test_a_huge_or_tiny_keep_is_a_usage_error(keep: str) -> None:
    result = CliRunner().invoke(main, ["serve", "--port", "0", "--keep", keep])
    assert result.exit_code == 2, result.output
    assert "--keep" in result.output and "Traceback" not in result.output
