"""The webhook route: content checks, duplicates, recording and inspection, on both servers."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.helpers import KitClient, notification
from webhook_kit.contract.statuses import STATUSES


@pytest.mark.parametrize("status", STATUSES)
def test_every_status_is_accepted(client: KitClient, status: str) -> None:
    response = client.post(notification(status))
    assert response.status_code == 200, response.text


def test_charset_parameter_is_accepted(client: KitClient) -> None:
    response = client.post(
        notification(), headers={"Content-Type": "application/json; charset=utf-8"}
    )
    assert response.status_code == 200


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", ""])
def test_non_json_content_type_is_415(client: KitClient, content_type: str) -> None:
    response = client.post(notification(), headers={"Content-Type": content_type})
    assert response.status_code == 415
    assert response.json()["error_type"] == "unsupported_media_type"


def test_non_utf8_charset_is_415(client: KitClient) -> None:
    response = client.post(
        notification(), headers={"Content-Type": "application/json; charset=latin-1"}
    )
    assert response.status_code == 415
    assert "latin-1" in response.json()["error_message"]


def test_malformed_json_is_400(client: KitClient) -> None:
    response = client.post(data=b'{"event_id": ')
    assert response.status_code == 400
    assert response.json()["error_type"] == "invalid_json"


def test_invalid_utf8_is_400(client: KitClient) -> None:
    response = client.post(data=b'{"a": "\xff"}')
    assert response.status_code == 400


def test_schema_invalid_is_422_naming_the_path(client: KitClient) -> None:
    body = notification("selfie-uploaded", scores=[{"name": "ValidasScoreSelfie", "value": 1.7}])
    response = client.post(body)
    assert response.status_code == 422
    error = response.json()
    assert error["error_type"] == "invalid_notification"
    assert error["errors"][0]["field"] == "/scores/0/value"
    assert "/scores/0/value" in error["error_message"]


def test_missing_scores_is_422(client: KitClient) -> None:
    body = notification("video-uploaded")
    del body["scores"]
    response = client.post(body)
    assert response.status_code == 422
    assert "scores" in response.json()["error_message"]


def test_scores_on_a_status_without_scores_is_422(client: KitClient) -> None:
    body = notification("cancelled", scores=[{"name": "ValidasScoreSelfie", "value": 0.5}])
    response = client.post(body)
    assert response.status_code == 422
    assert "absent" in response.json()["error_message"]


def test_unknown_status_is_422_naming_status(client: KitClient) -> None:
    response = client.post(notification(status="approved"))
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "/status"


def test_legacy_alias_is_refused_by_default(client: KitClient) -> None:
    body = notification("document2-uploaded")
    body["status"] = "documen2-uploaded"
    assert client.post(body).status_code == 422


def test_json_array_is_422(client: KitClient) -> None:
    assert client.post(data=b"[1, 2]").status_code == 422


def test_unknown_fields_are_ignored(client: KitClient) -> None:
    assert client.post(notification(extra={"nested": True}, test=True)).status_code == 200


def test_body_over_the_limit_is_413(start_endpoint: object) -> None:
    sink = start_endpoint(max_body=512)  # type: ignore[operator]
    kit = KitClient(sink)
    body = notification(padding="x" * 1000)
    response = kit.post(body)
    assert response.status_code == 413
    assert response.json()["error_type"] == "payload_too_large"


def test_chunked_body_over_the_limit_is_413(start_endpoint: object) -> None:
    sink = start_endpoint(max_body=512)  # type: ignore[operator]
    kit = KitClient(sink)
    token = kit.token()

    def chunks() -> Iterator[bytes]:
        for _ in range(10):
            yield b"x" * 100

    response = kit.http.post(
        sink.info.url,
        data=chunks(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        timeout=10,
    )
    assert response.status_code == 413


def test_duplicate_webhook_id_is_recorded_and_still_2xx(client: KitClient) -> None:
    body = notification()
    headers = {"Webhook-Id": body["event_id"]}
    first = client.post(body, headers=headers)
    second = client.post(body, headers=headers)
    assert first.status_code == second.status_code == 200
    assert first.json()["duplicate"] is False
    assert second.json()["duplicate"] is True
    records = client.sink.recorder.query(validation_id=body["validation_id"])
    assert [r["duplicate"] for r in records] == [False, True]


def test_duplicate_by_event_id_without_header(client: KitClient) -> None:
    body = notification()
    client.post(body)
    assert client.post(body).json()["duplicate"] is True


def test_deliveries_api_filters_and_clears(start_endpoint: object) -> None:
    sink = start_endpoint()  # type: ignore[operator]
    kit = KitClient(sink)
    kit.post(notification("on-course"))
    kit.post(notification("deleted"))
    kit.post(notification("deleted"), token="bad.token.value")
    deliveries = sink.urls.deliveries

    everything = kit.http.get(deliveries, timeout=10).json()
    assert everything["count"] == 3
    deleted = kit.http.get(deliveries, params={"status": "deleted"}, timeout=10).json()
    assert deleted["count"] == 2
    rejected = kit.http.get(deliveries, params={"accepted": "false"}, timeout=10).json()
    assert rejected["count"] == 1
    assert rejected["deliveries"][0]["reason"].startswith("401 ")
    assert rejected["deliveries"][0]["headers"]["authorization"] == "Bearer ********"
    also_rejected = kit.http.get(deliveries, params={"rejected": "true"}, timeout=10).json()
    assert also_rejected["count"] == 1
    bad = kit.http.get(deliveries, params={"accepted": "maybe"}, timeout=10)
    assert bad.status_code == 400 and bad.json()["error_type"] == "bad_request"

    cleared = kit.http.delete(deliveries, headers={"X-Webhook-Kit": "1"}, timeout=10).json()
    assert cleared == {"cleared": 3}
    assert kit.http.get(deliveries, timeout=10).json()["count"] == 0


def test_authorization_is_never_recorded(client: KitClient) -> None:
    token = client.token()
    client.post(notification(), token=token)
    dumped = json.dumps(client.sink.recorder.query())
    assert token not in dumped
    assert client.info.client_secret not in dumped


def test_unknown_route_and_wrong_method_answer_json(client: KitClient) -> None:
    missing = client.http.get(client.sink.urls.base + "/nope", timeout=10)
    assert missing.status_code == 404 and missing.json()["error_type"] == "not_found"
    wrong = client.http.get(client.info.url, timeout=10)
    assert wrong.status_code == 405 and wrong.json()["error_type"] == "method_not_allowed"


def test_record_file_survives_restart(start_endpoint: object, tmp_path: object) -> None:
    from pathlib import Path

    record = Path(str(tmp_path)) / "deliveries.jsonl"
    first = start_endpoint(record_file=record)  # type: ignore[operator]
    body = notification()
    KitClient(first).post(body)
    lines = record.read_text().splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["event_id"] == body["event_id"]
    record.write_text(record.read_text() + '{"truncated by a crash\n')

    second = start_endpoint(record_file=record)  # type: ignore[operator]
    assert second.recorder.skipped_lines == 1
    kit = KitClient(second)
    assert kit.post(body).json()["duplicate"] is True
    history = kit.http.get(second.urls.deliveries, timeout=10).json()
    assert [d["id"] for d in history["deliveries"]] == [1, 2]


def test_legacy_statuses_option(start_endpoint: object) -> None:
    sink = start_endpoint(legacy_statuses=True)  # type: ignore[operator]
    body = notification("document2-uploaded")
    body["status"] = "documen2-uploaded"
    assert KitClient(sink).post(body).status_code == 200
