"""``/validation``: create one, read it, and change it (uploads, cancel, confirm, delete).

Each change moves the validation through ``lifecycle`` and queues the notification it causes.
An upload is a multipart file field (as the real service takes it) or, for scripts, a JSON
object naming the same field.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import replace

from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from webhook_kit.contract import notifications
from webhook_kit.delivery.dispatcher import Dispatcher
from webhook_kit.ids import new_id
from webhook_kit.provider import views
from webhook_kit.provider.lifecycle import Change, State, apply
from webhook_kit.provider.params import account_of, json_body
from webhook_kit.serving.http import HttpError, JSONResponse, limited, media_type
from webhook_kit.storage.base import RecordStore
from webhook_kit.storage.rows import NewEvent, ValidationRow

MAX_UPLOAD = 20 * 1024 * 1024
#: A whole multipart body: one file of MAX_UPLOAD plus the other fields and the framing.
MAX_FORM = MAX_UPLOAD + 256 * 1024
#: The multipart file field each upload takes, as the real service names it.
UPLOAD_FIELDS: dict[Change, str] = {
    "document": "documentImage",
    "selfie": "image",
    "video": "video",
}
#: ``PUT /validation/{id}/<path>`` and the change it makes.
CHANGE_ROUTES: tuple[tuple[str, Change], ...] = (
    ("document", "document"),
    ("selfie", "selfie"),
    ("video", "video"),
    ("cancellation", "cancellation"),
    ("confirmation", "confirmation"),
)

Handler = Callable[[Request], Awaitable[Response]]


class ValidationsApi:
    def __init__(
        self,
        records: RecordStore,
        dispatcher: Dispatcher,
        clock: Callable[[], float],
        rng: random.Random,
    ) -> None:
        self.records = records
        self.dispatcher = dispatcher
        self.clock = clock
        self.rng = rng

    async def create(self, request: Request) -> Response:
        await json_body(request, optional=True)
        validation_id = new_id()
        body = notifications.build(
            "on-course", validation_id=validation_id, previous_status=None, rng=self.rng
        )
        now = self.clock()
        account = account_of(request)
        row = ValidationRow(validation_id, "on-course", 0, now, now, account)
        await self.records.save_validation(row, NewEvent.of(body, account), expected=None)
        return JSONResponse(
            {"data": {"id": validation_id, "status": "on-course", "event_id": body["event_id"]}},
            status_code=201,
        )

    async def get(self, request: Request) -> Response:
        return JSONResponse({"data": views.validation_view(await self._row(request))})

    def change(self, change: Change) -> Handler:
        async def handler(request: Request) -> Response:
            await self._row(request)  # 404 before reading an upload
            if change in UPLOAD_FIELDS:
                await _check_upload(request, UPLOAD_FIELDS[change])
            row = await self._row(request)
            state = apply(State(row.status, row.documents), change)
            body = notifications.build(
                state.status, validation_id=row.id, previous_status=row.status, rng=self.rng
            )
            changed = replace(
                row, status=state.status, documents=state.documents, updated_at=self.clock()
            )
            # Fails (409) rather than overwrite if another request changed it since the read.
            event = NewEvent.of(body, row.account)
            await self.records.save_validation(changed, event, expected=row)
            return JSONResponse(
                {"data": {"id": row.id, "status": state.status, "event_id": body["event_id"]}}
            )

        return handler

    async def _row(self, request: Request) -> ValidationRow:
        validation_id = request.path_params["validation_id"]
        row = await self.records.validation(validation_id, account=account_of(request))
        if row is None:
            raise HttpError(404, "validation_not_found", f"no validation {validation_id!r}")
        return row


async def _check_upload(request: Request, field: str) -> None:
    if media_type(request) == "multipart/form-data":
        form = await _form(request)
        try:
            upload = form.get(field)
            if not isinstance(upload, UploadFile):
                raise _missing(field, "is required")
            if not await upload.read(1):
                raise _missing(field, "is empty", f"the file {field!r} is empty")
        finally:
            await form.close()
        return
    document = await json_body(request)
    if not isinstance(document, dict) or not document.get(field):
        raise _missing(field, "is required")


async def _form(request: Request) -> FormData:
    try:
        return await limited(request, MAX_FORM).form(
            max_files=4, max_fields=50, max_part_size=MAX_UPLOAD
        )
    except HttpError:
        raise
    except HTTPException as exc:
        raise HttpError(400, "invalid_multipart", str(exc.detail)) from exc
    except Exception as exc:  # python-multipart raises several unrelated types
        raise HttpError(400, "invalid_multipart", f"cannot parse the form: {exc}") from exc


def _missing(field: str, problem: str, message: str | None = None) -> HttpError:
    return HttpError(
        422,
        "missing_file",
        message or f"the file field {field!r} is required",
        errors=[{"field": field, "message": problem}],
    )
