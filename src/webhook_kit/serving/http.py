"""HTTP helpers both of the kit's apps use (the endpoint and the provider API).

- Every error either app answers is JSON ``{"error_type", "error_message"}``, plus extra fields
  such as ``errors`` (field names, for a 422): :func:`error_response` builds it, and raising
  :class:`HttpError` in a handler is the usual way to get there.
- Request bodies are read with a bound (:func:`read_body`, :func:`limited` for the multipart
  parser) and parsed as strict JSON (``strict_json``; :func:`read_json`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse as StarletteJSONResponse
from starlette.responses import Response
from starlette.types import Message

from webhook_kit.serving.strict_json import PayloadError, parse_json

__all__ = [
    "EXCEPTION_HANDLERS",
    "HttpError",
    "JSONResponse",
    "PayloadError",
    "error_response",
    "limited",
    "media_type",
    "parse_json",
    "read_body",
    "read_json",
]


class HttpError(Exception):
    """Raised in a handler: answered as :func:`error_response` with these fields."""

    def __init__(
        self,
        status: int,
        error_type: str,
        message: str,
        *,
        headers: Mapping[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type
        self.message = message
        self.headers = headers
        self.extra = extra

    def response(self) -> JSONResponse:
        return error_response(
            self.status, self.error_type, self.message, self.headers, **self.extra
        )


class JSONResponse(StarletteJSONResponse):
    """Starlette's, except that text UTF-8 cannot carry (a lone surrogate stored by an earlier
    version, or echoed from a request) becomes U+FFFD instead of a 500."""

    def render(self, content: Any) -> bytes:
        try:
            return super().render(content)
        except UnicodeEncodeError:
            return super().render(_encodable(content))


_SURROGATE = re.compile("[\ud800-\udfff]")


def _encodable(value: Any) -> Any:
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value)
    if isinstance(value, dict):
        return {_encodable(k): _encodable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_encodable(v) for v in value]
    return value


def error_response(
    status: int,
    error_type: str,
    message: str,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    """The kit's one error body: ``{"error_type", "error_message", **extra}``."""
    body = {"error_type": error_type, "error_message": message, **extra}
    return JSONResponse(body, status_code=status, headers=headers)


_HTTP_ERROR_TYPES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed"}


async def _http_error(request: Request, exc: Exception) -> Response:
    # An HttpError no handler caught (they usually do, to record or log it) still answers as is.
    assert isinstance(exc, HttpError)
    return exc.response()


async def _http_exception(request: Request, exc: Exception) -> Response:
    # Starlette's own 404 and 405 (with its Allow header), as the kit's JSON error.
    assert isinstance(exc, HTTPException)
    error_type = _HTTP_ERROR_TYPES.get(exc.status_code, "http_error")
    return error_response(exc.status_code, error_type, str(exc.detail), exc.headers)


async def _server_error(request: Request, exc: Exception) -> Response:
    # A bug, never bad input; still answer JSON so a client sees a well-formed error.
    return error_response(500, "internal_error", f"unexpected {type(exc).__name__}")


#: For ``Starlette(exception_handlers=...)``: every answer of the app is the kit's JSON error.
EXCEPTION_HANDLERS = {
    HttpError: _http_error,
    HTTPException: _http_exception,
    Exception: _server_error,
}


def media_type(request: Request) -> str:
    """The Content-Type without its parameters, lower case ("" when there is none)."""
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


def _too_large(limit: int) -> HttpError:
    return HttpError(413, "payload_too_large", f"body exceeds {limit} bytes")


def _refuse_declared_length(request: Request, limit: int) -> None:
    """413 for a declared ``Content-Length`` above ``limit``, before anything is read."""
    declared = request.headers.get("content-length")
    if declared is None:
        return
    try:
        # int() refuses what no server sends (over 4,300 digits, '²'): a 400, never a 500.
        too_big = int(declared) > limit
    except ValueError as exc:
        raise HttpError(400, "invalid_request", "Content-Length is not a number") from exc
    if too_big:
        raise _too_large(limit)


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, or :class:`HttpError` 413 as soon as it passes ``limit`` bytes."""
    _refuse_declared_length(request, limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def limited(request: Request, limit: int) -> Request:
    """``request`` whose body stops being read once it passes ``limit`` bytes (413).

    For parsers that read the body themselves: Starlette's ``max_part_size`` bounds only a
    form's text fields, and file parts are spooled to disk whatever their size. Counting below
    the parser bounds the files too.
    """
    _refuse_declared_length(request, limit)
    received = 0

    async def receive() -> Message:
        nonlocal received
        message = await request.receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise _too_large(limit)
        return message

    return Request(request.scope, receive)


async def read_json(
    request: Request,
    limit: int,
    *,
    optional: bool = False,
    lone_surrogates: bool = False,
    unsupported: str = "send application/json",
) -> Any:
    """The body as strict JSON (see ``serving.strict_json``): 415 for another media type, 400
    ``invalid_json`` for a body that is not JSON or is nested too deep, 413 past ``limit``.

    ``optional``: an empty body is ``None``. ``lone_surrogates``: keep them in strings, for a
    caller that names the field holding one (a 422 says more than a 400).
    """
    body = await read_body(request, limit)
    if optional and not body.strip():
        return None
    if media_type(request) not in ("application/json", ""):
        raise HttpError(415, "unsupported_media_type", unsupported)
    try:
        return parse_json(body, lone_surrogates=lone_surrogates)
    except PayloadError as exc:
        raise HttpError(400, "invalid_json", f"body is not valid JSON: {exc}") from exc
