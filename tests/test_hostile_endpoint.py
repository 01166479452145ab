"""The dispatcher, ``emit`` and ``certify`` against a hostile endpoint (tests/hostile_endpoint.py).

For every scripted scenario: no traceback, exit code 0 or 1, JSON that parses, JUnit that a
strict XML parser reads, no raw ESC, BEL, NUL or CSI byte in stdout, stderr or report files, rich
markup shown as written, and certify done within its own overall deadline.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import gc
import json
import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import short_failure
from tests.hostile_endpoint import SCENARIOS, HostileEndpoint, Scenario, running_hostile
from tests.provider.helpers import ProviderClient
from webhook_kit.contract import notifications
from webhook_kit.delivery.dispatcher import Dispatcher, DispatcherSettings, Target
from webhook_kit.delivery.policy import RetryPolicy
from webhook_kit.ids import new_id
from webhook_kit.oauth.client import OAuthSettings
from webhook_kit.storage.rows import AttemptRow, EventRow
from webhook_kit.storage.url import open_storage

pytestmark = pytest.mark.slow

#: Seconds per request for the commands under test: every hostile answer is cut off by it.
TIMEOUT = 1.5
#: certify's own overall deadline in these runs (``--deadline``).
CERTIFY_DEADLINE = 40
#: How long a command may take before it counts as hung: certify's deadline plus start-up and
#: report writing; emit and the dispatcher stop far earlier (every request has TIMEOUT).
HUNG = CERTIFY_DEADLINE + 30.0
#: Characters that act on a terminal when printed raw (C1 CSI included).
CONTROLS = ("\x1b", "\x07", "\x00", "\x9b")
CLIENT = ["--client-id", "hostile-client", "--client-secret", "hostile-secret-value"]

#: Scenarios each driver still fails on today, and why: the bug the lead routes. A scenario that
#: starts passing makes its xfail fail (strict), so the list cannot go stale silently.
KNOWN: dict[tuple[str, str], str] = {}


@pytest.fixture(scope="module")
def hostile(certs_dir: Path) -> Iterator[HostileEndpoint]:
    with running_hostile(certs_dir) as endpoint:
        yield endpoint


def _known(driver: str, name: str) -> list[pytest.MarkDecorator]:
    reason = KNOWN.get((driver, name))
    return [pytest.mark.xfail(strict=True, reason=reason)] if reason else []


def _params(driver: str) -> list[object]:
    return [pytest.param(name, id=name, marks=_known(driver, name)) for name in SCENARIOS]


def assert_safe_text(text: str, where: str, scenario: Scenario) -> None:
    assert "Traceback (most recent call last)" not in text, f"{where}: traceback\n{text[-2000:]}"
    for char in CONTROLS:
        assert char not in text, f"{where}: raw {char!r} in output: {text[:1500]!r}"
    if scenario.markup and "link=https://evil.example/" in text:
        # Shown as written: the brackets are still there, so rich did not read it as markup.
        assert "[link=https://evil.example/]" in text, f"{where}: markup was interpreted: {text!r}"


def run_kit(args: list[str], cwd: Path, hung: float = HUNG) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "webhook_kit", *args],
        capture_output=True,
        timeout=hung,
        cwd=cwd,
        env={**os.environ, "PYTHONIOENCODING": "utf-8", "COLUMNS": "200"},
    )
    # Decoded without losing anything: a raw byte that is not UTF-8 shows as \\xNN, never hides.
    return subprocess.CompletedProcess(
        result.args,
        result.returncode,
        result.stdout.decode("utf-8", "backslashreplace"),
        result.stderr.decode("utf-8", "backslashreplace"),
    )


def run_all(cwd: Path, *commands: list[str]) -> list[subprocess.CompletedProcess[str]]:
    """The commands at once: each mostly waits on the endpoint, so this is what keeps a silent
    scenario from costing its wait once per report format."""
    with concurrent.futures.ThreadPoolExecutor(len(commands)) as pool:
        return list(pool.map(lambda args: run_kit(args, cwd), commands))


def assert_finished(
    result: subprocess.CompletedProcess[str], where: str, scenario: Scenario
) -> None:
    assert result.returncode in (0, 1), (
        f"{where}: exit {result.returncode}\nstdout: {result.stdout[-1500:]}\n"
        f"stderr: {result.stderr[-3000:]}"
    )
    assert_safe_text(result.stdout, f"{where} stdout", scenario)
    assert_safe_text(result.stderr, f"{where} stderr", scenario)


# -- the dispatcher -------------------------------------------------------------------------------


Recorded = list[tuple[str, EventRow | None, list[AttemptRow]]]


async def _dispatch(hostile: HostileEndpoint, name: str) -> Recorded:
    """Each event's id, its row and its attempts once the dispatcher is idle."""
    storage = await open_storage(":memory:")
    settings = DispatcherSettings(
        concurrency=2, timeout=TIMEOUT, ca_file=hostile.ca_file, policy=RetryPolicy(schedule=())
    )
    oauth = OAuthSettings(
        hostile.token_url(name), "hostile-client", "hostile-secret-value", timeout=TIMEOUT
    )
    target = Target(hostile.webhook_url(name), oauth)
    bodies = list(
        notifications.lifecycle(
            ("on-course", "document-uploaded", "deleted"), validation_id=new_id()
        )
    )
    try:
        async with Dispatcher(storage.events, settings, target=target) as dispatcher:
            ids = await dispatcher.enqueue_many(bodies)
            assert await dispatcher.wait_idle(timeout=HUNG), "the dispatcher never went idle"
        return [
            (
                event_id,
                await storage.events.event(event_id),
                await storage.events.attempts(event_id),
            )
            for event_id in ids
        ]
    finally:
        await storage.close()


