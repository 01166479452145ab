"""Receivers the certify tests build: one conforming, and ones broken in exactly one way."""

from __future__ import annotations

import asyncio
import itertools
import json
from dataclasses import dataclass
from typing import Any, Literal

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from webhook_kit.certify.forge import parse
from webhook_kit.errors import TokenError
from webhook_kit.oauth.verifier import BearerVerifier, bearer_token


@dataclass(frozen=True)
class Breakage:
    auth: Literal["verify", "none", "any", "alg_none_ok", "no_kid_ok"] = "verify"
    fail_status: str | None = None
    delay: float = 0.0
    redirect: bool = False
    required_content_type: str = "application/json"
    unavailable_every: int = 0
    #: Refuse bad tokens with this status instead of 401 (403: a common hardening miss).
    refuse_with: int = 401
    #: Require this scope in the token; a valid token without it gets 403 insufficient_scope.
    required_scope: str | None = None
    #: Answer 409 to a Webhook-Id seen before (retries then never succeed).
    reject_duplicates: bool = False
    #: Answer 422 to fields it does not know (no forward compatibility).
    reject_unknown_fields: bool = False


KNOWN_FIELDS = {
    "event_id",
    "validation_id",
    "status",
    "previous_status",
    "occurred_at",
    "scores",
    "test",
}


def receiver(verifier: BearerVerifier, breakage: Breakage = Breakage()) -> Starlette:
    counter = itertools.count(1)
    seen: set[str] = set()

    async def webhook(request: Request) -> Response:
        header = _header(request.headers.get("authorization", ""))
        if breakage.auth == "alg_none_ok" and header.get("alg") == "none":
            pass  # the classic flaw: an unsigned token is taken at its word
        elif breakage.auth == "no_kid_ok" and header and "kid" not in header:
            pass  # no kid, so no key to check with: taken at its word
        elif breakage.auth in ("verify", "alg_none_ok", "no_kid_ok"):
            try:
                claims = verifier.verify(
                    bearer_token(
                        request.headers.get("authorization"), request.scope["query_string"]
                    )
                )
            except TokenError as exc:
                return JSONResponse(
                    {"error": exc.description},
                    breakage.refuse_with,
                    {"WWW-Authenticate": "Bearer"},
                )
            scopes = str(claims.get("scope") or "").split()
            if breakage.required_scope and breakage.required_scope not in scopes:
                challenge = f'Bearer error="insufficient_scope", scope="{breakage.required_scope}"'
                return JSONResponse(
                    {"error": "insufficient_scope"}, 403, {"WWW-Authenticate": challenge}
                )
        elif breakage.auth == "any" and not request.headers.get("authorization", "").startswith(
            "Bearer "
        ):
            return JSONResponse({"error": "no token"}, 401, {"WWW-Authenticate": "Bearer"})
        media_type = request.headers.get("content-type", "").split(";")[0].strip()
        if media_type != breakage.required_content_type:
            return JSONResponse({"error": "unsupported media type"}, 415)
        if breakage.unavailable_every and next(counter) % breakage.unavailable_every == 0:
            return JSONResponse({"error": "busy"}, 503)
        if breakage.redirect:
            return Response(status_code=307, headers={"Location": "/elsewhere"})
        if breakage.delay:
            await asyncio.sleep(breakage.delay)
        try:
            body = json.loads(await request.body())
        except ValueError:
            body = {}
        if breakage.fail_status is not None and body.get("status") == breakage.fail_status:
            return JSONResponse({"error": "boom"}, 500)
        if breakage.reject_unknown_fields and set(body) - KNOWN_FIELDS:
            return JSONResponse({"error": "unknown field"}, 422)
        if breakage.reject_duplicates:
            event_id = request.headers.get("webhook-id", "")
            if event_id in seen:
                return JSONResponse({"error": "duplicate"}, 409)
            seen.add(event_id)
        return JSONResponse({"received": True})

    return Starlette(routes=[Route("/webhook", webhook, methods=["POST"])])


def _header(authorization: str) -> dict[str, Any]:
    """The unverified JOSE header of a bearer token, or {} (the flaws below read it)."""
    parsed = parse(authorization.partition(" ")[2])
    return parsed.header if parsed else {}
