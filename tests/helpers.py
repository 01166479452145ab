"""Test helpers: a real HTTPS client for the kit's endpoint, and token forgery for attacks."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import subprocess
import sys
import time
import uuid
from typing import Any

import requests
from joserfc import jwt
from joserfc.jwk import RSAKey

from webhook_kit.contract import notifications
from webhook_kit.endpoint.service import Endpoint


class KitClient:
    """A requests session that trusts the kit's CA (never verify=False)."""

    def __init__(self, sink: Endpoint) -> None:
        self.sink = sink
        self.info = sink.info
        self.http = requests.Session()
        # REQUESTS_CA_BUNDLE in the environment would override session.verify (psf/requests#3829).
        self.http.trust_env = False
        self.http.verify = self.info.ca_file

    def close(self) -> None:
        self.http.close()

    def token(self, **form: str) -> str:
        response = self.http.post(
            self.info.token_url,
            data={"grant_type": "client_credentials", **form},
            auth=(self.info.client_id, self.info.client_secret),
            timeout=10,
        )
        response.raise_for_status()
        value: str = response.json()["access_token"]
        return value

    def post(
        self,
        body: Any = None,
        *,
        token: str | None = "auto",
        headers: dict[str, str] | None = None,
        data: bytes | None = None,
        url: str | None = None,
    ) -> requests.Response:
        sent = {"Content-Type": "application/json"}
        if token == "auto":
            token = self.token()
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        sent.update(headers or {})
        if data is None:
            data = json.dumps(body if body is not None else notification()).encode()
        return self.http.post(url or self.info.url, data=data, headers=sent, timeout=10)


def notification(status: str = "on-course", **overrides: Any) -> dict[str, Any]:
    body = notifications.build(status, validation_id=str(uuid.uuid4()), previous_status="on-course")
    body.update(overrides)
    return body


def b64(data: bytes | dict[str, Any]) -> str:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def claims_for(sink: Endpoint, **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": sink.urls.base,
        "aud": sink.settings.audience,
        "sub": sink.credentials.client_id,
        "iat": now,
        "nbf": now,
        "exp": now + 300,
        "jti": str(uuid.uuid4()),
        "scope": "webhook",
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def sign(claims: dict[str, Any], key: RSAKey, *, typ: str = "at+jwt") -> str:
    return jwt.encode({"alg": "RS256", "typ": typ, "kid": key.kid}, claims, key)


def unsigned(claims: dict[str, Any]) -> str:
    return f"{b64({'alg': 'none', 'typ': 'at+jwt'})}.{b64(claims)}."


def hs256_with_public_key(claims: dict[str, Any], public_pem: bytes) -> str:
    signing_input = f"{b64({'alg': 'HS256', 'typ': 'at+jwt'})}.{b64(claims)}"
    mac = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(mac)}"


def sender_args(sink: Endpoint) -> list[str]:
    """The OAuth client options of `emit` and `certify`, for the kit's endpoint ``sink``."""
    info = sink.info
    assert info.ca_file is not None
    return [
        "--token-url", info.token_url,
        "--client-id", info.client_id,
        "--client-secret", info.client_secret,
        "--ca", info.ca_file,
    ]  # fmt: skip


def placeholder_args(
    command: str, url: str, *extra: str, token_url: str = "https://a/t"
) -> list[str]:
    """An `emit` or `certify` command line with placeholder OAuth client options."""
    return [
        command,
        url,
        "--token-url",
        token_url,
        "--client-id",
        "c",
        "--client-secret",
        "s",
        *extra,
    ]


def run_kit(args: list[str], timeout: float = 120, **env: str) -> subprocess.CompletedProcess[str]:
    """``python -m webhook_kit ARGS`` as a process, output captured."""
    return subprocess.run(
        [sys.executable, "-m", "webhook_kit", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **env},
    )
