"""``/webhook/settings`` (create, read, update, delete) and ``/webhook/test``.

The secret is write-only: every answer carries the settings masked.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from webhook_kit.delivery.dispatcher import Dispatcher
from webhook_kit.errors import ConfigError
from webhook_kit.provider import signing, views, webhook_settings
from webhook_kit.provider.params import account_of, json_body
from webhook_kit.provider.probe import run_test
from webhook_kit.serving.http import HttpError, JSONResponse
from webhook_kit.storage.base import RecordStore

log = logging.getLogger("webhook_kit.provider")


class SettingsApi:
    def __init__(
        self,
        records: RecordStore,
        dispatcher: Dispatcher,
        clock: Callable[[], float],
        public_url: str = "",
    ) -> None:
        self.public_url = public_url
        self.records = records
        self.dispatcher = dispatcher
        self.clock = clock

    async def create(self, request: Request) -> Response:
        settings = _validated(await json_body(request))
        await self._save(account_of(request), settings)
        return JSONResponse({"data": webhook_settings.masked(settings)}, status_code=201)

    async def read(self, request: Request) -> Response:
        account = account_of(request)
        settings = await self.records.settings(account=account)
        if settings is None:
            raise HttpError(404, "webhook_not_configured", "no webhook settings yet")
        shown = webhook_settings.masked(settings)
        if settings["auth"].get("client_auth_method") == "private_key_jwt":
            # What the customer registers at its authorization server: the sender's keys.
            shown["auth"]["jwks_url"] = f"{self.public_url}/accounts/{account}/jwks.json"
        breaker = (await self.dispatcher.events.breaker(account)).as_json()
        for key in ("since", "next_probe_at"):
            moment = breaker[key]
            breaker[key] = views.iso(moment) if isinstance(moment, float) and moment else None
        shown["breaker"] = breaker
        return JSONResponse({"data": shown})

    async def update(self, request: Request) -> Response:
        account = account_of(request)
        current = await self.records.settings(account=account)
        if current is None:
            raise HttpError(404, "webhook_not_configured", "no webhook settings to update")
        document = await json_body(request)
        try:
            # The secret is write-only: an update may leave it out to keep the current one,
            # unless it changes where the secret goes.
            webhook_settings.keep_secret(document, current)
        except webhook_settings.SettingsInvalid as exc:
            raise _invalid(exc) from exc
        settings = _validated(document)
        await self._save(account, settings)
        return JSONResponse({"data": webhook_settings.masked(settings)})

    async def delete(self, request: Request) -> Response:
        account = account_of(request)
        if not await self.records.delete_settings(account=account):
            raise HttpError(404, "webhook_not_configured", "no webhook settings to delete")
        self._apply(account, None)
        return Response(status_code=204)

    async def test(self, request: Request) -> Response:
        account = account_of(request)
        settings = await self.records.settings(account=account)
        if settings is None:
            raise HttpError(409, "webhook_not_configured", "create the webhook settings first")
        try:
            target = await self.dispatcher.load_target(account)
        except ConfigError as exc:  # saved by an earlier version that checked less
            raise HttpError(
                409,
                "invalid_settings",
                f"the stored settings cannot be used ({exc}); save them again",
            ) from exc
        if target is None:
            raise HttpError(
                409, "invalid_settings", "the stored settings cannot be used; save them again"
            )
        trace = await run_test(self.dispatcher, target)
        settings["last_test"] = {"ok": trace["ok"], "at": views.iso(self.clock())}
        await self.records.put_settings(settings, self.clock(), account=account)
        return JSONResponse({"data": trace})

    async def _save(self, account: str, settings: dict[str, Any]) -> None:
        await self.records.put_settings(settings, self.clock(), account=account)
        self._apply(account, settings)

    def _apply(self, account: str, settings: dict[str, Any] | None) -> None:
        if settings is None:
            log.info("webhook settings of %s removed", account)
        else:
            shown = json.dumps(webhook_settings.masked(settings))
            log.info("webhook settings of %s saved: %s", account, shown)
        self.dispatcher.settings_changed(account)


def _validated(document: Any) -> dict[str, Any]:
    try:
        return webhook_settings.validate(document)
    except webhook_settings.SettingsInvalid as exc:
        raise _invalid(exc) from exc


def _invalid(exc: webhook_settings.SettingsInvalid) -> HttpError:
    return HttpError(422, "invalid_settings", str(exc), errors=exc.errors)


async def jwks(records: RecordStore, account: str, now: float) -> dict[str, Any] | None:
    """The account's public signing keys (made on first use); ``None`` for no such account."""
    if await records.account(account) is None:
        return None
    await signing.current(records, account, now)
    return signing.jwks(await records.signing_keys(account), now)
