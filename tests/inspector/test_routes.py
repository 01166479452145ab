"""The inspector's server side without a browser: page, assets, stream, export."""

from __future__ import annotations

import json
import re
import threading
from typing import Any

from tests.helpers import KitClient, notification
from webhook_kit.endpoint.service import Endpoint


def test_page_and_assets_are_local(client: KitClient) -> None:
    page = client.http.get(client.info.inspect_url, timeout=10)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    texts = [page.text]
    for name in ("inspector.js", "inspector.css"):
        asset = client.http.get(client.sink.urls.base + f"/_kit/assets/{name}", timeout=10)
        assert asset.status_code == 200
        texts.append(asset.text)
    for text in texts:
        assert not re.search(r"(src|href)=\"https?://", text)
        assert "cdn" not in text.lower()
    missing = client.http.get(client.sink.urls.base + "/_kit/assets/nope.js", timeout=10)
    assert missing.status_code == 404 and missing.json()["error_type"] == "not_found"


def test_stream_sends_new_requests_and_clears(start_endpoint: Any) -> None:
    sink: Endpoint = start_endpoint()
    kit = KitClient(sink)
    events: list[str] = []
    ready = threading.Event()

    def listen() -> None:
        with kit.http.get(sink.urls.base + "/_kit/stream", stream=True, timeout=10) as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            ready.set()
            for line in response.iter_lines(decode_unicode=True):
                assert isinstance(line, str)  # decode_unicode yields str for a text/* type
                if line.startswith("event: "):
                    events.append(line[7:])
                if line.startswith("data: ") and events and events[-1] == "request":
                    events.append(json.loads(line[6:])["status"])
                if events.count("clear"):
                    return

    thread = threading.Thread(target=listen, daemon=True)
    thread.start()
    # The handler subscribes before it sends the headers, so nothing posted now can be missed.
    assert ready.wait(10)
    kit.post(notification("deleted"))
    kit.http.delete(sink.urls.deliveries, headers={"X-Webhook-Kit": "1"}, timeout=10)
    thread.join(10)
    assert events == ["request", "deleted", "clear"]


def test_export_is_json_lines(client: KitClient) -> None:
    client.post(notification("confirmed"))
    export = client.http.get(client.sink.urls.base + "/_kit/deliveries.jsonl", timeout=10)
    assert export.headers["content-disposition"].startswith("attachment")
    lines = [json.loads(line) for line in export.text.splitlines()]
    assert lines and lines[-1]["status"] == "confirmed"
