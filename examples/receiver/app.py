"""A minimal conforming webhook receiver: HTTPS (your server's job), OAuth bearer tokens checked
against the issuer's JWKS, JSON only, idempotent on ``Webhook-Id``.

Copy it, then replace ``handle()`` with your own processing. Run it with any ASGI server, e.g.::

    RECEIVER_JWKS_URL=https://auth.example.com/.well-known/jwks.json \\
    RECEIVER_ISSUER=https://auth.example.com RECEIVER_AUDIENCE=webhook-kit \\
    uvicorn --factory app:app_from_env --ssl-certfile cert.pem --ssl-keyfile key.pem

Needs only starlette and joserfc.
"""

from __future__ import annotations

import json
import os
import ssl
import urllib.request
from collections.abc import Callable
from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

ALGORITHMS = ["RS256", "ES256", "PS256"]
MAX_BODY = 1024 * 1024


def fetch_jwks(url: str, ca_file: str | None = None) -> KeySet:
    context = ssl.create_default_context(cafile=ca_file)  # verification always on
    with urllib.request.urlopen(url, context=context, timeout=10) as response:
        return KeySet.import_key_set(json.load(response))


def create_app(
    *,
    jwks_url: str,
    issuer: str,
    audience: str | None = None,
    ca_file: str | None = None,
    handle: Callable[[dict[str, Any]], None] | None = None,
) -> Starlette:
    # Fetched once at start; restart (or add a refresh) when the issuer rotates its keys.
    keys = {"set": fetch_jwks(jwks_url, ca_file)}
    seen: set[str] = set()

    def refused(description: str, error: str = "invalid_token") -> Response:
        challenge = f'Bearer error="{error}", error_description="{description}"'
        return JSONResponse(
            {"error_type": error, "error_message": description},
            status_code=401,
            headers={"WWW-Authenticate": challenge},
        )

    def verify(token: str) -> None:
        decoded = jwt.decode(token, keys["set"], algorithms=ALGORITHMS)
        claims: dict[str, Any] = {
            "iss": {"essential": True, "value": issuer},
            "exp": {"essential": True},
        }
        if audience:
            claims["aud"] = {"essential": True, "value": audience}
        jwt.JWTClaimsRegistry(**claims).validate(decoded.claims)

    async def webhook(request: Request) -> Response:
        if "access_token" in request.query_params:
            return refused("token in query string", "invalid_request")
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return refused("missing bearer token", "invalid_request")
        try:
            verify(token.strip())
        except (JoseError, ValueError, OSError):
            return refused("token refused")
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            return JSONResponse(
                {"error_type": "unsupported_media_type", "error_message": "send JSON"}, 415
            )
        body = await request.body()
        if len(body) > MAX_BODY:
            return JSONResponse({"error_type": "too_large", "error_message": "body too large"}, 413)
        try:
            notification = json.loads(body)
        except ValueError:
            return JSONResponse({"error_type": "invalid_json", "error_message": "not JSON"}, 400)
        if not isinstance(notification, dict) or not isinstance(notification.get("status"), str):
            return JSONResponse(
                {"error_type": "invalid_notification", "error_message": "status missing"}, 422
            )
        key = request.headers.get("webhook-id") or str(notification.get("event_id"))
        if key not in seen:  # retries carry the same Webhook-Id: process each event once
            seen.add(key)
            if handle is not None:
                handle(notification)
        return JSONResponse({"received": True})

    return Starlette(routes=[Route("/webhook", webhook, methods=["POST"])])


def app_from_env() -> Starlette:
    return create_app(
        jwks_url=os.environ["RECEIVER_JWKS_URL"],
        issuer=os.environ["RECEIVER_ISSUER"],
        audience=os.environ.get("RECEIVER_AUDIENCE") or None,
        ca_file=os.environ.get("RECEIVER_CA_FILE") or None,
    )
