"""What every interop test shares: run certify as a user does, and require the third-party parts
in CI (``WEBHOOK_KIT_REQUIRE_INTEROP=1``, set by ``.ci/run``) while skipping on a laptop."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

#: The forgeries that need a JWT (an opaque token makes them skip), signed or keyed so that only
#: a broken verifier accepts them.
JWT_FORGERIES = (
    "oauth.tampered_token",
    "oauth.alg_none",
    "oauth.alg_confusion",
    "oauth.embedded_jwk",
    "oauth.embedded_x5c",
    "oauth.jku",
    "oauth.x5u",
    "oauth.unknown_kid",
    "oauth.no_kid",
    "oauth.kid_injection",
)


def require(available: bool, what: str, how: str) -> None:
    """Skip with the reason when ``what`` is missing; in CI a missing part is a failure."""
    if available:
        return
    if os.environ.get("WEBHOOK_KIT_REQUIRE_INTEROP"):
        pytest.fail(f"{what} is missing, and CI requires it ({how})")
    pytest.skip(f"{what} is not installed ({how})")


def certify_json(
    url: str,
    *,
    token_url: str | None = None,
    client_id: str,
    client_secret: str,
    ca_file: str | Path | None,
    extra: Sequence[str] = (),
    timeout: float = 180,
) -> dict[str, Any]:
    """``webhook-kit certify ... --format json`` as a subprocess; the parsed report.

    Exit 0 must mean a pass verdict and 1 a fail; anything else (a crash, a usage error) fails
    the test, with stderr.
    """
    command = [sys.executable, "-m", "webhook_kit", "certify", url, "--client-id", client_id]
    if token_url is not None:
        command += ["--token-url", token_url]
    if ca_file is not None:
        command += ["--ca", str(ca_file)]
    command += ["--format", "json", "--probes", "3", *extra]
    env = dict(os.environ, WEBHOOK_KIT_CERTIFY_CLIENT_SECRET=client_secret)
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)
    assert done.returncode in (0, 1), f"exit {done.returncode}: {done.stderr[-3000:]}"
    report: dict[str, Any] = json.loads(done.stdout)
    assert (report["verdict"] == "pass") == (done.returncode == 0), done.stdout[-2000:]
    return report


def verdicts(report: dict[str, Any]) -> dict[str, str]:
    return {c["id"]: c["verdict"] for c in report["checks"]}


def failures(report: dict[str, Any]) -> dict[str, str]:
    """Failed check id -> requirement."""
    return {c["id"]: c["requirement"] for c in report["checks"] if c["verdict"] == "fail"}


def explain(report: dict[str, Any]) -> str:
    """The non-pass checks, for assertion messages."""
    return "\n".join(
        f"{c['verdict']:5} {c['id']}: {c['detail']}"
        for c in report["checks"]
        if c["verdict"] != "pass"
    )
