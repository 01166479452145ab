"""The provider API under ``/validas/v1``: its routes, the ``apikey`` check and the error answers.

The handlers live by resource: ``settings_api`` (webhook settings and test), ``events_api``
(events, the queries by validation, redelivery) and ``validations_api`` (the validation
lifecycle and its uploads). They are thin: parse, call the store or the dispatcher, answer.
Every error is the kit's JSON error (``serving.http``): ``{"error_type", "error_message"}``, plus
``errors`` with field names for a 422, and a 4xx status (503 when the database cannot write).
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Awaitable, Callable

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route

from webhook_kit.delivery.dispatcher import Dispatcher
from webhook_kit.errors import StaleUpdate, StoreError, StoreUnavailable
from webhook_kit.provider import apikeys, settings_api
from webhook_kit.provider.events_api import EventsApi
from webhook_kit.provider.lifecycle import LifecycleError
from webhook_kit.provider.openapi import build_openapi
from webhook_kit.provider.settings_api import SettingsApi
from webhook_kit.provider.validations_api import CHANGE_ROUTES, ValidationsApi
from webhook_kit.serving.http import EXCEPTION_HANDLERS, HttpError, JSONResponse, error_response
from webhook_kit.storage.base import RecordStore
from webhook_kit.storage.rows import DEFAULT_ACCOUNT

log = logging.getLogger("webhook_kit.provider")

BASE_PATH = "/validas/v1"
#: Seconds a client is asked to wait when the database cannot be used (503).
RETRY_AFTER = 5

Handler = Callable[[Request], Awaitable[Response]]


class ProviderApi:
    """The three resources over one database and dispatcher, behind one apikey."""

    def __init__(
        self,
        *,
        records: RecordStore,
        dispatcher: Dispatcher,
        apikey: str,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        public_url: str = "",
    ) -> None:
        self.apikey = apikey
        self.records = records
        self.clock = clock
        self.settings = SettingsApi(records, dispatcher, clock, public_url)
        self.events = EventsApi(records, dispatcher)
        self.validations = ValidationsApi(records, dispatcher, clock, rng or random.Random())

    async def account_of(self, given: str) -> str | None:
        """The account an ``apikey`` header names: the command line's key is the default
        account's; any other is looked up by its hash (neither revoked nor expired)."""
        if not given:
            return None
        if apikeys.same(given, self.apikey):
            return DEFAULT_ACCOUNT
        return await self.records.account_for_key(apikeys.key_hash(given), self.clock())

    def guarded(self, handler: Handler) -> Handler:
        """Check the ``apikey`` header, then turn a refusal into its JSON answer."""

        async def endpoint(request: Request) -> Response:
            try:
                account = await self.account_of(request.headers.get("apikey", ""))
                if account is None:
                    return error_response(
                        401, "unauthorized", "missing, wrong, expired or revoked apikey header"
                    )
                request.state.account = account
                return await handler(request)
            except HttpError as exc:
                return exc.response()
            except LifecycleError as exc:
                return error_response(409, exc.error_type, exc.message)
            except StaleUpdate:
                return error_response(
                    409,
                    "concurrent_change",
                    "another request changed this object meanwhile; nothing was changed, "
                    "read it again and retry",
                )
            except StoreUnavailable as exc:
                # The database blinked (restarting, unreachable): the client may try again soon.
                log.error(
                    "database unavailable on %s %s: %s", request.method, request.url.path, exc
                )
                response = error_response(
                    503,
                    "storage_unavailable",
                    f"the provider's database cannot be reached now; try again in {RETRY_AFTER} s",
                )
                response.headers["Retry-After"] = str(RETRY_AFTER)
                return response
            except StoreError as exc:
                # A full disk or an I/O error: the client may try again later; no traceback.
                log.error("storage error on %s %s: %s", request.method, request.url.path, exc)
                response = error_response(
                    503,
                    "storage_unavailable",
                    "the provider's database cannot take the change now "
                    "(is its disk full?); nothing was changed, try again later",
                )
                response.headers["Retry-After"] = str(RETRY_AFTER)
                return response

        return endpoint

    async def jwks(self, request: Request) -> Response:
        """An account's public signing keys: no apikey (its authorization server fetches them)."""
        try:
            keys = await settings_api.jwks(
                self.records, request.path_params["account"], self.clock()
            )
        except StoreError:
            response = error_response(503, "storage_unavailable", "try again later")
            response.headers["Retry-After"] = str(RETRY_AFTER)
            return response
        if keys is None:
            return error_response(404, "account_not_found", "no such account")
        return JSONResponse(keys, headers={"Cache-Control": "public, max-age=300"})

    def routes(self) -> list[Route]:
        """The routes under :data:`BASE_PATH`, each behind the apikey check (but the JWKS)."""
        g, settings, events, validations = (
            self.guarded,
            self.settings,
            self.events,
            self.validations,
        )
        return [
            Route("/accounts/{account}/jwks.json", self.jwks, methods=["GET"]),
            Route("/webhook/settings", g(settings.create), methods=["POST"]),
            Route("/webhook/settings", g(settings.read), methods=["GET"]),
            Route("/webhook/settings", g(settings.update), methods=["PUT"]),
            Route("/webhook/settings", g(settings.delete), methods=["DELETE"]),
            Route("/webhook/test", g(settings.test), methods=["POST"]),
            Route("/webhook/events", g(events.list_events), methods=["GET"]),
            Route("/webhook/events/redelivery", g(events.redeliver_failed), methods=["POST"]),
            Route("/webhook/events/{event_id}", g(events.get_event), methods=["GET"]),
            Route(
                "/webhook/events/{event_id}/redelivery",
                g(events.redeliver_event),
                methods=["POST"],
            ),
            Route("/webhook/validations", g(events.validations), methods=["GET"]),
            Route("/validation", g(validations.create), methods=["POST"]),
            Route("/validation/{validation_id}", g(validations.get), methods=["GET"]),
            Route(
                "/validation/{validation_id}", g(validations.change("delete")), methods=["DELETE"]
            ),
            Route(
                "/validation/{validation_id}/events", g(events.validation_events), methods=["GET"]
            ),
            *(
                Route(
                    f"/validation/{{validation_id}}/{path}",
                    g(validations.change(change)),
                    methods=["PUT"],
                )
                for path, change in CHANGE_ROUTES
            ),
        ]


def create_provider_app(api: ProviderApi, extra_routes: list[BaseRoute] | None = None) -> Starlette:
    """The API under :data:`BASE_PATH`, its health check, and ``extra_routes`` (``/metrics``)."""
    openapi = json.dumps(build_openapi()).encode()

    async def openapi_json(request: Request) -> Response:
        return Response(openapi, media_type="application/json")

    async def health(request: Request) -> Response:
        return JSONResponse({"ok": True})

    routes = [Route("/openapi.json", openapi_json), *api.routes()]
    return Starlette(
        routes=[
            Mount(BASE_PATH, routes=routes),
            Route("/_kit/health", health),
            *(extra_routes or []),
        ],
        exception_handlers=EXCEPTION_HANDLERS,
    )
