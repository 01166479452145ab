"""`webhook-kit certify`: exit codes, the three report formats, usage errors."""

from __future__ import annotations

import json
import os
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from tests.certify.receivers import Breakage, receiver
from tests.helpers import placeholder_args, run_kit, sender_args
from webhook_kit.certify.pipeline import CHECK_IDS
from webhook_kit.cli import main
from webhook_kit.endpoint.service import Endpoint
from webhook_kit.testing import serve_app

# Full certify runs against live endpoints (about 1 s each).
pytestmark = pytest.mark.slow


def args_for(sink: Endpoint, url: str | None = None, *extra: str) -> list[str]:
    return ["certify", url or sink.info.url, *sender_args(sink), "--probes", "3", *extra]


def run_cli(args: list[str]) -> subprocess.CompletedProcess[str]:
    return run_kit(args)


def test_text_report_and_exit_0(start_endpoint: Any) -> None:
    sink: Endpoint = start_endpoint()
    result = run_cli(args_for(sink))
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[-1].startswith("PASS: ")
    for requirement in ("url", "https", "oauth", "json", "delivery", "availability", "robustness"):
        assert requirement in result.stdout
    assert sink.info.client_secret not in result.stdout + result.stderr


def test_json_report(start_endpoint: Any) -> None:
    sink: Endpoint = start_endpoint()
    result = run_cli(args_for(sink, None, "--format", "json"))
    assert result.returncode == 0
    report = json.loads(result.stdout)
    assert set(report) == {"url", "verdict", "strict", "checks"}
    assert report["strict"] is False
    assert report["verdict"] == "pass" and report["url"] == sink.info.url
    assert [c["id"] for c in report["checks"]] == list(CHECK_IDS)
    for check in report["checks"]:
        assert set(check) == {
            "id",
            "requirement",
            "verdict",
            "severity",
            "detail",
            "duration_ms",
            "blocked_by",
        }
        assert check["verdict"] in ("pass", "fail", "warn", "skip")
        # Severity says what a non-pass means: fail for a requirement, warn for hardening.
        expected = check["verdict"] if check["verdict"] in ("fail", "warn") else None
        assert check["severity"] == expected


def test_junit_report_to_a_file_and_exit_1(
    start_endpoint: Any, certs_dir: Path, tmp_path: Path
) -> None:
    sink: Endpoint = start_endpoint()
    out = tmp_path / "certify.xml"
    with serve_app(
        receiver(sink.verifier, Breakage(fail_status="confirmed")), certs_dir=certs_dir
    ) as served:
        result = run_cli(
            args_for(sink, served.url("/webhook"), "--format", "junit", "--output", str(out))
        )
    assert result.returncode == 1
    assert result.stdout.startswith("FAIL: ")
    suite = ET.parse(out).getroot().find("testsuite")
    assert suite is not None
    cases = suite.findall("testcase")
    assert len(cases) == len(CHECK_IDS) and suite.get("failures") == "1"
    (failing,) = [c for c in cases if c.find("failure") is not None]
    assert (
        failing.get("name") == "delivery.confirmed"
        and failing.get("classname") == "certify.delivery"
    )


def test_broken_endpoint_text_report_names_the_fix(start_endpoint: Any, certs_dir: Path) -> None:
    sink: Endpoint = start_endpoint()
    with serve_app(receiver(sink.verifier, Breakage(redirect=True)), certs_dir=certs_dir) as served:
        result = CliRunner().invoke(main, args_for(sink, served.url("/webhook")))
    assert result.exit_code == 1
    assert "redirect" in result.output and "FAIL: " in result.output


@pytest.mark.parametrize(
    "args,message",
    [
        (
            placeholder_args("certify", "not-a-url"),
            "absolute",
        ),
        (
            placeholder_args("certify", "ftp://x/y"),
            "absolute",
        ),
        (
            ["certify", "https://127.0.0.1/w", "--token-url", "https://a/t", "--client-id", "c"],
            "--client-secret",
        ),
        (
            ["certify", "https://127.0.0.1/w", "--client-id", "c", "--client-secret", "s"],
            "--token-url",
        ),
        (
            placeholder_args("certify", "https://127.0.0.1/w", token_url="nope"),
            "absolute",
        ),
        (
            placeholder_args("certify", "https://127.0.0.1/w", "--format", "pdf"),
            "pdf",
        ),
        (
            placeholder_args("certify", "https://127.0.0.1/w", "--probes", "0"),
            "probes",
        ),
    ],
)
def test_bad_arguments_exit_2(args: list[str], message: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WEBHOOK_KIT_")}
    result = CliRunner().invoke(main, args, env={**env, "WEBHOOK_KIT_CERTIFY_CLIENT_SECRET": ""})
    assert result.exit_code == 2, result.output
    assert message in result.output
