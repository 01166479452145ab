"""What the provider API reads from a request besides its path: JSON bodies and query parameters.

Each refusal is a 400 (or 413, 415) :class:`~webhook_kit.serving.http.HttpError` that names the
parameter.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from webhook_kit.contract.statuses import STATUSES
from webhook_kit.parsing import yes_no
from webhook_kit.provider import views
from webhook_kit.serving.http import HttpError, read_json
from webhook_kit.storage.rows import EventFilter

MAX_BODY = 1024 * 1024
#: ``limit`` when the query leaves it out, and its largest value.
DEFAULT_LIMIT = 100
MAX_LIMIT = 500


async def json_body(request: Request, *, optional: bool = False) -> Any:
    # Lone surrogates pass the parser: the settings check names the field that holds one (422).
    return await read_json(request, MAX_BODY, optional=optional, lone_surrogates=True)


def account_of(request: Request) -> str:
    """The caller's account, set by the ``apikey`` check before any handler runs."""
    account: str = request.state.account
    return account


def event_filter(request: Request) -> EventFilter:
    params = request.query_params
    return EventFilter(
        account=account_of(request),
        sent=bool_param(params.get("sent"), "sent"),
        status=status_param(params.get("status")),
        validation_id=params.get("validation_id"),
        since=time_param(params.get("since"), "since"),
        until=time_param(params.get("until"), "until"),
    )


def bool_param(value: str | None, name: str) -> bool | None:
    if value is None:
        return None
    parsed = yes_no(value)
    if parsed is None:
        raise HttpError(400, "invalid_parameter", f"{name} must be true or false")
    return parsed


def status_param(value: str | None) -> str | None:
    if value is not None and value not in STATUSES:
        raise HttpError(400, "invalid_parameter", f"status must be one of {', '.join(STATUSES)}")
    return value


def time_param(value: str | None, name: str) -> float | None:
    if value is None:
        return None
    try:
        return views.parse_time(value)
    except ValueError as exc:
        raise HttpError(400, "invalid_parameter", f"{name} must be an ISO 8601 date-time") from exc


def limit_param(value: str | None) -> int:
    if value is None:
        return DEFAULT_LIMIT
    # ASCII digits only, and few of them: str.isdigit() accepts '²', which int() refuses, and
    # int() refuses more than 4,300 digits; either used to be a 500.
    if not (value.isascii() and value.isdigit() and len(value) <= 9):
        raise _bad_limit()
    limit = int(value)
    if not 1 <= limit <= MAX_LIMIT:
        raise _bad_limit()
    return limit


def _bad_limit() -> HttpError:
    return HttpError(
        400, "invalid_parameter", f"limit must be a whole number from 1 to {MAX_LIMIT}"
    )
