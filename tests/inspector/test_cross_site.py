"""Issue 10 #17 in a real browser: another page cannot change /_kit, nor read it by rebinding."""

from __future__ import annotations

from typing import Any

import pytest

from tests.helpers import KitClient, notification
from tests.inspector.conftest import REBOUND_NAME
from webhook_kit.endpoint.service import Endpoint

# A real browser (Chromium, driven by Playwright).
pytestmark = pytest.mark.slow


def test_a_form_on_another_site_cannot_rotate_the_key(start_endpoint: Any, page: Any) -> None:
    target: Endpoint = start_endpoint()
    other: Endpoint = start_endpoint()  # any other origin the browser has open
    kid = target.issuer.key.kid
    page.goto(other.info.inspect_url)
    with page.expect_navigation():
        page.evaluate(
            """url => {
                const form = document.createElement("form");
                form.method = "POST";
                form.action = url;
                document.body.append(form);
                form.submit();
            }""",
            target.urls.base + "/_kit/rotate-key",
        )
    assert "cross_site_refused" in page.content()
    assert target.issuer.key.kid == kid


def test_a_rebound_name_cannot_read_the_deliveries(start_endpoint: Any, page: Any) -> None:
    sink: Endpoint = start_endpoint()
    body = notification()
    KitClient(sink).post(body)
    port = sink.sock.getsockname()[1]
    response = page.goto(f"https://{REBOUND_NAME}:{port}/_kit/deliveries")
    assert response is not None and response.status == 403
    assert "forbidden_host" in page.content() and body["event_id"] not in page.content()


def test_the_page_itself_still_clears(start_endpoint: Any, page: Any) -> None:
    sink: Endpoint = start_endpoint()
    KitClient(sink).post(notification())
    page.goto(sink.info.inspect_url)
    page.wait_for_selector("details.row")
    page.click("#clear")
    page.wait_for_selector("#list .empty")
    assert sink.recorder.count() == 0
