"""The provider API under ``/validas/v1``: settings, test, events, validations.

Handlers are thin: check the key, parse, call the store or the dispatcher, answer. Every error is
``{"error_type", "error_message"}`` (plus ``errors`` with field names for 422) and a 4xx status.
"""

from __future__ import annotations

import hmac
import json
import logging
import random
import re
import sqlite3
import time
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse as StarletteJSONResponse
from starlette.responses import Response
from starlette.routing import Mount, Route
from starlette.types import Message

from webhook_kit.contract import notifications
from webhook_kit.contract.statuses import STATUSES
from webhook_kit.delivery.dispatcher import Dispatcher
from webhook_kit.delivery.store import EventFilter, Store
from webhook_kit.errors import ConfigError, StoreError
from webhook_kit.ids import new_id
from webhook_kit.provider import views, webhook_settings
from webhook_kit.provider.lifecycle import Change, LifecycleError, State, apply
from webhook_kit.provider.openapi import build_openapi
from webhook_kit.provider.probe import run_test

log = logging.getLogger("webhook_kit.provider")

BASE_PATH = "/validas/v1"
MAX_BODY = 1024 * 1024
MAX_UPLOAD = 20 * 1024 * 1024
#: A whole multipart body: one file of MAX_UPLOAD plus the other fields and the framing.
MAX_FORM = MAX_UPLOAD + 256 * 1024
#: The multipart file field each upload takes, as the real service names it.
UPLOAD_FIELDS: dict[Change, str] = {
    "document": "documentImage",
    "selfie": "image",
    "video": "video",
}

CHANGE_ROUTES: tuple[tuple[str, Change], ...] = (
    ("document", "document"),
    ("selfie", "selfie"),
    ("video", "video"),
    ("cancellation", "cancellation"),
    ("confirmation", "confirmation"),
)

Handler = Callable[[Request], Awaitable[Response]]


