"""``/webhook/events`` (list, one, redeliver) and the queries by validation
(``/webhook/validations``, ``/validation/{id}/events``).

Every one of them answers 409 until the webhook is configured and enabled.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from webhook_kit.delivery.dispatcher import Dispatcher
from webhook_kit.provider import views
from webhook_kit.provider.params import account_of, bool_param, event_filter, limit_param
from webhook_kit.serving.http import HttpError, JSONResponse
from webhook_kit.storage.base import RecordStore
from webhook_kit.storage.rows import EventFilter, EventRow

#: Failed events are redelivered in pages of this many, so that no query holds them all.
REDELIVERY_PAGE = 500
#: The most events ``/validation/{id}/events`` lists.
VALIDATION_EVENTS = 10_000


class EventsApi:
    def __init__(self, records: RecordStore, dispatcher: Dispatcher) -> None:
        self.records = records
        self.events = dispatcher.events
        self.dispatcher = dispatcher

    async def _require_enabled(self, request: Request) -> str:
        """The caller's account, once its webhook is configured and enabled (409 otherwise)."""
        account = account_of(request)
        settings = await self.records.settings(account=account)
        if settings is None:
            raise HttpError(409, "webhook_not_configured", "create the webhook settings first")
        if not settings["enabled"]:
            reason = settings.get("disabled_reason") or "enable it in the webhook settings"
            raise HttpError(409, "webhook_not_enabled", f"the webhook is not enabled: {reason}")
        return account

    async def list_events(self, request: Request) -> Response:
        await self._require_enabled(request)
        where = event_filter(request)
        limit = limit_param(request.query_params.get("limit"))
        after = 0
        if "cursor" in request.query_params:
            try:
                after = views.decode_cursor(request.query_params["cursor"])
            except ValueError as exc:
                raise HttpError(400, "invalid_parameter", f"cursor: {exc}") from exc
        rows = await self.events.events(where, after_seq=after, limit=limit + 1)
        page, more = rows[:limit], len(rows) > limit
        data = await self._views(page)
        cursor = views.encode_cursor(page[-1].seq) if more and page else None
        return JSONResponse({"data": data, "next_cursor": cursor})

    async def get_event(self, request: Request) -> Response:
        account = await self._require_enabled(request)
        event_id = request.path_params["event_id"]
        row = await self.events.event(event_id, account=account)
        if row is None:
            raise HttpError(404, "event_not_found", f"no event {event_id!r}")
        return JSONResponse({"data": views.event_view(row, await self.events.attempts(event_id))})

    async def redeliver_event(self, request: Request) -> Response:
        account = await self._require_enabled(request)
        event_id = request.path_params["event_id"]
        done = await self.dispatcher.redeliver(event_id, account=account)
        if done == "unknown":
            raise HttpError(404, "event_not_found", f"no event {event_id!r}")
        if done == "queued":
            raise HttpError(409, "event_queued", "the event is still queued for delivery")
        return JSONResponse({"data": {"event_id": event_id, "state": "pending"}}, status_code=202)

    async def redeliver_failed(self, request: Request) -> Response:
        account = await self._require_enabled(request)
        base = event_filter(request)
        where = EventFilter(
            account=account,
            status=base.status,
            validation_id=base.validation_id,
            since=base.since,
            until=base.until,
            state="failed",
        )
        queued: list[str] = []
        after = 0
        while True:
            rows = await self.events.events(where, after_seq=after, limit=REDELIVERY_PAGE)
            if not rows:
                break
            for row in rows:
                if await self.dispatcher.redeliver(row.event_id, account=account) == "requeued":
                    queued.append(row.event_id)
            after = rows[-1].seq
        return JSONResponse(
            {"data": {"redelivered": len(queued), "event_ids": queued}}, status_code=202
        )

    async def validations(self, request: Request) -> Response:
        account = await self._require_enabled(request)
        sent = bool_param(request.query_params.get("sent"), "sent")
        if sent is None:
            raise HttpError(400, "invalid_parameter", "sent=true or sent=false is required")
        limit = limit_param(request.query_params.get("limit"))
        after = request.query_params.get("cursor", "")
        rows = await self.events.validations_by_sent(
            sent, after=after, limit=limit + 1, account=account
        )
        page, more = rows[:limit], len(rows) > limit
        data = [r._asdict() for r in page]
        cursor = page[-1].validation_id if more and page else None
        return JSONResponse({"data": data, "next_cursor": cursor})

    async def validation_events(self, request: Request) -> Response:
        account = await self._require_enabled(request)
        validation_id = request.path_params["validation_id"]
        only = EventFilter(account=account, validation_id=validation_id)
        rows = await self.events.events(only, limit=VALIDATION_EVENTS)
        if not rows and await self.records.validation(validation_id, account=account) is None:
            raise HttpError(404, "validation_not_found", f"no validation {validation_id!r}")
        return JSONResponse({"data": await self._views(rows)})

    async def _views(self, rows: list[EventRow]) -> list[dict[str, object]]:
        attempts = await self.events.attempts_of([r.event_id for r in rows])
        return [views.event_view(r, attempts[r.event_id]) for r in rows]
