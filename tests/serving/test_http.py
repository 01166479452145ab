"""The HTTP helpers both apps share, over a real HTTPS server: the one JSON error body, the
bounded body reader and strict JSON reading."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from webhook_kit.serving.http import (
    EXCEPTION_HANDLERS,
    HttpError,
    JSONResponse,
    error_response,
    read_body,
    read_json,
)
from webhook_kit.testing import serve_app

LIMIT = 1000
JSON_LIMIT = 256 * 1024


async def refuse(request: Request) -> Response:
    raise HttpError(409, "busy", "try later", headers={"Retry-After": "5"}, errors=["x"])


async def answer(request: Request) -> Response:
    return error_response(422, "invalid", "see errors", errors=[{"field": "a"}])


async def echo_size(request: Request) -> Response:
    return JSONResponse({"size": len(await read_body(request, LIMIT))})


async def echo_json(request: Request) -> Response:
    optional = "optional" in request.query_params
    return JSONResponse({"value": await read_json(request, JSON_LIMIT, optional=optional)})


async def echo_text(request: Request) -> Response:
    value = await read_json(request, LIMIT, lone_surrogates=True)
    return JSONResponse({"value": value})


async def bug(request: Request) -> Response:
    raise RuntimeError("a bug")


@pytest.fixture(scope="module")
def base(certs_dir: Path) -> Iterator[tuple[str, requests.Session, str]]:
    app = Starlette(
        routes=[
            Route("/refuse", refuse),
            Route("/answer", answer),
            Route("/size", echo_size, methods=["POST"]),
            Route("/json", echo_json, methods=["POST"]),
            Route("/text", echo_text, methods=["POST"]),
            Route("/bug", bug),
        ],
        exception_handlers=EXCEPTION_HANDLERS,
    )
    with serve_app(app, certs_dir=certs_dir) as served, requests.Session() as http:
        yield served.base_url, http, str(served.ca_file)


Base = tuple[str, requests.Session, str]


def call(base: Base, method: str, path: str, **kw: Any) -> Any:
    url, http, ca_file = base
    # A server that refuses a body before reading it closes the connection after answering;
    # a pooled connection reused after that reads as RemoteDisconnected. These tests are about
    # answers, not keep-alive: one connection per request.
    headers = {"Connection": "close", **kw.pop("headers", {})}
    # Per request: REQUESTS_CA_BUNDLE in the environment would override the session's verify.
    return http.request(method, url + path, timeout=10, verify=ca_file, headers=headers, **kw)


def test_an_uncaught_http_error_is_its_json_answer(base: Base) -> None:
    response = call(base, "GET", "/refuse")
    assert response.status_code == 409
    assert response.headers["retry-after"] == "5"
    assert response.json() == {"error_type": "busy", "error_message": "try later", "errors": ["x"]}


def test_error_response_carries_extra_fields(base: Base) -> None:
    response = call(base, "GET", "/answer")
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/json"
    assert response.json()["errors"] == [{"field": "a"}]


@pytest.mark.parametrize(
    ("method", "path", "status", "error_type"),
    [
        ("GET", "/nowhere", 404, "not_found"),
        ("GET", "/size", 405, "method_not_allowed"),
        ("GET", "/bug", 500, "internal_error"),
    ],
)
def test_starlette_errors_and_bugs_answer_the_same_shape(
    base: Base, method: str, path: str, status: int, error_type: str
) -> None:
    response = call(base, method, path)
    assert response.status_code == status
    body = response.json()
    assert body["error_type"] == error_type and isinstance(body["error_message"], str)
    assert "a bug" not in response.text  # a bug's message stays on the server


def test_the_body_reader_stops_at_its_limit(base: Base) -> None:
    assert call(base, "POST", "/size", data=b"x" * LIMIT).json() == {"size": LIMIT}
    declared = call(base, "POST", "/size", data=b"x" * (LIMIT + 1))
    streamed = call(base, "POST", "/size", data=iter([b"x" * 600, b"x" * 600]))  # chunked
    for response in (declared, streamed):
        assert response.status_code == 413
        assert response.json() == {
            "error_type": "payload_too_large",
            "error_message": f"body exceeds {LIMIT} bytes",
        }


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 65 + b"]" * 65,
        b"[" * 100_000 + b"]" * 100_000,
        b"[NaN]",
        b"[1e400]",
        b'["\\ud800"]',
        b"{",
    ],
)
def test_json_that_cannot_be_kept_is_400(base: Base, body: bytes) -> None:
    response = call(base, "POST", "/json", data=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 400, response.text
    assert response.json()["error_type"] == "invalid_json"
    assert response.json()["error_message"].startswith("body is not valid JSON: ")


def test_json_reading_rules(base: Base) -> None:
    json_type = {"Content-Type": "application/json"}
    assert call(base, "POST", "/json", data=b"[[1]]", headers=json_type).json() == {"value": [[1]]}
    assert call(base, "POST", "/json?optional", data=b" ").json() == {"value": None}
    assert call(base, "POST", "/json", data=b" ", headers=json_type).status_code == 400
    wrong = call(base, "POST", "/json", data=b"[1]", headers={"Content-Type": "text/plain"})
    assert wrong.status_code == 415
    assert wrong.json()["error_type"] == "unsupported_media_type"


def test_a_kept_lone_surrogate_is_answered_as_the_replacement_character(
    base: Base,
) -> None:
    response = call(
        base, "POST", "/text", data=b'["a\\ud800"]', headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"value": ["a\ufffd"]}
