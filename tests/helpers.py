"""Test helpers: token forgery for attacks, command lines, and the kit as a process.

The HTTPS clients live in ``harnesses.clients`` (shared with ``scripts/``); they are re-exported
here for the tests.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey

from harnesses.clients import KitClient as KitClient
from harnesses.clients import notification as notification
from webhook_kit.endpoint.service import Endpoint


def b64(data: bytes | dict[str, Any]) -> str:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def claims_for(sink: Endpoint, **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": sink.urls.base,
        "aud": sink.settings.tokens.audience,
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


def short_failure(test: Callable[..., None]) -> Callable[..., None]:
    """A test whose failure is reported as its message (and hypothesis' falsifying example),
    without a traceback.

    After a server thread in this process hit a RecursionError (deep nesting), pytest's
    traceback formatting (ast.parse of each frame's source) can die with CPython 3.11's
    "AST constructor recursion depth mismatch", an INTERNALERROR that ends the whole run.
    """

    @functools.wraps(test)
    def run(*args: Any, **kwargs: Any) -> None:
        try:
            test(*args, **kwargs)
        except Exception as exc:
            notes = "\n".join(getattr(exc, "__notes__", []))
            pytest.fail(f"{type(exc).__name__}: {exc}\n{notes}", pytrace=False)

    return run
