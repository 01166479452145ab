"""The endpoint's ASGI app: token issuer, webhook route and the ``/_kit`` inspection API.

The webhook handler calls the bearer check itself instead of going through Starlette's
``AuthenticationMiddleware``: a refused request must still be recorded with its reason, and the
middleware's ``on_error`` would answer before the recorder sees the request.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from webhook_kit.contract.schema import Validator
from webhook_kit.display import visible
from webhook_kit.endpoint.faults import FaultInjector
from webhook_kit.endpoint.guard import KitGuard
from webhook_kit.endpoint.inspector.live import Inspector
from webhook_kit.endpoint.recorder import Recorder, encode_many, mask_headers
from webhook_kit.errors import SchemaError, TokenError
from webhook_kit.oauth import dpop
from webhook_kit.oauth.issuer import TokenIssuer
from webhook_kit.oauth.mtls import peer_thumbprint
from webhook_kit.oauth.verifier import BearerVerifier, Scheme, SenderConstraint, access_token
from webhook_kit.parsing import yes_no
from webhook_kit.serving.http import (
    EXCEPTION_HANDLERS,
    HttpError,
    JSONResponse,
    PayloadError,
    parse_json,
    read_body,
)
from webhook_kit.timing import elapsed_ms

if TYPE_CHECKING:
    from webhook_kit.metrics import EndpointMetrics

log = logging.getLogger("webhook_kit.endpoint")

_ACCEPTED_BODY = b'{"received":true,"duplicate":false}'
_DUPLICATE_BODY = b'{"received":true,"duplicate":true}'

#: How much of a refused body is kept for display, as text (never parsed: see ``recorder``).
RECORDED_BODY_LIMIT = 16 * 1024
#: A refused body up to this size is parsed (then dropped) to show its event_id and status.
REFUSED_PARSE_LIMIT = 64 * 1024

__all__ = ["Urls", "WebhookRoute", "create_app"]


@dataclass(frozen=True)
class Urls:
    base: str
    webhook_path: str

    @property
    def webhook(self) -> str:
        return self.base + self.webhook_path

    @property
    def token(self) -> str:
        return self.base + "/oauth/token"

    @property
    def jwks(self) -> str:
        return self.base + "/.well-known/jwks.json"

    @property
    def metadata(self) -> str:
        return self.base + "/.well-known/oauth-authorization-server"

    @property
    def inspect(self) -> str:
        return self.base + "/_kit/"

    @property
    def deliveries(self) -> str:
        return self.base + "/_kit/deliveries"


class WebhookRoute:
    """``POST <path>``: authenticate, check, record, answer."""

    def __init__(
        self,
        *,
        verifier: BearerVerifier,
        validator: Validator,
        recorder: Recorder,
        faults: FaultInjector,
        max_body: int,
        constraint: SenderConstraint | None = None,
        metrics: EndpointMetrics | None = None,
    ) -> None:
        self.metrics = metrics
        self.verifier = verifier
        self.constraint = constraint or SenderConstraint()
        self.validator = validator
        self.recorder = recorder
        self.faults = faults
        self.max_body = max_body

    async def receive(self, request: Request) -> Response:
        started = time.perf_counter()
        scope = request.scope
        headers = request.headers
        client = scope.get("client")
        record: dict[str, Any] = {
            "method": scope["method"],
            "path": scope["path"],
            "remote": f"{client[0]}:{client[1]}" if client else None,
            "http_version": scope.get("http_version"),
            "headers": mask_headers(headers.items()),
        }
        try:
            response = await self._handle(request, record)
        except HttpError as exc:  # refused: recorded with its reason, answered as JSON
            record.update(accepted=False, http_status=exc.status, error_type=exc.error_type)
            record["reason"] = f"{exc.status} {exc.message}"
            response = exc.response()
            if self.metrics is not None:
                self.metrics.refused(exc.error_type, exc.status)
        else:
            if self.metrics is not None:
                self.metrics.accepted(duplicate=bool(record.get("duplicate")))
        record["duration_ms"] = elapsed_ms(started)
        self.recorder.add(record)
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "%s %s %s",
                visible(record.get("status", "-")),
                visible(record.get("event_id", "-")),
                visible(record.get("reason")),
            )
        return response

    async def _handle(self, request: Request, record: dict[str, Any]) -> Response:
        headers = request.headers
        scheme: Scheme | None = None
        try:
            scheme, token = access_token(
                headers.get("authorization"), request.scope["query_string"]
            )
            claims = self.verifier.verify(token)
            self.constraint.check(
                scheme,
                token,
                claims,
                method=request.method,
                url=str(request.url),
                proofs=headers.getlist("dpop"),
                peer_thumbprint=peer_thumbprint(request.scope),
            )
        except TokenError as exc:
            await self._keep_body_for_display(request, record)
            if exc.error == dpop.BUSY:
                raise HttpError(
                    503, exc.error, exc.description, headers={"Retry-After": "1"}
                ) from exc
            raise HttpError(
                401,
                exc.error or "invalid_token",
                exc.description,
                headers=self.constraint.challenge(exc, scheme),
            ) from exc

        media_type, _, params = headers.get("content-type", "").partition(";")
        if media_type.strip().lower() != "application/json":
            raise HttpError(415, "unsupported_media_type", "Content-Type must be application/json")
        charset = _charset(params)
        if charset not in (None, "utf-8", "utf8"):
            raise HttpError(415, "unsupported_media_type", f"charset {charset} is not UTF-8")

        body = await read_body(request, self.max_body)
        try:
            payload = parse_json(body)
        except PayloadError as exc:
            record["body_text"] = body[:RECORDED_BODY_LIMIT].decode("utf-8", "replace")
            raise HttpError(400, "invalid_json", f"body is not valid UTF-8 JSON: {exc}") from exc
        record["body"] = payload
        _note_ids(record, payload)

        if not self.validator.is_valid(payload):
            errors = self.validator.errors(payload) or [SchemaError("invalid notification")]
            first = errors[0]
            raise HttpError(
                422,
                "invalid_notification",
                _describe(first),
                errors=[{"field": e.path, "message": e.message} for e in errors[:10]],
            )

        key = headers.get("webhook-id") or payload["event_id"]
        record["idempotency_key"] = key
        record["duplicate"] = self.recorder.is_duplicate(key)
        if "webhook-id" in headers and headers["webhook-id"] != payload["event_id"]:
            record["warning"] = "Webhook-Id header differs from event_id"
        if self.faults.delay:
            await asyncio.sleep(self.faults.delay)
        fault = self.faults.decide(payload["status"])
        if fault is not None:
            record["fault"] = fault.reason
            if 200 <= fault.code < 300:
                record.update(accepted=True, http_status=fault.code, reason=fault.reason)
                return JSONResponse({"received": True}, status_code=fault.code)
            raise HttpError(fault.code, "injected_fault", fault.reason, headers=fault.headers)
        record.update(accepted=True, http_status=200)
        record["reason"] = "duplicate" if record["duplicate"] else "accepted"
        return Response(
            _DUPLICATE_BODY if record["duplicate"] else _ACCEPTED_BODY,
            media_type="application/json",
        )

    async def _keep_body_for_display(self, request: Request, record: dict[str, Any]) -> None:
        # A refused sender still wants to see which event was refused, so keep a bounded copy.
        # Kept as bounded text, never as parsed objects: anyone can send these.
        try:
            body = await read_body(request, self.max_body)
        except HttpError:
            return
        record["body_text"] = body[:RECORDED_BODY_LIMIT].decode("utf-8", "replace")
        if len(body) <= REFUSED_PARSE_LIMIT:
            try:
                _note_ids(record, parse_json(body))
            except PayloadError:
                pass


def _describe(error: SchemaError) -> str:
    """'scores missing' names its field already; '1.7 is greater than ...' needs the path."""
    field = error.path.rsplit("/", 1)[-1]
    if error.path == "/" or (field and error.message.startswith(field)):
        return error.message
    return f"{error.path} {error.message}"


def _charset(params: str) -> str | None:
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset":
            return value.strip().strip('"').lower()
    return None


def _note_ids(record: dict[str, Any], payload: object) -> None:
    if not isinstance(payload, dict):
        return
    for name in ("event_id", "validation_id", "status"):
        value = payload.get(name)
        if isinstance(value, str):
            record[name] = value[:200]


class KitApi:
    """``/_kit``: what the endpoint received, for people and scripts."""

    def __init__(
        self, recorder: Recorder, urls: Urls, issuer: TokenIssuer, verifier: BearerVerifier
    ) -> None:
        self.recorder = recorder
        self.urls = urls
        self.issuer = issuer
        self.verifier = verifier

    async def index(self, request: Request) -> Response:
        return JSONResponse(
            {
                "webhook_url": self.urls.webhook,
                "token_url": self.urls.token,
                "jwks_url": self.urls.jwks,
                "deliveries_url": self.urls.deliveries,
                "received": self.recorder.count(),
            }
        )

    async def deliveries(self, request: Request) -> Response:
        params = request.query_params
        accepted: bool | None = None
        if "accepted" in params:
            accepted = _parse_bool(params["accepted"], "accepted")
        if "rejected" in params:
            accepted = not _parse_bool(params["rejected"], "rejected")
        limit = None
        if "limit" in params:
            try:
                limit = int(params["limit"])
            except ValueError as exc:
                raise HTTPException(400, "limit must be a whole number") from exc
            if limit < 1:
                raise HTTPException(400, "limit must be at least 1")
        records = self.recorder.select(
            status=params.get("status"),
            accepted=accepted,
            validation_id=params.get("validation_id"),
            limit=limit,
        )
        # Encoded from the kept bytes: parsing every body to list them would cost far more
        # memory than keeping them does.
        body = b"".join(
            (
                b'{"count":%d,"deliveries":[' % len(records),
                b",".join(encode_many(records)),
                b"]}",
            )
        )
        return Response(body, media_type="application/json")

    async def clear(self, request: Request) -> Response:
        return JSONResponse({"cleared": self.recorder.clear()})

    async def health(self, request: Request) -> Response:
        return JSONResponse({"ok": True})

    async def rotate_key(self, request: Request) -> Response:
        # Every token issued so far becomes "wrongly signed": a sender must refetch on the 401.
        self.verifier.set_key(self.issuer.rotate_key())
        return JSONResponse({"kid": self.issuer.key.kid})

    async def jwks(self, request: Request) -> Response:
        return JSONResponse(self.issuer.jwks())


def _parse_bool(value: str, name: str) -> bool:
    parsed = yes_no(value)
    if parsed is None:
        raise HTTPException(400, f"{name} must be true or false")
    return parsed


def create_app(
    *,
    urls: Urls,
    issuer: TokenIssuer,
    receiver: WebhookRoute,
    extra_routes: list[Route] | None = None,
) -> Starlette:
    kit = KitApi(receiver.recorder, urls, issuer, receiver.verifier)
    inspector = Inspector(receiver.recorder)
    routes = [
        # The webhook route first: it is the hot path.
        Route(urls.webhook_path, receiver.receive, methods=["POST"]),
        Route("/oauth/token", issuer.token_endpoint, methods=["POST"]),
        Route("/.well-known/jwks.json", kit.jwks),
        Route(
            "/.well-known/oauth-authorization-server",
            _static_json(issuer.metadata(urls.token, urls.jwks)),
        ),
        *inspector.routes(),
        Route("/_kit/index.json", kit.index),
        Route("/_kit/deliveries", kit.deliveries, methods=["GET"]),
        Route("/_kit/deliveries", kit.clear, methods=["DELETE"]),
        Route("/_kit/health", kit.health),
        Route("/_kit/rotate-key", kit.rotate_key, methods=["POST"]),
        *(extra_routes or []),
    ]
    app = Starlette(
        routes=routes,
        middleware=[Middleware(KitGuard)],
        exception_handlers=EXCEPTION_HANDLERS,
    )
    app.state.inspector = inspector
    return app


def _static_json(document: dict[str, Any]) -> Any:
    body = json.dumps(document).encode()

    async def endpoint(request: Request) -> Response:
        return Response(body, media_type="application/json")

    return endpoint
