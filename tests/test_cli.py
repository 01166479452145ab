"""The command line: CliRunner for arguments, real subprocesses for serve."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from click.testing import CliRunner

from webhook_kit.cli import main

SERVE_KEYS = {
    "url",
    "token_url",
    "jwks_url",
    "inspect_url",
    "client_id",
    "client_secret",
    "ca_file",
}


def kit_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "webhook_kit", *args]


class Served:
    def __init__(self, process: subprocess.Popen[str], info: dict[str, str]) -> None:
        self.process = process
        self.info = info
        self.http = requests.Session()
        self.http.trust_env = False
        self.http.verify = info["ca_file"]

    def token(self) -> str:
        response = self.http.post(
            self.info["token_url"],
            data={"grant_type": "client_credentials"},
            auth=(self.info["client_id"], self.info["client_secret"]),
            timeout=10,
        )
        value: str = response.json()["access_token"]
        return value


@pytest.fixture
def serve(tmp_path: Path, certs_dir: Path) -> Iterator[object]:
    started: list[subprocess.Popen[str]] = []

    def start(*args: str) -> Served:
        process = subprocess.Popen(
            kit_command("serve", "--port", "0", "--json", "--certs-dir", str(certs_dir), *args),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=tmp_path,
        )
        started.append(process)
        line = process.stdout.readline()  # type: ignore[union-attr]
        assert line, process.stderr.read()  # type: ignore[union-attr]
        return Served(process, json.loads(line))

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=10)


@pytest.mark.slow
@pytest.mark.parametrize("server", ["uvicorn", "hypercorn"])
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_serve_json_line_then_clean_exit(serve: object, server: str, sig: signal.Signals) -> None:
    served: Served = serve("--server", server)  # type: ignore[operator]
    assert set(served.info) == SERVE_KEYS
    assert os.path.isabs(served.info["ca_file"])
    response = served.http.post(
        served.info["url"],
        json={
            "event_id": "e-1",
            "validation_id": "v-1",
            "status": "on-course",
            "previous_status": None,
            "occurred_at": "2026-11-25T21:58:03.412Z",
        },
        headers={"Authorization": f"Bearer {served.token()}"},
        timeout=10,
    )
    assert response.status_code == 200
    served.process.send_signal(sig)
    assert served.process.wait(15) == 0
    rest = served.process.stdout.read()  # type: ignore[union-attr]
    assert rest == "", "with --json nothing but the one line goes to stdout"
    assert "Traceback" not in served.process.stderr.read()  # type: ignore[union-attr]


@pytest.mark.slow
def test_banner_and_one_line_per_request(tmp_path: Path, certs_dir: Path) -> None:
    process = subprocess.Popen(
        kit_command("serve", "--port", "0", "--certs-dir", str(certs_dir)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    try:
        banner = []
        while True:
            line = process.stdout.readline()  # type: ignore[union-attr]
            assert line, process.stderr.read()  # type: ignore[union-attr]
            banner.append(line)
            if line.startswith("Press Ctrl+C"):
                break
        text = "".join(banner)
        for key in SERVE_KEYS:
            assert key in text
        url = next(line.split()[1] for line in banner if line.strip().startswith("url"))
        ca_file = next(line.split()[1] for line in banner if line.strip().startswith("ca_file"))
        http = requests.Session()
        http.trust_env = False
        http.post(url, json={}, verify=ca_file, timeout=10)
        request_line = process.stdout.readline()  # type: ignore[union-attr]
        assert " 401 " in request_line and "missing token" in request_line
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=15)
    assert process.returncode == 0


@pytest.mark.slow
def test_port_in_use_is_one_line_exit_1(certs_dir: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            kit_command("serve", "--port", str(port), "--certs-dir", str(certs_dir)),
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert result.returncode == 1
    assert result.stderr.strip() == f"Error: port {port} on 127.0.0.1 is already in use"


def test_unreadable_certificate_is_one_line_exit_1(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pem"
    bad.write_text("not a certificate")
    result = CliRunner().invoke(
        main, ["serve", "--port", "0", "--certfile", str(bad), "--keyfile", str(bad)]
    )
    assert result.exit_code == 1
    assert result.output.startswith("Error: cannot use certificate")
    assert len(result.output.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "args",
    [
        ["serve", "--port", "notaport"],
        ["serve", "--port", "70000"],
        ["serve", "--respond", "unknown=500"],
        ["serve", "--fail-rate", "2"],
        ["serve", "--server", "gunicorn"],
        ["serve", "--certfile", "x.pem"],
        ["serve", "--path", "_kit"],
        ["serve", "--bogus"],
        ["serve", "--delay", "nan"],
        ["serve", "--delay", "inf"],
        ["serve", "--fail-rate", "nan"],
        ["serve", "--token-ttl", "99999999999"],
        ["serve", "--max-body", "99999999999"],
        ["serve", "--retry-after", "99999999999999"],
        ["serve", "--seed", "99999999999999999999999"],
        ["nosuchcommand"],
    ],
)
def test_bad_flags_are_usage_errors(args: list[str]) -> None:
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output
    assert "Usage:" in result.output or "Error:" in result.output


def test_schemas_list_and_write(tmp_path: Path) -> None:
    listed = CliRunner().invoke(main, ["schemas"])
    assert listed.exit_code == 0
    assert "notification" in listed.output and "settings" in listed.output
    written = CliRunner().invoke(main, ["schemas", "--out", str(tmp_path / "s")])
    assert written.exit_code == 0
    assert (tmp_path / "s" / "notification.json").is_file()


def test_certs_command_makes_then_reuses(tmp_path: Path) -> None:
    first = CliRunner().invoke(main, ["certs", "--dir", str(tmp_path), "--json"])
    assert first.exit_code == 0
    facts = json.loads(first.output)
    assert facts["renewed"] is True and facts["days_left"] >= 360
    again = json.loads(CliRunner().invoke(main, ["certs", "--dir", str(tmp_path), "--json"]).output)
    assert again["renewed"] is False
    renewed = json.loads(
        CliRunner().invoke(main, ["certs", "--dir", str(tmp_path), "--json", "--renew"]).output
    )
    assert renewed["renewed"] is True


def test_version_and_help() -> None:
    assert CliRunner().invoke(main, ["--version"]).exit_code == 0
    helped = CliRunner().invoke(main, ["serve", "--help"])
    assert helped.exit_code == 0 and "--respond" in helped.output


@pytest.mark.slow
def test_demo_runs_the_whole_loop(tmp_path: Path) -> None:
    result = subprocess.run(
        kit_command("demo"), capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "9/9 delivered" in result.stdout


def test_provider_with_an_unusable_database_is_one_line_exit_1(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, ["provider", "--port", "0", "--db", str(tmp_path / "no" / "x.db")]
    )
    assert result.exit_code == 1
    assert result.output.startswith("Error: cannot open database")


# -- issue 10, finding 16: bad input never ends in a traceback ---------------------------------

S = "https://127.0.0.1:9/w"  # a well-formed target nothing listens on
T = "https://127.0.0.1:9/t"


def _sender(command: str, url: str = S, *extra: str, **over: str) -> list[str]:
    options = {"--token-url": T, "--client-id": "c", "--client-secret": "secret", **over}
    return [command, url, *[x for kv in options.items() for x in kv], *extra]


BAD_SENDER_INPUT = [
    # (arguments after the command, the expected code)
    (("https://user@127.0.0.1/w",), 2),
    (("https://user:pw@127.0.0.1/w",), 2),
    (("https://a..b/w",), 2),
    (("https://" + "a" * 64 + ".example/w",), 2),
    (("https://-x.example/w",), 2),
    (("https://127.0.0.1:99999/w",), 2),
    (("https://[::1/w",), 2),
    (("https://exa mple/w",), 2),
    (("https://example.com/\x1b]52;c;ZXZpbA==\x07",), 2),
    (("https://\udcff.example/w",), 2),
    (("",), 2),
    ((S, "--token-url", "https://u@127.0.0.1/t"), 2),
    ((S, "--token-url", "https://x..y/t"), 2),
    # Any Unicode is a usable credential (form-encoded before Basic): the endpoint refuses it.
    ((S, "--client-secret", "s\u20acret"), 1),
    ((S, "--client-id", "\u0100d"), 1),
    ((S, "--client-secret", "line\r\nbreak"), 2),
    ((S, "--client-secret", "bad\udcffbytes"), 2),
    ((S, "--timeout", "nan"), 2),
    ((S, "--timeout", "inf"), 2),
    ((S, "--timeout", "-inf"), 2),
    ((S, "--timeout", "1e400"), 2),
    ((S, "--timeout", "0"), 2),
    ((S, "--timeout", "x"), 2),
    ((S, "--auth-method", "none"), 2),
    ((S, "--ca", "/nonexistent/ca.pem"), 2),
    ((S, "--ca", "."), 2),
]


def _sender_cases(command: str) -> list[tuple[list[str], int]]:
    cases = []
    for args, code in BAD_SENDER_INPUT:
        url, *rest = args
        over = dict(zip(rest[::2], rest[1::2], strict=True))
        cases.append((_sender(command, url, **over), code))
    return cases


BAD_INPUT: list[tuple[list[str], int]] = [
    *_sender_cases("emit"),
    *_sender_cases("certify"),
    (_sender("emit", S, "--retries", "-1"), 2),
    (_sender("emit", S, "--retries", "99999999999999999999"), 2),
    (_sender("emit", S, "--status", "approved"), 2),
    (_sender("emit", S, "--public-only", "--allow-private"), 2),
    (_sender("emit", "http://127.0.0.1/w"), 2),
    (_sender("certify", S, "--probes", "0"), 2),
    (_sender("certify", S, "--probes", "1e400"), 2),
    (_sender("certify", S, "--format", "xml"), 2),
    (["emit", S], 2),
    (["provider", "--port", "70000"], 2),
    (["provider", "--port", "-1"], 2),
    (["provider", "--host", "a..b"], 2),
    (["provider", "--host", "x" * 300], 2),
    (["provider", "--concurrency", "0"], 2),
    (["provider", "--concurrency", "1e400"], 2),
    (["provider", "--timeout", "nan"], 2),
    (["provider", "--timeout", "inf"], 2),
    (["provider", "--public-only", "--allow-private"], 2),
    (["provider", "--apikey", " "], 2),
    (["provider", "--certfile", "x.pem"], 2),
    (["provider", "--ca", "/nonexistent"], 2),
    (["provider", "--server", "gunicorn"], 2),
    (["provider", "--db", "/nonexistent/dir/x.db"], 1),
    (["provider", "--db", "{fifo}"], 1),
    (["provider", "--db", "{notes}"], 1),
    (["provider", "--db", "{directory}"], 1),
    (["serve", "--host", "a..b"], 2),
    (["serve", "--port", "99999"], 2),
    (["certs", "--dir", "{notes}"], 2),
    (["schemas", "--out", "{notes}"], 2),
    (["demo", "--server", "gunicorn"], 2),
    (["demo", "--bogus"], 2),
    (["nosuchcommand"], 2),
    (["--log-level", "loud", "schemas"], 2),
]


@pytest.mark.parametrize(
    "args,code", BAD_INPUT, ids=[f"{n}-{a[0]}" for n, (a, _) in enumerate(BAD_INPUT)]
)
def test_bad_input_is_a_clear_error_never_a_traceback(
    args: list[str],
    code: int,
    tmp_path: Path,
    certs_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith("WEBHOOK_KIT_"):
            monkeypatch.delenv(name)
    notes = tmp_path / "notes.txt"
    notes.write_text("notes\n")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    (tmp_path / "directory").mkdir()
    places = {
        "{notes}": str(notes),
        "{fifo}": str(fifo),
        "{directory}": str(tmp_path / "directory"),
    }
    args = [places.get(a, a) for a in args]
    if args[0] in ("provider", "serve"):
        args += ["--certs-dir", str(certs_dir), "--port", "0"] if "--port" not in args else []
    result = CliRunner().invoke(main, args)
    assert result.exit_code == code, (result.output, result.exception)
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    assert not [r for r in caplog.records if r.exc_info]
    assert "\x1b" not in result.output
    # A usage error says so; exit 1 is either a clear error or a run that failed and says how.
    assert "Error" in result.output or (code == 1 and "FAIL" in result.output)


def test_a_crash_exits_3_with_one_line_and_the_traceback_only_in_debug(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from webhook_kit.contract import schema as schemas

    def broken(name: str) -> Any:
        raise KeyError("s3cret-in-a-message")

    monkeypatch.setattr(schemas, "load", broken)
    result = CliRunner().invoke(main, ["schemas"])
    assert result.exit_code == 3
    assert result.output == (
        "webhook-kit: internal error: KeyError; this is a bug "
        "(--log-level debug shows the traceback)\n"
    )
    debug = CliRunner().invoke(main, ["--log-level", "debug", "schemas"])
    assert debug.exit_code == 3
    assert "Traceback (most recent call last)" in debug.output
    assert debug.output.rstrip().endswith("webhook-kit: internal error: KeyError; this is a bug")


@pytest.mark.slow
def test_a_crash_in_a_real_process_exits_3(tmp_path: Path) -> None:
    """The edge is the console entry point itself, not only CliRunner's view of it."""
    script = (
        "import sys; from webhook_kit.contract import schema as schemas\n"
        "def broken(name): raise RuntimeError('boom')\n"
        "schemas.load = broken\n"
        "from webhook_kit.cli import main\n"
        "sys.argv = ['webhook-kit', 'schemas']\n"
        "main()\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 3
    assert "Traceback" not in result.stderr
    assert "internal error: RuntimeError" in result.stderr


def test_provider_db_that_is_not_a_regular_file_keeps_its_mode(tmp_path: Path) -> None:
    """Finding 14 through the command line (a FIFO stands in for /dev/null)."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo, 0o644)
    result = CliRunner().invoke(
        main, ["provider", "--port", "0", "--db", str(fifo), "--certs-dir", str(tmp_path / "c")]
    )
    assert result.exit_code == 1
    assert result.output == f"Error: cannot open database {fifo}: not a regular file\n"
    assert os.stat(fifo).st_mode & 0o777 == 0o644