# aiohttp closes a TLS connection cut off mid-body asynchronously; when asyncio.run ends the loop
# first, the socket is left to the garbage collector (a ResourceWarning, not a leak that lasts).
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.parametrize("name", _params("dispatcher"))
@short_failure
def test_dispatcher_records_every_attempt(hostile: HostileEndpoint, name: str) -> None:
    """Each event ends sent or failed with its attempt on record, whatever the endpoint did."""
    recorded = asyncio.run(_dispatch(hostile, name))
    # Collected here, under this test's filter, rather than as a warning in whichever test the
    # garbage collector happens to run next.
    gc.collect()
    assert len(recorded) == 3
    for event_id, row, attempts in recorded:
        assert row is not None
        assert row.state in ("sent", "failed"), row
        assert len(attempts) == 1, f"{event_id}: {len(attempts)} attempts on record"
        reason = attempts[0].reason
        assert isinstance(reason, str) and reason
        # The dispatcher's catch-all for its own bugs; hostile input deserves a real reason.
        assert not reason.startswith("internal error"), reason
        # The provider API serves it as UTF-8 JSON: a lone surrogate (a non-UTF-8 header
        # decoded with surrogateescape) would make every answer that lists it a 500.
        reason.encode("utf-8")


# -- the provider, delivering through its dispatcher ---------------------------------------------


def _wait_for_attempt(api: ProviderClient, validation_id: str) -> list[dict[str, Any]]:
    deadline = time.monotonic() + HUNG
    while time.monotonic() < deadline:
        response = api.call("GET", f"/validation/{validation_id}/events")
        assert response.status_code == 200, response.text[:300]
        events = response.json()["data"]
        if events and events[0]["attempts"]:
            return list(events)
        time.sleep(0.05)  # polling a condition, with a deadline
    raise AssertionError("the provider recorded no delivery attempt")


@pytest.mark.parametrize("name", _params("provider"))
@short_failure
def test_provider_api_stays_readable(
    hostile: HostileEndpoint, start_provider: Any, name: str
) -> None:
    """The provider delivers to the hostile endpoint (its queue and POST /webhook/test); every
    read of what it recorded still answers 2xx JSON."""
    api = ProviderClient(start_provider(timeout=TIMEOUT))
    settings = {
        "url": hostile.webhook_url(name),
        "auth": {
            "token_url": hostile.token_url(name),
            "client_id": "hostile-client",
            "client_secret": "hostile-secret-value",
        },
    }
    assert api.call("POST", "/webhook/settings", json=settings).status_code == 201
    validation_id = api.new_validation()
    test = api.call("POST", "/webhook/test")
    assert test.status_code == 200, test.text[:300]
    assert test.json()["data"]["ok"] in (True, False)
    events = _wait_for_attempt(api, validation_id)
    assert events[0]["attempts"][0]["outcome"]
    for path in ("/webhook/events", "/webhook/settings", f"/validation/{validation_id}"):
        response = api.call("GET", path)
        assert response.status_code == 200, f"{path}: {response.status_code} {response.text[:300]}"
        response.json()
    assert "hostile-secret-value" not in test.text + json.dumps(events)


# -- emit ---------------------------------------------------------------------------------------


def emit_args(hostile: HostileEndpoint, name: str, *extra: str) -> list[str]:
    """``webhook-kit emit`` at one scenario, trusting the kit's CA."""
    return [
        "emit",
        hostile.webhook_url(name),
        "--token-url",
        hostile.token_url(name),
        *CLIENT,
        "--ca",
        str(hostile.ca_file),
        *extra,
        "--timeout",
        str(TIMEOUT),
    ]


@pytest.mark.parametrize("name", _params("emit"))
@short_failure
def test_emit_text_and_json(hostile: HostileEndpoint, name: str, tmp_path: Path) -> None:
    scenario = hostile.scenarios[name]
    args = emit_args(hostile, name, "--status", "on-course", "--status", "deleted")
    text, as_json = run_all(tmp_path, args, [*args, "--json"])
    assert_finished(text, "emit", scenario)
    assert "2 sent" in text.stdout or "FAILED" in text.stdout, text.stdout

    assert_finished(as_json, "emit --json", scenario)
    lines = [json.loads(line) for line in as_json.stdout.splitlines() if line.strip()]
    assert [line["status"] for line in lines] == ["on-course", "deleted"]


