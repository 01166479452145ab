"""The provider API over real HTTPS, delivering through the dispatcher to the kit's endpoint."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.provider.helpers import ProviderClient, stored_settings
from webhook_kit.contract.statuses import STATUSES
from webhook_kit.endpoint.service import Endpoint
from webhook_kit.provider.openapi import build_openapi

# A provider and an endpoint started and stopped for each test (about 0.7 s each).
pytestmark = pytest.mark.slow

OPENAPI_COPY = Path(__file__).resolve().parents[2] / "src/webhook_kit/provider/openapi.json"


@pytest.fixture
def setup(start_endpoint: Any, start_provider: Any) -> Iterator[tuple[Endpoint, ProviderClient]]:
    client = ProviderClient(start_provider())
    yield start_endpoint(), client
    client.http.close()


def test_apikey_is_required(setup: tuple[Endpoint, ProviderClient]) -> None:
    _, api = setup
    for key in (None, "wrong"):
        headers = {} if key is None else {"apikey": key}
        api.http.headers.pop("apikey", None)
        response = api.http.get(api.base + "/webhook/settings", headers=headers, timeout=10)
        assert response.status_code == 401
        assert response.json()["error_type"] == "unauthorized"


def test_settings_lifecycle_with_masked_secret(setup: tuple[Endpoint, ProviderClient]) -> None:
    sink, api = setup
    assert api.call("GET", "/webhook/settings").status_code == 404
    created = api.configure(sink)
    assert created.status_code == 201
    assert sink.info.client_secret not in created.text
    read = api.call("GET", "/webhook/settings")
    assert read.status_code == 200
    body = read.json()["data"]
    assert body["auth"]["client_secret"] == "********"
    assert body["auth"]["client_auth_method"] == "client_secret_basic"
    assert sink.info.client_secret not in read.text

    update = {
        "url": sink.info.url,
        "enabled": False,
        "auth": {k: v for k, v in body["auth"].items() if k != "client_secret"},
    }
    updated = api.call("PUT", "/webhook/settings", json=update)
    assert updated.status_code == 200 and updated.json()["data"]["enabled"] is False
    # The secret was kept, not replaced by the mask.
    stored = stored_settings(api.provider)
    assert stored is not None and stored["auth"]["client_secret"] == sink.info.client_secret

    assert api.call("DELETE", "/webhook/settings").status_code == 204
    assert api.call("DELETE", "/webhook/settings").status_code == 404
    assert api.call("PUT", "/webhook/settings", json=update).status_code == 404


@pytest.mark.parametrize(
    "change,field",
    [
        ({"url": "http://127.0.0.1/webhook"}, "url"),
        ({"auth": {"client_id": "a", "client_secret": "b"}}, "auth.token_url"),
        (
            {"auth": {"token_url": "http://x/token", "client_id": "a", "client_secret": "b"}},
            "auth.token_url",
        ),
        ({"colour": "blue"}, "colour"),
        ({"enabled": "yes"}, "enabled"),
        (
            {"auth": {"token_url": "https://x/t", "client_id": 7, "client_secret": "b"}},
            "auth.client_id",
        ),
        ({"url": "https://"}, "url"),
    ],
)
def test_bad_settings_are_422_naming_the_field(
    setup: tuple[Endpoint, ProviderClient], change: dict[str, Any], field: str
) -> None:
    sink, api = setup
    response = api.configure(sink, **change)
    assert response.status_code == 422, response.text
    error = response.json()
    assert error["error_type"] == "invalid_settings"
    assert field in [e["field"] for e in error["errors"]]


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"\xff\xfe",
        b"",
        # Strict JSON, as the endpoint reads it: no NaN or infinity, at most 64 levels deep.
        b'{"enabled": NaN}',
        b'{"enabled": 1e400}',
        b"[" * 65 + b"]" * 65,
    ],
)
def test_non_json_bodies_are_400(setup: tuple[Endpoint, ProviderClient], body: bytes) -> None:
    _, api = setup
    response = api.call(
        "POST", "/webhook/settings", data=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["error_type"] == "invalid_json"


def test_event_endpoints_409_until_enabled(setup: tuple[Endpoint, ProviderClient]) -> None:
    sink, api = setup
    paths = [
        "/webhook/events",
        "/webhook/events/x",
        "/webhook/validations?sent=true",
        "/validation/x/events",
    ]
    for path in paths:
        response = api.call("GET", path)
        assert (
            response.status_code == 409
            and response.json()["error_type"] == "webhook_not_configured"
        )
    api.configure(sink, enabled=False)
    response = api.call("GET", "/webhook/events")
    assert response.status_code == 409 and response.json()["error_type"] == "webhook_not_enabled"


def test_webhook_test_returns_a_trace(setup: tuple[Endpoint, ProviderClient]) -> None:
    sink, api = setup
    assert api.call("POST", "/webhook/test").status_code == 409
    api.configure(sink)
    trace = api.call("POST", "/webhook/test").json()["data"]
    assert trace["ok"] is True
    assert [s["step"] for s in trace["steps"]] == ["token", "tls", "delivery"]
    assert "TLSv1." in trace["steps"][1]["detail"]
    received = sink.recorder.query()[-1]
    assert received["body"]["test"] is True and received["accepted"]


def test_webhook_test_reports_a_wrong_secret(setup: tuple[Endpoint, ProviderClient]) -> None:
    sink, api = setup
    info = sink.info
    api.configure(
        sink,
        auth={
            "token_url": info.token_url,
            "client_id": info.client_id,
            "client_secret": "not-the-secret",
        },
    )
    response = api.call("POST", "/webhook/test")
    trace = response.json()["data"]
    assert trace["ok"] is False
    assert trace["steps"][0]["step"] == "token" and "401" in trace["steps"][0]["detail"]
    assert "not-the-secret" not in response.text


def test_full_lifecycle_events_and_queries(setup: tuple[Endpoint, ProviderClient]) -> None:
    sink, api = setup
    api.configure(sink)
    validation_id = api.new_validation()
    statuses = api.drive_all(validation_id)
    assert statuses == list(STATUSES[1:6])
    assert (
        api.call("PUT", f"/validation/{validation_id}/confirmation").json()["data"]["status"]
        == "confirmed"
    )
    assert api.call("DELETE", f"/validation/{validation_id}").json()["data"]["status"] == "deleted"
    sink.recorder.wait_for(
        lambda r: len([x for x in r if x.get("validation_id") == validation_id]) == 8, 30
    )

    events = api.call("GET", f"/validation/{validation_id}/events").json()["data"]
    expected = ["on-course", *STATUSES[1:6], "confirmed", "deleted"]
    assert [e["status"] for e in events] == expected
    assert [e["notification"]["previous_status"] for e in events] == [None, *expected[:-1]]
    for event in events:
        for score in event["notification"].get("scores", []):
            assert 0 <= score["value"] <= 1

    first = api.call("GET", f"/webhook/events/{events[0]['event_id']}").json()["data"]
    assert first["attempts"][0]["outcome"] == "success"
    assert api.call("GET", "/webhook/events/nope").status_code == 404

    by_status = api.call("GET", "/webhook/events", params={"status": "deleted"}).json()["data"]
    assert [e["validation_id"] for e in by_status] == [validation_id]
    page1 = api.call("GET", "/webhook/events", params={"limit": 3}).json()
    page2 = api.call(
        "GET", "/webhook/events", params={"limit": 3, "cursor": page1["next_cursor"]}
    ).json()
    assert len(page1["data"]) == 3 and len(page2["data"]) == 3
    assert not {e["event_id"] for e in page1["data"]} & {e["event_id"] for e in page2["data"]}
    assert api.call("GET", "/webhook/events", params={"cursor": "bogus"}).status_code == 400
    future = api.call("GET", "/webhook/events", params={"since": "2999-01-01T00:00:00Z"}).json()
    assert future["data"] == []
    assert api.call("GET", "/webhook/events", params={"until": "yesterday"}).status_code == 400

    wait_all_sent(api, validation_id)
    sent = api.call("GET", "/webhook/validations", params={"sent": "true"}).json()["data"]
    assert [v["validation_id"] for v in sent] == [validation_id]
    assert api.call("GET", "/webhook/validations", params={"sent": "false"}).json()["data"] == []
    assert api.call("GET", "/webhook/events", params={"sent": "false"}).json()["data"] == []


def wait_all_sent(api: ProviderClient, validation_id: str) -> None:
    import time

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        events = api.call("GET", f"/validation/{validation_id}/events").json()["data"]
        if all(e["state"] == "sent" for e in events):
            return
        time.sleep(0.05)
    raise AssertionError("events not all sent in time")


def test_changes_after_a_final_state_are_409(setup: tuple[Endpoint, ProviderClient]) -> None:
    sink, api = setup
    api.configure(sink)
    validation_id = api.new_validation()
    assert api.call("PUT", f"/validation/{validation_id}/cancellation").status_code == 200
    for method, path, kw in (
        ("PUT", "confirmation", {}),
        ("PUT", "selfie", {"files": {"image": ("s.jpg", b"x")}}),
        ("PUT", "document", {"files": {"documentImage": ("d.jpg", b"x")}}),
    ):
        response = api.call(method, f"/validation/{validation_id}/{path}", **kw)
        assert response.status_code == 409 and response.json()["error_type"] == "validation_final"
    assert api.call("DELETE", f"/validation/{validation_id}").status_code == 200
    again = api.call("DELETE", f"/validation/{validation_id}")
    assert again.status_code == 409 and again.json()["error_type"] == "validation_deleted"


def test_a_fourth_document_is_409(setup: tuple[Endpoint, ProviderClient]) -> None:
    sink, api = setup
    validation_id = api.new_validation()
    for _ in range(3):
        assert (
            api.call(
                "PUT", f"/validation/{validation_id}/document", json={"documentImage": "aGk="}
            ).status_code
            == 200
        )
    response = api.call(
        "PUT", f"/validation/{validation_id}/document", json={"documentImage": "aGk="}
    )
    assert response.status_code == 409 and response.json()["error_type"] == "too_many_documents"


def test_uploads_need_their_file(setup: tuple[Endpoint, ProviderClient]) -> None:
    _, api = setup
    validation_id = api.new_validation()
    wrong_field = api.call(
        "PUT", f"/validation/{validation_id}/selfie", files={"documentImage": ("x", b"x")}
    )
    assert wrong_field.status_code == 422 and wrong_field.json()["errors"][0]["field"] == "image"
    empty = api.call("PUT", f"/validation/{validation_id}/video", files={"video": ("v.mp4", b"")})
    assert empty.status_code == 422
    no_json_field = api.call(
        "PUT", f"/validation/{validation_id}/document", json={"documentType": "IDCARD"}
    )
    assert no_json_field.status_code == 422
    assert api.call("GET", f"/validation/{validation_id}").json()["data"]["status"] == "on-course"


def test_unknown_validation_is_404(setup: tuple[Endpoint, ProviderClient]) -> None:
    sink, api = setup
    api.configure(sink)
    for method, path in (
        ("PUT", "/validation/nope/cancellation"),
        ("DELETE", "/validation/nope"),
        ("GET", "/validation/nope"),
        ("GET", "/validation/nope/events"),
    ):
        response = api.call(method, path)
        assert (
            response.status_code == 404 and response.json()["error_type"] == "validation_not_found"
        )


def test_events_are_held_while_not_configured_and_delivered_after(
    setup: tuple[Endpoint, ProviderClient],
) -> None:
    sink, api = setup
    validation_id = api.new_validation()
    api.call("PUT", f"/validation/{validation_id}/cancellation")
    assert sink.recorder.query() == []
    api.configure(sink)
    records = sink.recorder.wait_for(lambda r: len(r) == 2, 30)
    assert [r["status"] for r in records] == ["on-course", "cancelled"]


def test_redelivery_of_one_event_and_of_failed_ones(
    start_endpoint: Any, start_provider: Any
) -> None:
    from webhook_kit.delivery.policy import RetryPolicy
    from webhook_kit.endpoint.settings import FaultRule, FaultSettings

    sink = start_endpoint(faults=FaultSettings(respond=(FaultRule.parse("deleted=500x1"),)))
    api = ProviderClient(start_provider(policy=RetryPolicy(schedule=())))
    api.configure(sink)
    validation_id = api.new_validation()
    api.call("DELETE", f"/validation/{validation_id}")
    sink.recorder.wait_for(lambda r: len(r) == 2, 30)
    failed = wait_for_events(api, {"sent": "false"}, 1)
    assert failed[0]["state"] == "failed" and failed[0]["attempts"][0]["http_status"] == 500

    result = api.call("POST", "/webhook/events/redelivery", params={"status": "deleted"})
    assert result.status_code == 202 and result.json()["data"]["redelivered"] == 1
    sink.recorder.wait_for(lambda r: len(r) == 3, 30)
    wait_all_sent(api, validation_id)

    on_course = api.call("GET", f"/validation/{validation_id}/events").json()["data"][0]
    again = api.call("POST", f"/webhook/events/{on_course['event_id']}/redelivery")
    assert again.status_code == 202
    records = sink.recorder.wait_for(lambda r: len(r) == 4, 30)
    assert records[-1]["event_id"] == on_course["event_id"] and records[-1]["duplicate"] is True
    assert api.call("POST", "/webhook/events/nope/redelivery").status_code == 404


def wait_for_events(
    api: ProviderClient, params: dict[str, str], count: int
) -> list[dict[str, Any]]:
    import time

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        data: list[dict[str, Any]] = api.call("GET", "/webhook/events", params=params).json()[
            "data"
        ]
        if len(data) >= count and all(e["state"] in ("sent", "failed") for e in data):
            return data
        time.sleep(0.05)
    raise AssertionError(f"no {count} finished events for {params}")


def test_bad_query_parameters_are_400(setup: tuple[Endpoint, ProviderClient]) -> None:
    sink, api = setup
    api.configure(sink)
    for params in ({"sent": "maybe"}, {"status": "approved"}, {"limit": "0"}, {"limit": "x"}):
        response = api.call("GET", "/webhook/events", params=params)
        assert response.status_code == 400 and response.json()["error_type"] == "invalid_parameter"
    assert api.call("GET", "/webhook/validations").status_code == 400


def test_openapi_is_served_and_the_repository_copy_is_current(
    setup: tuple[Endpoint, ProviderClient],
) -> None:
    _, api = setup
    served = api.http.get(api.base + "/openapi.json", headers={"apikey": ""}, timeout=10).json()
    assert served == build_openapi()
    assert json.loads(OPENAPI_COPY.read_text()) == served
    from openapi_spec_validator import validate

    validate(served)
    documented = {path for path in served["paths"]}
    for path in (
        "/webhook/settings",
        "/webhook/test",
        "/webhook/events",
        "/webhook/events/{event_id}",
        "/webhook/validations",
        "/validation/{validation_id}/events",
        "/webhook/events/{event_id}/redelivery",
        "/validation",
        "/validation/{validation_id}/document",
    ):
        assert path in documented


def test_unknown_route_is_json_404(setup: tuple[Endpoint, ProviderClient]) -> None:
    _, api = setup
    response = api.call("GET", "/nothing/here")
    assert response.status_code == 404 and response.json()["error_type"] == "not_found"


def test_410_disables_the_webhook_until_it_is_enabled_again(
    start_endpoint: Any, start_provider: Any
) -> None:
    import time

    from webhook_kit.endpoint.settings import FaultRule, FaultSettings

    sink = start_endpoint(faults=FaultSettings(respond=(FaultRule.parse("*=410x1"),)))
    api = ProviderClient(start_provider())
    api.configure(sink)
    validation_id = api.new_validation()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        settings = api.call("GET", "/webhook/settings").json()["data"]
        if not settings["enabled"]:
            break
        time.sleep(0.05)
    assert settings["enabled"] is False and "410" in settings["disabled_reason"]
    refused = api.call("GET", "/webhook/events")
    assert refused.status_code == 409 and "410" in refused.json()["error_message"]

    update = {
        "url": settings["url"],
        "enabled": True,
        "auth": {k: v for k, v in settings["auth"].items() if k != "client_secret"},
    }
    assert api.call("PUT", "/webhook/settings", json=update).status_code == 200
    wait_all_sent(api, validation_id)  # the held event goes out once the webhook is enabled
    assert [r["http_status"] for r in sink.recorder.query()] == [410, 200]
    api.http.close()
