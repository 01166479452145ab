"""The inspector page in a real browser: live rows, filters, reasons, grouping, keyboard, export."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.helpers import KitClient, claims_for, notification, sign
from webhook_kit.endpoint.service import Endpoint

# A real browser (Chromium, driven by Playwright).
pytestmark = pytest.mark.slow


def wait_count(page: Any, selector: str, count: int) -> None:
    """Wait until ``count`` elements match. Playwright's locator assertion polls from its own
    side; ``wait_for_function`` with a string needs eval, which the page's CSP forbids."""
    from playwright.sync_api import expect

    expect(page.locator(selector)).to_have_count(count, timeout=15_000)


def open_live(page: Any, sink: Endpoint) -> None:
    page.goto(sink.info.inspect_url)
    page.wait_for_selector("#connection.live")


def rows(page: Any) -> list[str]:
    return [r.get_attribute("data-status") for r in page.query_selector_all("details.row")]


@pytest.mark.parametrize("server", ["uvicorn", "hypercorn"])
def test_requests_appear_live_newest_first(start_endpoint: Any, page: Any, server: str) -> None:
    sink: Endpoint = start_endpoint(server=server)
    open_live(page, sink)
    kit = KitClient(sink)
    token = kit.token()
    for status in ("on-course", "document-uploaded", "selfie-uploaded"):
        kit.post(notification(status), token=token)
    wait_count(page, "details.row", 3)
    assert rows(page) == ["selfie-uploaded", "document-uploaded", "on-course"]
    assert page.evaluate("performance.getEntriesByType('navigation').length") == 1  # no reload
    assert "3 shown of 3 received" in page.inner_text("#summary")


def test_filters_hide_the_others(start_endpoint: Any, page: Any) -> None:
    sink: Endpoint = start_endpoint()
    kit = KitClient(sink)
    token = kit.token()
    kit.post(notification("on-course"), token=token)
    kit.post(notification("deleted"), token=token)
    kit.post(notification("deleted"), token=None)
    open_live(page, sink)
    wait_count(page, "details.row", 3)
    page.select_option("#filter-status", "deleted")
    assert rows(page) == ["deleted", "deleted"]
    page.select_option("#filter-result", "rejected")
    assert len(rows(page)) == 1
    assert "rejected" in page.inner_text("details.row")
    page.select_option("#filter-status", "")
    page.select_option("#filter-result", "accepted")
    assert sorted(rows(page)) == ["deleted", "on-course"]


def test_rejected_requests_show_their_reason(start_endpoint: Any, page: Any) -> None:
    sink: Endpoint = start_endpoint()
    open_live(page, sink)
    kit = KitClient(sink)
    now = int(time.time())
    expired = sign(claims_for(sink, iat=now - 600, nbf=now - 600, exp=now - 60), sink.issuer.key)
    kit.post(notification("on-course"), token=expired)
    no_scores = notification("selfie-uploaded")
    del no_scores["scores"]
    kit.post(no_scores)
    wait_count(page, "details.row.rejected", 2)
    reasons = page.locator("details.row .reason").all_inner_texts()
    assert reasons == ["422 scores missing", "401 expired token"]


def test_search_and_group_by_validation(start_endpoint: Any, page: Any) -> None:
    sink: Endpoint = start_endpoint()
    kit = KitClient(sink)
    token = kit.token()
    for status in ("on-course", "document-uploaded", "cancelled"):
        kit.post(notification(status, validation_id="val-alpha"), token=token)
    kit.post(notification("on-course", validation_id="val-beta"), token=token)
    open_live(page, sink)
    wait_count(page, "details.row", 4)
    page.fill("#search", "alpha")
    assert rows(page) == ["cancelled", "document-uploaded", "on-course"]
    page.fill("#search", "")
    page.check("#group")
    groups = page.query_selector_all("section.group")
    assert sorted(g.get_attribute("data-validation") for g in groups) == ["val-alpha", "val-beta"]
    alpha = page.locator(
        'section.group[data-validation="val-alpha"] .timeline li'
    ).all_inner_texts()
    assert alpha == ["on-course", "document-uploaded", "cancelled"]  # in order, oldest first


def test_keyboard_opens_a_row_with_payload_and_masked_headers(
    start_endpoint: Any, page: Any
) -> None:
    sink: Endpoint = start_endpoint()
    kit = KitClient(sink)
    token = kit.token()
    body = notification("video-uploaded")
    kit.post(body, token=token)
    open_live(page, sink)
    page.wait_for_selector("details.row")
    page.focus("details.row summary")
    page.keyboard.press("Enter")
    page.wait_for_selector("details.row[open] pre.payload")
    payload = json.loads(page.inner_text("details.row pre.payload"))
    assert payload == body
    headers = json.loads(page.inner_text("details.row pre.headers"))
    assert headers["authorization"] == "Bearer ********"
    assert token not in page.content()


def test_duplicate_marker_clear_and_download(
    start_endpoint: Any, page: Any, tmp_path: Path
) -> None:
    sink: Endpoint = start_endpoint()
    kit = KitClient(sink)
    token = kit.token()
    body = notification("on-course")
    kit.post(body, token=token)
    kit.post(body, token=token)
    open_live(page, sink)
    wait_count(page, "details.row", 2)
    assert page.locator("details.row .badge.dup").count() == 1
    with page.expect_download() as download_info:
        page.click("#download")
    saved = tmp_path / "deliveries.jsonl"
    download_info.value.save_as(saved)
    lines = [json.loads(line) for line in saved.read_text().splitlines()]
    assert [line["event_id"] for line in lines] == [body["event_id"]] * 2
    page.click("#clear")
    page.wait_for_selector("#list .empty")
    assert sink.recorder.query() == []


def test_page_works_offline(start_endpoint: Any, page: Any) -> None:
    sink: Endpoint = start_endpoint()
    origin = urlsplit(sink.info.inspect_url).netloc
    foreign: list[str] = []

    def guard(route: Any) -> None:
        if urlsplit(route.request.url).netloc != origin:
            foreign.append(route.request.url)
            route.abort()
        else:
            route.continue_()

    page.route("**/*", guard)
    open_live(page, sink)
    KitClient(sink).post(notification("confirmed"))
    page.wait_for_selector("details.row")
    assert foreign == []
    styles = page.evaluate("getComputedStyle(document.querySelector('header')).display")
    assert styles == "flex"  # the stylesheet came from the package


def test_screenshots(start_endpoint: Any, browser: Any, artifacts: Path) -> None:
    """Writes the PNG artifacts: a laptop screen and a 400 px wide phone."""
    sink: Endpoint = start_endpoint()
    kit = KitClient(sink)
    token = kit.token()
    for status in ("on-course", "document-uploaded", "selfie-uploaded", "deleted"):
        kit.post(notification(status, validation_id="val-shot"), token=token)
    kit.post(notification("cancelled"), token=None)
    for name, width, height in (("inspector-laptop", 1366, 768), ("inspector-400px", 400, 860)):
        context = browser.new_context(viewport={"width": width, "height": height})
        page = context.new_page()
        open_live(page, sink)
        wait_count(page, "details.row", 5)
        scroll_width = page.evaluate("document.documentElement.scrollWidth")
        assert scroll_width <= width, f"{name}: content overflows horizontally ({scroll_width}px)"
        target = artifacts / f"{name}.png"
        page.screenshot(path=str(target), full_page=True)
        assert target.stat().st_size > 10_000 and target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        context.close()