@short_failure
def test_emit_does_not_wait_an_hour_for_retry_after(
    hostile: HostileEndpoint, tmp_path: Path
) -> None:
    name = "retry_after_huge"
    args = emit_args(hostile, name, "--status", "on-course", "--retries", "1")
    before = len(hostile.requests_for(name, "webhook"))
    try:
        result = run_kit(args, tmp_path, hung=40)  # emit's own longest delay is 30 s
    except subprocess.TimeoutExpired as exc:
        raise AssertionError("emit --retries 1 still waiting after 40 s") from exc
    assert_finished(result, "emit --retries 1", hostile.scenarios[name])
    assert "FAILED" in result.stdout
    assert len(hostile.requests_for(name, "webhook")) == before + 2  # the retry was sent


# -- certify ------------------------------------------------------------------------------------


def certify_args(hostile: HostileEndpoint, name: str) -> list[str]:
    return [
        "certify",
        hostile.webhook_url(name),
        "--token-url",
        hostile.token_url(name),
        *CLIENT,
        "--ca",
        str(hostile.ca_file),
        "--timeout",
        str(TIMEOUT),
        "--probes",
        "2",
        "--deadline",
        str(CERTIFY_DEADLINE),
    ]


@pytest.mark.parametrize("name", _params("certify"))
@short_failure
def test_certify_reports(hostile: HostileEndpoint, name: str, tmp_path: Path) -> None:
    """Text on stdout, JSON on stdout, and JUnit and JSON written to files: all complete and
    clean."""
    scenario = hostile.scenarios[name]
    args = certify_args(hostile, name)
    junit_file, json_file = tmp_path / "report.xml", tmp_path / "report.json"
    text, as_json, junit, json_output = run_all(
        tmp_path,
        args,
        [*args, "--format", "json"],
        [*args, "--format", "junit", "--output", str(junit_file)],
        [*args, "--format", "json", "--output", str(json_file)],
    )

    assert_finished(text, "certify text", scenario)
    assert "FAIL" in text.stdout or "PASS" in text.stdout, text.stdout

    assert_finished(as_json, "certify json", scenario)
    report = json.loads(as_json.stdout)
    assert report["verdict"] in ("pass", "fail")
    assert report["checks"], report
    assert_safe_text(json.dumps(report, ensure_ascii=False), "certify json (decoded)", scenario)

    assert_finished(json_output, "certify json --output", scenario)
    written = json_file.read_bytes().decode("utf-8", "backslashreplace")
    assert_safe_text(written, "json file", scenario)
    assert json.loads(written)["verdict"] == report["verdict"]

    assert_finished(junit, "certify junit --output", scenario)
    raw = junit_file.read_bytes()
    suite = ET.fromstring(raw)  # expat: strict XML 1.0, refuses control characters
    assert suite.find("testsuite") is not None
    assert_safe_text(raw.decode("utf-8", "backslashreplace"), "junit file", scenario)
    assert_safe_text(
        "".join(suite.itertext())
        + "".join(value for element in suite.iter() for value in element.attrib.values()),
        "junit file (parsed)",
        scenario,
    )


@pytest.mark.parametrize("name", ["webhook_silent", "token_silent"])
@short_failure
def test_certify_stops_at_its_overall_deadline(
    hostile: HostileEndpoint, name: str, tmp_path: Path
) -> None:
    """Per-request timeouts alone would take minutes here (10 s for each of dozens of requests):
    the overall deadline ends the run, and the checks it cut off fail with that reason."""
    deadline = 6
    args = certify_args(hostile, name)
    args[args.index("--timeout") + 1] = "10"
    args[args.index("--deadline") + 1] = str(deadline)
    result = run_kit([*args, "--format", "json"], tmp_path)
    assert_finished(result, "certify --deadline", hostile.scenarios[name])
    report = json.loads(result.stdout)
    assert report["verdict"] == "fail"
    late = [c for c in report["checks"] if "overall deadline" in c["detail"]]
    assert late, [c["detail"] for c in report["checks"]]


@short_failure
def test_certify_shows_the_users_own_url_as_written(
    hostile: HostileEndpoint, tmp_path: Path
) -> None:
    """Markup-like text in the URL the user typed is not markup either (it printed as
    ``?filter=x``, and ``[/]`` crashed the report)."""
    args = certify_args(hostile, "token_silent")
    url = hostile.webhook_url("token_silent") + "?filter[status]=x&[/]"
    args[args.index(hostile.webhook_url("token_silent"))] = url
    args[args.index("--timeout") + 1] = "0.5"
    result = run_kit(args, tmp_path)
    assert_finished(result, "certify", hostile.scenarios["token_silent"])
    assert "?filter[status]=x&[/]" in result.stdout.replace("\n", ""), result.stdout
