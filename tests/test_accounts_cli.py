"""``webhook-kit accounts`` end to end, on an SQLite file and on PostgreSQL.

Through ``CliRunner`` (the real command group, in this process), plus one real subprocess for the
exit codes as a shell sees them. The key is printed by ``add`` and ``rotate-key`` only, and
stored only as its hash.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from webhook_kit.cli import main

pytestmark = pytest.mark.slow


def run(*args: str) -> Any:
    return CliRunner().invoke(main, ["accounts", *args], catch_exceptions=False)


def ok(*args: str) -> Any:
    result = run(*args)
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    return result


def test_accounts_lifecycle(db_url: str) -> None:
    db = ["--db", db_url]
    added = ok("add", "acme", *db)
    lines = added.stdout.splitlines()
    assert lines[0].startswith("account acme (acc_")
    key = next(line.split()[1] for line in lines if line.startswith("apikey:"))
    assert key.startswith("wk_") and len(key) > 40
    assert "only its hash is stored" in added.stdout
    created = json.loads(ok("add", "globex", *db, "--json").stdout)
    assert set(created) == {"id", "name", "apikey"} and created["name"] == "globex"
    printed = [key, created["apikey"]]

    listed = json.loads(ok("list", *db, "--json").stdout)
    names = [a["name"] for a in listed]
    assert names == sorted(names) and {"acme", "globex"} <= set(names)
    assert {a["id"] for a in listed if a["name"] == "globex"} == {created["id"]}
    text_list = ok("list", *db).stdout
    assert "acme" in text_list and created["id"] in text_list
    assert json.loads(ok("list", *db, "--after", "acme", "--json").stdout)[0]["name"] != "acme"

    keys = json.loads(ok("keys", "acme", *db, "--json").stdout)
    assert [k["state"] for k in keys] == ["active"]
    first_key_id = keys[0]["key_id"]
    assert first_key_id not in key  # an id from the hash, not a piece of the key

    rotated = json.loads(ok("rotate-key", "acme", *db, "--grace", "1h", "--json").stdout)
    assert rotated["grace_seconds"] == 3600 and rotated["apikey"] != key
    printed.append(rotated["apikey"])
    keys = json.loads(ok("keys", "acme", *db, "--json").stdout)
    states = {k["key_id"]: k["state"] for k in keys}
    assert states[first_key_id] == "expiring" and sorted(states.values()) == ["active", "expiring"]
    assert "stop working in 30m" in ok("rotate-key", "acme", *db, "--grace", "30m").stdout

    revoked = ok("revoke-key", "acme", *db, "--key-id", first_key_id)
    assert "1 key(s) of acme revoked" in revoked.stdout
    states = {k["key_id"]: k["state"] for k in json.loads(ok("keys", "acme", *db, "--json").stdout)}
    assert states[first_key_id] == "revoked"
    again = run("revoke-key", "acme", *db, "--key-id", first_key_id)
    assert again.exit_code == 1 and "no live key" in again.output
    assert "2 key(s) of acme revoked" in ok("revoke-key", "acme", *db).stdout
    assert set(k["state"] for k in json.loads(ok("keys", "acme", *db, "--json").stdout)) == {
        "revoked"
    }

    # No key is ever shown again: not by list, keys (text or JSON), nor any other answer.
    shown = "".join(
        r.output
        for r in (
            run("list", *db),
            run("list", *db, "--json"),
            run("keys", "acme", *db),
            run("keys", "acme", *db, "--json"),
            run("keys", "globex", *db, "--json"),
        )
    )
    for printed_key in printed:
        assert printed_key not in shown

    # remove: asks without --yes (a "no" removes nothing), refuses the default account.
    declined = CliRunner().invoke(main, ["accounts", "remove", "acme", *db], input="n\n")
    assert declined.exit_code == 1 and "Aborted" in declined.output
    assert "acme" in ok("list", *db).stdout
    default = run("remove", "default", *db, "--yes")
    assert default.exit_code == 2 and "cannot be removed" in default.output
    assert "account acme removed" in ok("remove", "acme", *db, "--yes").stdout
    assert [a["name"] for a in json.loads(ok("list", *db, "--json").stdout)] == [
        "default",
        "globex",
    ]

    # Unknown accounts: one clear line, exit 1.
    for args in (
        ("keys", "acme"),
        ("rotate-key", "acme"),
        ("revoke-key", "acme"),
        ("remove", "acme", "--yes"),
    ):
        result = run(*args, *db)
        assert result.exit_code == 1, args
        assert "no account named 'acme'" in result.output and "Traceback" not in result.output

    duplicate = run("add", "globex", *db)
    assert duplicate.exit_code == 1 and "globex" in duplicate.output
    assert "apikey" not in duplicate.stdout  # no key printed for an account not made

    if not db_url.startswith("postgresql"):
        data = Path(db_url).read_bytes()
        for wal in Path(db_url).parent.glob(Path(db_url).name + "-*"):
            data += wal.read_bytes()
        assert b"globex" in data  # the file is readable as it is: a missing key means hashed
        for printed_key in printed:
            assert printed_key.encode() not in data


@pytest.mark.parametrize(
    "args,message",
    [
        (("add", ""), "printable"),
        (("add", " padded "), "printable"),
        (("add", "x" * 101), "printable"),
        (("add", "tab\there"), "printable"),
        (("rotate-key", "acme", "--grace", "soon"), "--grace"),
        (("rotate-key", "acme", "--grace", "-5m"), "--grace"),
        (("list", "--limit", "0"), "--limit"),
        (("revoke-key", "acme", "--bogus"), "--bogus"),
    ],
)
def test_bad_input_is_a_usage_error(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    db = str(tmp_path / "kit.db")
    ok("add", "acme", "--db", db)
    result = run(*args, "--db", db)
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    # Nothing was done: acme still has its one active key, no other account was made.
    listed = json.loads(ok("list", "--db", db, "--json").stdout)
    assert [a["name"] for a in listed] == ["acme", "default"]
    keys = json.loads(ok("keys", "acme", "--db", db, "--json").stdout)
    assert [k["state"] for k in keys] == ["active"]


def test_missing_db_is_a_usage_error() -> None:
    result = run("list")
    assert result.exit_code == 2 and "--db" in result.output


def test_exit_codes_as_a_shell_sees_them(tmp_path: Path) -> None:
    db = str(tmp_path / "kit.db")

    def kit(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "webhook_kit", "accounts", *args, "--db", db],
            capture_output=True,
            text=True,
            timeout=60,
        )

    added = kit("add", "acme", "--json")
    assert added.returncode == 0, added.stderr
    key = json.loads(added.stdout)["apikey"]
    assert key not in added.stderr
    unknown = kit("keys", "nobody")
    assert unknown.returncode == 1 and "no account named 'nobody'" in unknown.stderr
    assert "Traceback" not in unknown.stderr
    bad = kit("add", "")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    listed = kit("list")
    assert listed.returncode == 0 and "acme" in listed.stdout and key not in listed.stdout
