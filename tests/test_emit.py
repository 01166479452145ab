"""`webhook-kit emit` against the kit's endpoint, through the real dispatcher."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from tests.helpers import placeholder_args, run_kit, sender_args
from webhook_kit.cli import main
from webhook_kit.contract.statuses import STATUSES
from webhook_kit.endpoint.service import Endpoint
from webhook_kit.endpoint.settings import FaultRule, FaultSettings

# Every test runs webhook-kit emit as a process.
pytestmark = pytest.mark.slow


def emit_args(sink: Endpoint, *extra: str) -> list[str]:
    return ["emit", sink.info.url, *sender_args(sink), *extra]


def run_emit(args: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    return run_kit(args, timeout=120, **env)


def test_emit_all_statuses_exit_0(start_endpoint: Any) -> None:
    sink: Endpoint = start_endpoint()
    result = run_emit(emit_args(sink, "--all"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "9/9 sent" in result.stdout
    assert [r["status"] for r in sink.recorder.query()] == list(STATUSES)
    assert sink.info.client_secret not in result.stdout + result.stderr


def test_emit_selected_statuses_json(start_endpoint: Any) -> None:
    sink: Endpoint = start_endpoint()
    result = run_emit(
        emit_args(sink, "--status", "selfie-uploaded", "--status", "deleted", "--json")
    )
    assert result.returncode == 0
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(o["status"], o["state"]) for o in lines] == [
        ("selfie-uploaded", "sent"),
        ("deleted", "sent"),
    ]


def test_emit_exit_1_when_one_fails(start_endpoint: Any) -> None:
    sink: Endpoint = start_endpoint(faults=FaultSettings(respond=(FaultRule.parse("deleted=500"),)))
    result = run_emit(emit_args(sink, "--all"))
    assert result.returncode == 1
    assert "FAILED deleted" in result.stdout and "HTTP 500" in result.stdout
    assert "8/9 sent" in result.stdout


def test_emit_retries(start_endpoint: Any) -> None:
    sink: Endpoint = start_endpoint(
        faults=FaultSettings(respond=(FaultRule.parse("*=503x1"),), retry_after=0)
    )
    result = run_emit(emit_args(sink, "--status", "on-course", "--retries", "2"))
    assert result.returncode == 0, result.stdout
    assert "2 attempt(s)" in result.stdout


def test_emit_secret_from_the_environment(start_endpoint: Any) -> None:
    sink: Endpoint = start_endpoint()
    args = [a for a in emit_args(sink, "--status", "on-course")]
    index = args.index("--client-secret")
    del args[index : index + 2]
    result = run_emit(args, WEBHOOK_KIT_EMIT_CLIENT_SECRET=sink.info.client_secret)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    "args,message",
    [
        (
            placeholder_args("emit", "not-a-url"),
            "https://",
        ),
        (
            placeholder_args("emit", "http://127.0.0.1/w"),
            "https://",
        ),
        (
            ["emit", "https://127.0.0.1/w", "--token-url", "https://x/t", "--client-id", "a"],
            "--client-secret",
        ),
        (
            placeholder_args("emit", "https://127.0.0.1/w", "--all", "--status", "deleted"),
            "not both",
        ),
        (
            placeholder_args("emit", "https://127.0.0.1/w", "--status", "approved"),
            "approved",
        ),
    ],
)
def test_emit_usage_errors(args: list[str], message: str) -> None:
    result = CliRunner().invoke(main, args, env={"WEBHOOK_KIT_EMIT_CLIENT_SECRET": ""})
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_emit_unreachable_endpoint_is_a_failure_not_a_crash(tmp_path: Path) -> None:
    result = run_emit(
        placeholder_args(
            "emit",
            "https://127.0.0.1:9/webhook",
            "--status",
            "on-course",
            token_url="https://127.0.0.1:9/token",
        )
    )
    assert result.returncode == 1
    assert "token URL unreachable" in result.stdout
    assert "Traceback" not in result.stderr


def test_emit_shows_a_hostile_location_without_acting_on_it(
    start_endpoint: Any, certs_dir: Path
) -> None:
    """Finding 1 (issue 10): a redirect's Location carrying OSC 52 (clipboard), OSC 8 (a
    hyperlink), a screen clear and rich markup is printed with its control bytes escaped."""
    from tests.delivery.hostile import HOSTILE_LOCATION, raw_server, redirect

    sink: Endpoint = start_endpoint()
    with raw_server(redirect(HOSTILE_LOCATION), certs_dir=certs_dir) as port:
        url = f"https://127.0.0.1:{port}/webhook"
        for extra in ((), ("--json",)):
            result = run_emit(["emit", url, *sender_args(sink), "--status", "on-course", *extra])
            assert result.returncode == 1, result.stdout + result.stderr
            out = result.stdout + result.stderr
            for raw in ("\x1b", "\x07"):
                assert raw not in out
            if extra:
                reason = json.loads(result.stdout.splitlines()[0])["reason"]
            else:
                reason = result.stdout.splitlines()[0]
            assert "302 redirect to /x\\x1b]52;c;ZXZpbA==\\x07" in reason
            assert "[/][link=https://evil.example/]" in reason  # text, not markup
