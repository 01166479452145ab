"""``/webhook/events`` (list, one, redeliver) and the queries by validation
(``/webhook/validations``, ``/validation/{id}/events``).

Every one of them answers 409 until the webhook is configured and enabled.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from webhook_kit.delivery.dispatcher import Dispatcher
from webhook_kit.delivery.store import EventFilter, Store
from webhook_kit.provider import views
from webhook_kit.provider.params import bool_param, event_filter, limit_param
from webhook_kit.serving.http import HttpError, JSONResponse

#: Failed events are redelivered in pages of this many, so that no query holds them all.
REDELIVERY_PAGE = 500
#: The most events ``/validation/{id}/events`` lists.
VALIDATION_EVENTS = 10_000


class EventsApi:
    def __init__(self, store: Store, dispatcher: Dispatcher) -> None:
        self.store = store
        self.dispatcher = dispatcher

    def _require_enabled(self) -> None:
        # Every event endpoint passes here: make the latest attempts visible to the query.
        self.dispatcher.flush()
        settings = self.store.settings()
        if settings is None:
            raise HttpError(409, "webhook_not_configured", "create the webhook settings first")
        if not settings["enabled"]:
            reason = settings.get("disabled_reason") or "enable it in the webhook settings"
            raise HttpError(409, "webhook_not_enabled", f"the webhook is not enabled: {reason}")

    async def list_events(self, request: Request) -> Response:
        self._require_enabled()
        where = event_filter(request)
        limit = limit_param(request.query_params.get("limit"))
        after = 0
        if "cursor" in request.query_params:
            try:
                after = views.decode_cursor(request.query_params["cursor"])
            except ValueError as exc:
                raise HttpError(400, "invalid_parameter", f"cursor: {exc}") from exc
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
            raise HttpError(404, "event_not_found", f"no event {event_id!r}")
        return JSONResponse({"data": views.event_view(row, self.store.attempts(event_id))})

    async def redeliver_event(self, request: Request) -> Response:
        self._require_enabled()
        event_id = request.path_params["event_id"]
        if self.store.event(event_id) is None:
            raise HttpError(404, "event_not_found", f"no event {event_id!r}")
        if not self.dispatcher.redeliver(event_id):
            raise HttpError(409, "event_queued", "the event is still queued for delivery")
        return JSONResponse({"data": {"event_id": event_id, "state": "pending"}}, status_code=202)

    async def redeliver_failed(self, request: Request) -> Response:
        self._require_enabled()
        base = event_filter(request)
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
            rows = self.store.events(where, after_seq=after, limit=REDELIVERY_PAGE)
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
        sent = bool_param(request.query_params.get("sent"), "sent")
        if sent is None:
            raise HttpError(400, "invalid_parameter", "sent=true or sent=false is required")
        limit = limit_param(request.query_params.get("limit"))
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
        only = EventFilter(validation_id=validation_id)
        if self.store.validation(validation_id) is None and not self.store.events(only, limit=1):
            raise HttpError(404, "validation_not_found", f"no validation {validation_id!r}")
        rows = self.store.events(only, limit=VALIDATION_EVENTS)
        data = [views.event_view(r, self.store.attempts(r["event_id"])) for r in rows]
        return JSONResponse({"data": data})
