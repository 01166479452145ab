"""``serve``'s flags that register the sender client and require token binding: bad values
are usage errors (exit 2) naming the flag; good ones serve (one real process)."""

from __future__ import annotations

import datetime as dt
import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner

from tests.oauth.keys import ClientPki, client_cert, make_client_pki, private_pem, rsa_key
from webhook_kit.cli import main
from webhook_kit.oauth.assertion import ASSERTION_TYPE, sign_client_assertion
from webhook_kit.oauth.client_auth import METHODS, ClientCredentials
from webhook_kit.oauth.verifier import BINDINGS


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> ClientPki:
    return make_client_pki(tmp_path_factory.mktemp("flags-pki"))


def usage_error(*args: str) -> str:
    result = CliRunner().invoke(main, ["serve", "--port", "0", *args])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    return result.output


def test_the_choices_come_from_the_registries() -> None:
    text = CliRunner().invoke(main, ["serve", "--help"]).output
    for method in METHODS:
        assert method in text
    assert "[none|mtls|dpop]" in text
    assert ("none", "mtls", "dpop") == BINDINGS


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--client-auth-method", "client_secret_jwt"], "Invalid value for '--client-auth-method'"),
        (["--token-binding", "both"], "Invalid value for '--token-binding'"),
        (["--client-auth-method", "private_key_jwt"], "--client-public-key: private_key_jwt needs"),
        (
            ["--client-auth-method", "private_key_jwt", "--client-jwks-url", "http://x/jwks"],
            "--client-jwks-url: must be an https:// URL",
        ),
        (
            ["--client-jwks-url", "https://x/jwks"],
            "--client-jwks-url: not used by client_secret_basic",
        ),
        (["--client-auth-method", "tls_client_auth"], "--client-ca: tls_client_auth needs"),
        (
            ["--client-auth-method", "self_signed_tls_client_auth"],
            "--client-cert: self_signed_tls_client_auth needs",
        ),
        (["--token-binding", "mtls"], "--token-binding mtls needs the client's CA"),
    ],
)
def test_usage_errors_name_the_flag(args: list[str], message: str) -> None:
    assert message in usage_error(*args)


def test_files_are_checked_before_serving(pki: ClientPki, tmp_path: Path) -> None:
    method = ["--client-auth-method", "private_key_jwt"]
    private = tmp_path / "private.pem"
    private.write_text(private_pem(rsa_key()))
    assert "--client-public-key: " in usage_error(*method, "--client-public-key", str(private))
    assert "holds a private key" in usage_error(*method, "--client-public-key", str(private))
    missing = str(tmp_path / "missing.pem")
    assert "--client-public-key: cannot read" in usage_error(
        *method, "--client-public-key", missing
    )
    not_a_cert = tmp_path / "junk.pem"
    not_a_cert.write_text("junk")
    output = usage_error(
        "--client-auth-method", "tls_client_auth", "--client-ca", str(not_a_cert),
        "--client-san", "x",
    )  # fmt: skip
    assert "--client-ca " in output and "not a PEM or DER" in output
    now = dt.datetime.now(dt.UTC)
    expired, _, _ = client_cert(
        pki.ca, tmp_path, name="expired",
        not_before=now - dt.timedelta(days=9), not_after=now - dt.timedelta(days=1),
    )  # fmt: skip
    output = usage_error(
        "--client-auth-method", "self_signed_tls_client_auth", "--client-cert", str(expired)
    )
    assert "--client-cert " in output and "expired on" in output
    output = usage_error(
        "--client-auth-method", "tls_client_auth", "--client-ca", str(pki.ca_file),
        "--client-subject-dn", "nonsense",
    )  # fmt: skip
    assert "--client-subject-dn: not an RFC 4514 name" in output


def test_client_certificates_need_uvicorn(pki: ClientPki) -> None:
    output = usage_error(
        "--server", "hypercorn", "--client-auth-method", "tls_client_auth",
        "--client-ca", str(pki.ca_file), "--client-san", "sender.example",
    )  # fmt: skip
    assert "need --server uvicorn" in output


@pytest.mark.slow
def test_serve_with_private_key_jwt_and_dpop(
    pki: ClientPki, certs_dir: Path, tmp_path: Path
) -> None:
    process = subprocess.Popen(
        [
            sys.executable, "-m", "webhook_kit", "serve", "--port", "0", "--json",
            "--certs-dir", str(certs_dir), "--client-id", "sender-1",
            "--client-auth-method", "private_key_jwt",
            "--client-public-key", str(pki.public_key_file),
            "--token-binding", "dpop",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )  # fmt: skip
    try:
        line = process.stdout.readline()  # type: ignore[union-attr]
        assert line, process.stderr.read()  # type: ignore[union-attr]
        info = json.loads(line)
        assert info["client_id"] == "sender-1" and info["client_secret"] == ""
        creds = ClientCredentials(
            "sender-1", "private_key_jwt", private_key=pki.signing_pem, algorithm="ES256"
        )
        with requests.Session() as http:
            http.trust_env = False
            metadata_url = info["token_url"].replace(
                "/oauth/token", "/.well-known/oauth-authorization-server"
            )
            metadata = http.get(metadata_url, verify=info["ca_file"], timeout=10).json()
            assert metadata["token_endpoint_auth_methods_supported"] == ["private_key_jwt"]
            response = http.post(
                info["token_url"],
                data={
                    "grant_type": "client_credentials",
                    "client_assertion_type": ASSERTION_TYPE,
                    "client_assertion": sign_client_assertion(creds, audience=info["token_url"]),
                },
                verify=info["ca_file"],
                timeout=10,
            )
            assert response.status_code == 200, response.text
            bare = http.post(
                info["url"],
                json={},
                headers={"Authorization": f"Bearer {response.json()['access_token']}"},
                verify=info["ca_file"],
                timeout=10,
            )
            assert bare.status_code == 401
            assert bare.headers["WWW-Authenticate"].startswith("DPoP ")
        process.send_signal(signal.SIGTERM)
        assert process.wait(15) == 0
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=10)


@pytest.mark.slow
def test_banner_names_the_method_and_shows_no_secret_row(
    pki: ClientPki, certs_dir: Path, tmp_path: Path
) -> None:
    process = subprocess.Popen(
        [
            sys.executable, "-m", "webhook_kit", "serve", "--port", "0",
            "--certs-dir", str(certs_dir), "--client-auth-method", "private_key_jwt",
            "--client-public-key", str(pki.public_key_file), "--token-binding", "dpop",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )  # fmt: skip
    try:
        banner = []
        while True:
            line = process.stdout.readline()  # type: ignore[union-attr]
            assert line, process.stderr.read()  # type: ignore[union-attr]
            banner.append(line)
            if line.startswith("Press Ctrl+C"):
                break
        rows = {line.split()[0]: line.split()[1] for line in banner if line.startswith("  ")}
        assert rows["client_auth"] == "private_key_jwt"
        assert rows["token_binding"] == "dpop"
        assert rows["metadata"].endswith("/.well-known/oauth-authorization-server")
        assert "client_secret" not in rows
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=15)
    assert process.returncode == 0