class ApiError(Exception):
    def __init__(self, status: int, error_type: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type
        self.message = message
        self.extra = extra


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


def _error(exc: ApiError) -> JSONResponse:
    body = {"error_type": exc.error_type, "error_message": exc.message, **exc.extra}
    return JSONResponse(body, status_code=exc.status)


class ProviderApi:
    def __init__(
        self,
        *,
        store: Store,
        dispatcher: Dispatcher,
        apikey: str,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        self.store = store
        self.dispatcher = dispatcher
        self.apikey = apikey
        self.clock = clock
        self.rng = rng or random.Random()

    def guarded(self, handler: Handler) -> Handler:
        """Check the ``apikey`` header, then turn :class:`ApiError` into its JSON answer."""

        async def endpoint(request: Request) -> Response:
            given = request.headers.get("apikey", "")
            if not hmac.compare_digest(given.encode(), self.apikey.encode()):
                return _error(ApiError(401, "unauthorized", "missing or wrong apikey header"))
            try:
                return await handler(request)
            except ApiError as exc:
                return _error(exc)
            except LifecycleError as exc:
                return _error(ApiError(409, exc.error_type, exc.message))
            except (StoreError, sqlite3.Error) as exc:
                # A full disk or an I/O error: the client may try again later; no traceback.
                log.error("storage error on %s %s: %s", request.method, request.url.path, exc)
                return _error(
                    ApiError(
                        503,
                        "storage_unavailable",
                        "the provider's database cannot take the change now "
                        "(is its disk full?); nothing was changed, try again later",
                    )
                )

        return endpoint

    # -- helpers -------------------------------------------------------------------------------

    async def _json(self, request: Request, *, optional: bool = False) -> Any:
        body = await _read(request, MAX_BODY)
        if not body.strip() and optional:
            return None
        media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media_type not in ("application/json", ""):
            raise ApiError(415, "unsupported_media_type", "send application/json")
        try:
            return json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise ApiError(400, "invalid_json", f"body is not valid JSON: {exc}") from exc

    def _require_enabled(self) -> None:
        # Every event endpoint passes here: make the latest attempts visible to the query.
        self.dispatcher.flush()
        settings = self.store.settings()
        if settings is None:
            raise ApiError(409, "webhook_not_configured", "create the webhook settings first")
        if not settings["enabled"]:
            reason = settings.get("disabled_reason") or "enable it in the webhook settings"
            raise ApiError(409, "webhook_not_enabled", f"the webhook is not enabled: {reason}")

    def _apply_settings(self, settings: dict[str, Any] | None) -> None:
        if settings is None:
            log.info("webhook settings removed")
        else:
            log.info("webhook settings saved: %s", json.dumps(webhook_settings.masked(settings)))
        self.dispatcher.set_target(
            None
            if settings is None
            else webhook_settings.to_target(settings, self.dispatcher.settings.timeout)
        )

    # -- settings ------------------------------------------------------------------------------

    async def create_settings(self, request: Request) -> Response:
        document = await self._json(request)
        settings = self._validated(document)
        self.store.put_settings(settings, self.clock())
        self._apply_settings(settings)
        return JSONResponse({"data": webhook_settings.masked(settings)}, status_code=201)

    async def read_settings(self, request: Request) -> Response:
        settings = self.store.settings()
        if settings is None:
            raise ApiError(404, "webhook_not_configured", "no webhook settings yet")
        return JSONResponse({"data": webhook_settings.masked(settings)})

    async def update_settings(self, request: Request) -> Response:
        current = self.store.settings()
        if current is None:
            raise ApiError(404, "webhook_not_configured", "no webhook settings to update")
        document = await self._json(request)
        try:
            # The secret is write-only: an update may leave it out to keep the current one,
            # unless it changes where the secret goes.
            webhook_settings.keep_secret(document, current)
        except webhook_settings.SettingsInvalid as exc:
            raise ApiError(422, "invalid_settings", str(exc), errors=exc.errors) from exc
        settings = self._validated(document)
        self.store.put_settings(settings, self.clock())
        self._apply_settings(settings)
        return JSONResponse({"data": webhook_settings.masked(settings)})

    def _validated(self, document: Any) -> dict[str, Any]:
        try:
            return webhook_settings.validate(document)
        except webhook_settings.SettingsInvalid as exc:
            raise ApiError(422, "invalid_settings", str(exc), errors=exc.errors) from exc

    async def delete_settings(self, request: Request) -> Response:
        if not self.store.delete_settings():
            raise ApiError(404, "webhook_not_configured", "no webhook settings to delete")
        self._apply_settings(None)
        return Response(status_code=204)

    async def test(self, request: Request) -> Response:
        settings = self.store.settings()
        if settings is None:
            raise ApiError(409, "webhook_not_configured", "create the webhook settings first")
        try:
            target = webhook_settings.to_target(settings, self.dispatcher.settings.timeout)
        except ConfigError as exc:  # saved by an earlier version that checked less
            raise ApiError(
                409,
                "invalid_settings",
                f"the stored settings cannot be used ({exc}); save them again",
            ) from exc
        trace = await run_test(self.dispatcher, target)
        settings["last_test"] = {"ok": trace["ok"], "at": views.iso(self.clock())}
        self.store.put_settings(settings, self.clock())
        return JSONResponse({"data": trace})

    # -- events --------------------------------------------------------------------------------

    def _event_filter(self, request: Request) -> EventFilter:
        params = request.query_params
        return EventFilter(
            sent=_bool_param(params.get("sent"), "sent"),
            status=_status_param(params.get("status")),
            validation_id=params.get("validation_id"),
            since=_time_param(params.get("since"), "since"),
            until=_time_param(params.get("until"), "until"),
        )

    async def list_events(self, request: Request) -> Response:
        self._require_enabled()
        where = self._event_filter(request)
        limit = _limit_param(request.query_params.get("limit"))
        after = 0
        if "cursor" in request.query_params:
            try:
                after = views.decode_cursor(request.query_params["cursor"])
            except ValueError as exc:
                raise ApiError(400, "invalid_parameter", f"cursor: {exc}") from exc
        rows = self.store.events(where, after_seq=after, limit=limit + 1)
        page, more = rows[:limit], len(rows) > limit
        data = [views.event_view(r, self.store.attempts(r["event_id"])) for r in page]
        cursor = views.encode_cursor(page[-1]["seq"]) if more and page else None
        return JSONResponse({"data": data, "next_cursor": cursor})

    async def get_event(self, request: Request) -> Response:
        self._require_enabled()
        event_id = request.path_params["event_id"]
        row = self.store.event(event_id)
        if row is None:
            raise ApiError(404, "event_not_found", f"no event {event_id!r}")
        return JSONResponse({"data": views.event_view(row, self.store.attempts(event_id))})

    async def redeliver_event(self, request: Request) -> Response:
        self._require_enabled()
        event_id = request.path_params["event_id"]
        if self.store.event(event_id) is None:
            raise ApiError(404, "event_not_found", f"no event {event_id!r}")
        if not self.dispatcher.redeliver(event_id):
            raise ApiError(409, "event_queued", "the event is still queued for delivery")
        return JSONResponse({"data": {"event_id": event_id, "state": "pending"}}, status_code=202)

    async def redeliver_failed(self, request: Request) -> Response:
        self._require_enabled()
        base = self._event_filter(request)
        where = EventFilter(
            status=base.status,
            validation_id=base.validation_id,
            since=base.since,
            until=base.until,
            state="failed",
        )
        queued: list[str] = []
        after = 0
        while True:
            rows = self.store.events(where, after_seq=after, limit=500)
            if not rows:
                break
            for row in rows:
                if self.dispatcher.redeliver(row["event_id"]):
                    queued.append(row["event_id"])
            after = rows[-1]["seq"]
        return JSONResponse(
            {"data": {"redelivered": len(queued), "event_ids": queued}}, status_code=202
        )

    async def validations(self, request: Request) -> Response:
        self._require_enabled()
        sent = _bool_param(request.query_params.get("sent"), "sent")
        if sent is None:
            raise ApiError(400, "invalid_parameter", "sent=true or sent=false is required")
        limit = _limit_param(request.query_params.get("limit"))
        after = request.query_params.get("cursor", "")
        rows = self.store.validations_by_sent(sent, after=after, limit=limit + 1)
        page, more = rows[:limit], len(rows) > limit
        data = [
            {
                "validation_id": r["validation_id"],
                "events": r["events"],
                "sent": r["sent"],
                "not_sent": r["not_sent"],
            }
            for r in page
        ]
        cursor = page[-1]["validation_id"] if more and page else None
        return JSONResponse({"data": data, "next_cursor": cursor})

    async def validation_events(self, request: Request) -> Response:
        self._require_enabled()
        validation_id = request.path_params["validation_id"]
        if self.store.validation(validation_id) is None and not self.store.events(
            EventFilter(validation_id=validation_id), limit=1
        ):
            raise ApiError(404, "validation_not_found", f"no validation {validation_id!r}")
        rows = self.store.events(EventFilter(validation_id=validation_id), limit=10_000)
        data = [views.event_view(r, self.store.attempts(r["event_id"])) for r in rows]
        return JSONResponse({"data": data})

    # -- validations ---------------------------------------------------------------------------

    async def create_validation(self, request: Request) -> Response:
        await self._json(request, optional=True)
        validation_id = new_id()
        body = notifications.build(
            "on-course", validation_id=validation_id, previous_status=None, rng=self.rng
        )
        seq = self.store.save_validation(validation_id, "on-course", 0, self.clock(), body)
        self.dispatcher.queue_stored(seq, body)
        return JSONResponse(
            {"data": {"id": validation_id, "status": "on-course", "event_id": body["event_id"]}},
            status_code=201,
        )

    async def get_validation(self, request: Request) -> Response:
        row = self._validation(request)
        return JSONResponse({"data": views.validation_view(row)})

    def _validation(self, request: Request) -> Any:
        validation_id = request.path_params["validation_id"]
        row = self.store.validation(validation_id)
        if row is None:
            raise ApiError(404, "validation_not_found", f"no validation {validation_id!r}")
        return row

    def change(self, change: Change) -> Handler:
        async def handler(request: Request) -> Response:
            self._validation(request)  # 404 before reading an upload
            if change in UPLOAD_FIELDS:
                await self._check_upload(request, UPLOAD_FIELDS[change])
            row = self._validation(request)
            state = apply(State(row["status"], row["documents"]), change)
            body = notifications.build(
                state.status, validation_id=row["id"], previous_status=row["status"], rng=self.rng
            )
            seq = self.store.save_validation(
                row["id"], state.status, state.documents, self.clock(), body
            )
            self.dispatcher.queue_stored(seq, body)
            return JSONResponse(
                {"data": {"id": row["id"], "status": state.status, "event_id": body["event_id"]}}
            )

        return handler

    async def _check_upload(self, request: Request, field: str) -> None:
        media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media_type == "multipart/form-data":
            limited = _limited(request, MAX_FORM)
            try:
                form = await limited.form(max_files=4, max_fields=50, max_part_size=MAX_UPLOAD)
            except ApiError:
                raise
            except HTTPException as exc:
                raise ApiError(400, "invalid_multipart", str(exc.detail)) from exc
            except Exception as exc:  # python-multipart raises several unrelated types
                raise ApiError(400, "invalid_multipart", f"cannot parse the form: {exc}") from exc
            try:
                upload = form.get(field)
                if not isinstance(upload, UploadFile):
                    raise ApiError(
                        422,
                        "missing_file",
                        f"the file field {field!r} is required",
                        errors=[{"field": field, "message": "is required"}],
                    )
                if not await upload.read(1):
                    raise ApiError(
                        422,
                        "missing_file",
                        f"the file {field!r} is empty",
                        errors=[{"field": field, "message": "is empty"}],
                    )
            finally:
                await form.close()
            return
        document = await self._json(request)
        if not isinstance(document, dict) or not document.get(field):
            raise ApiError(
                422,
                "missing_file",
                f"the file field {field!r} is required",
                errors=[{"field": field, "message": "is required"}],
            )


def _too_large(limit: int) -> ApiError:
    return ApiError(413, "payload_too_large", f"body exceeds {limit} bytes")


def _limited(request: Request, limit: int) -> Request:
    """``request`` whose body stops being read once it passes ``limit`` bytes (413).

    Starlette's ``max_part_size`` bounds only the form's text fields; file parts are spooled to
    disk whatever their size. Counting below the parser bounds the files too, and a declared
    ``Content-Length`` above the limit is refused before anything is read.
    """
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
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


async def _read(request: Request, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _bool_param(value: str | None, name: str) -> bool | None:
    if value is None:
        return None
    if value.lower() in ("true", "1"):
        return True
    if value.lower() in ("false", "0"):
        return False
    raise ApiError(400, "invalid_parameter", f"{name} must be true or false")


def _status_param(value: str | None) -> str | None:
    if value is not None and value not in STATUSES:
        raise ApiError(400, "invalid_parameter", f"status must be one of {', '.join(STATUSES)}")
    return value


def _time_param(value: str | None, name: str) -> float | None:
    if value is None:
        return None
    try:
        return views.parse_time(value)
    except ValueError as exc:
        raise ApiError(400, "invalid_parameter", f"{name} must be an ISO 8601 date-time") from exc


def _limit_param(value: str | None) -> int:
    if value is None:
        return 100
    if not value.isdigit() or not 1 <= int(value) <= 500:
        raise ApiError(400, "invalid_parameter", "limit must be a whole number from 1 to 500")
    return int(value)


async def _not_found(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    kinds = {404: "not_found", 405: "method_not_allowed"}
    return JSONResponse(
        {"error_type": kinds.get(exc.status_code, "http_error"), "error_message": str(exc.detail)},
        status_code=exc.status_code,
        headers=exc.headers,
    )


async def _server_error(request: Request, exc: Exception) -> Response:
    return JSONResponse(
        {"error_type": "internal_error", "error_message": f"unexpected {type(exc).__name__}"},
        status_code=500,
    )


def create_provider_app(api: ProviderApi) -> Starlette:
    g = api.guarded
    openapi = json.dumps(build_openapi()).encode()

    async def openapi_json(request: Request) -> Response:
        return Response(openapi, media_type="application/json")

    async def health(request: Request) -> Response:
        return JSONResponse({"ok": True})

    routes = [
        Route("/openapi.json", openapi_json),
        Route("/webhook/settings", g(api.create_settings), methods=["POST"]),
        Route("/webhook/settings", g(api.read_settings), methods=["GET"]),
        Route("/webhook/settings", g(api.update_settings), methods=["PUT"]),
        Route("/webhook/settings", g(api.delete_settings), methods=["DELETE"]),
        Route("/webhook/test", g(api.test), methods=["POST"]),
        Route("/webhook/events", g(api.list_events), methods=["GET"]),
        Route("/webhook/events/redelivery", g(api.redeliver_failed), methods=["POST"]),
        Route("/webhook/events/{event_id}", g(api.get_event), methods=["GET"]),
        Route("/webhook/events/{event_id}/redelivery", g(api.redeliver_event), methods=["POST"]),
        Route("/webhook/validations", g(api.validations), methods=["GET"]),
        Route("/validation", g(api.create_validation), methods=["POST"]),
        Route("/validation/{validation_id}", g(api.get_validation), methods=["GET"]),
        Route("/validation/{validation_id}", g(api.change("delete")), methods=["DELETE"]),
        Route("/validation/{validation_id}/events", g(api.validation_events), methods=["GET"]),
        *(
            Route(f"/validation/{{validation_id}}/{path}", g(api.change(change)), methods=["PUT"])
            for path, change in CHANGE_ROUTES
        ),
    ]
    return Starlette(
        routes=[Mount(BASE_PATH, routes=routes), Route("/_kit/health", health)],
        exception_handlers={HTTPException: _not_found, Exception: _server_error},
    )
