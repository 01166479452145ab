"""The sender flags of every client authentication method, shared by ``emit`` and ``certify``:
each bad value is a usage error (exit 2) naming the flag, and never shows a secret or a key; a
method the token endpoint's metadata does not advertise is refused before anything is sent; and
``emit`` delivers with each method to the kit's own endpoint."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any, Final

import pytest
import trustme
from click.testing import CliRunner

from tests.conftest import EndpointFactory
from tests.oauth.keys import (
    ClientPki,
    client_cert,
    ec_key,
    make_client_pki,
    private_pem,
    public_pem,
    rsa_key,
)
from webhook_kit.cli import main
from webhook_kit.cli.options import flag_named
from webhook_kit.oauth.credentials import ClientRegistration

W = "https://127.0.0.1:9/webhook"  # nothing listens: no test here reaches a send
T = "https://127.0.0.1:9/token"
SECRET = "s3cr3t-never-shown"
CLIENT = "sender-1"
SUBJECT = "CN=sender.example,OU=Payments,O=Sender Bank"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> ClientPki:
    return make_client_pki(tmp_path_factory.mktemp("client-pki"))


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory, pki: ClientPki) -> dict[str, Path]:
    """Key and certificate files, good and bad."""
    directory = tmp_path_factory.mktemp("sender-files")
    out: dict[str, Path] = {}
    out["ec"] = directory / "ec.pem"
    out["ec"].write_text(pki.signing_pem)
    out["rsa1024"] = directory / "rsa1024.pem"
    out["rsa1024"].write_text(private_pem(rsa_key(1024)))
    out["public"] = directory / "public.pem"
    out["public"].write_text(public_pem(ec_key()))
    out["garbage"] = directory / "garbage.pem"
    out["garbage"].write_text("not a key at all\n")
    out["encrypted"] = directory / "encrypted.pem"
    out["encrypted"].write_text(private_pem(ec_key(), password=b"pw"))
    out["der"] = directory / "key.der"
    out["der"].write_bytes(b"\x30\x82\xff\xfe" * 8)
    now = dt.datetime.now(dt.UTC)
    expired, expired_key, _ = client_cert(
        trustme.CA(),
        directory,
        name="expired",
        not_before=now - dt.timedelta(days=30),
        not_after=now - dt.timedelta(days=1),
    )
    out["expired"], out["expired_key"] = expired, expired_key
    return out


def invoke(command: str, *args: str, url: str = W) -> Any:
    options = ["--client-id", CLIENT, *args]
    if "--token-url" not in args and "--issuer" not in args:
        options = ["--token-url", T, *options]
    env = {"WEBHOOK_KIT_EMIT_CLIENT_SECRET": "", "WEBHOOK_KIT_CERTIFY_CLIENT_SECRET": ""}
    return CliRunner().invoke(main, [command, url, *options], env=env)


KEY: Final = "private_key_jwt"
TLS: Final = "tls_client_auth"

#: (arguments, with file names as {name}), what the message says.
BAD = [
    (["--auth-method", KEY], "--private-key: private_key_jwt needs a private key"),
    (["--auth-method", KEY, "--private-key", "{public}"], "--private-key: this is a public key"),
    (["--auth-method", KEY, "--private-key", "{garbage}"], "--private-key: not a PEM private key"),
    (["--auth-method", KEY, "--private-key", "{der}"], "--private-key: "),
    (["--auth-method", KEY, "--private-key", "{encrypted}"], "--private-key: the private key is"),
    (["--auth-method", KEY, "--private-key", "{ec}"], "--private-key: RS256 needs an RSA"),
    (
        ["--auth-method", KEY, "--private-key", "{rsa1024}", "--assertion-alg", "PS256"],
        "--private-key: the RSA key has 1024 bits",
    ),
    (["--auth-method", KEY, "--private-key", "{ec}", "--assertion-alg", "HS256"], "'HS256'"),
    (["--auth-method", KEY, "--private-key", "{ec}", "--assertion-alg", "none"], "'none'"),
    (["--dpop", "HS256", "--client-secret", SECRET], "--dpop"),
    (
        ["--auth-method", KEY, "--private-key", "{ec}", "--assertion-alg", "ES256"]
        + ["--client-secret", SECRET],
        "--client-secret: private_key_jwt does not use a client secret",
    ),
    (
        ["--client-secret", SECRET, "--private-key", "{ec}"],
        "--private-key: only private_key_jwt signs assertions",
    ),
    ([], "--client-secret: client_secret_basic needs a client secret"),
    (["--auth-method", TLS], "--client-cert: tls_client_auth needs a client certificate"),
    (["--auth-method", TLS, "--client-cert", "{cert}"], "--client-key: a client certificate"),
    (
        ["--auth-method", TLS, "--client-cert", "{cert}", "--client-key", "{other_key}"],
        "does not match the key",
    ),
    (
        ["--auth-method", TLS, "--client-cert", "{expired}", "--client-key", "{expired_key}"],
        "the certificate expired on",
    ),
    (
        ["--client-secret", SECRET, "--client-cert", "{expired}", "--client-key", "{expired_key}"],
        "the certificate expired on",
    ),
    (["--auth-method", "client_secret_jwt", "--client-secret", SECRET], "'client_secret_jwt'"),
    (["--auth-method", KEY, "--assertion-audience", "everyone"], "'everyone'"),
    (
        ["--auth-method", KEY, "--private-key", "{ec}", "--assertion-alg", "ES256"]
        + ["--assertion-audience", "issuer"],
        "--assertion-audience: 'issuer' needs the authorization server's issuer",
    ),
]


@pytest.mark.parametrize("command", ["emit", "certify"])
@pytest.mark.parametrize(("args", "says"), BAD)
def test_bad_sender_values_are_usage_errors_naming_the_flag(
    command: str, args: list[str], says: str, files: dict[str, Path], pki: ClientPki
) -> None:
    names = {**{k: str(v) for k, v in files.items()}, "cert": str(pki.cert[0])}
    names["other_key"] = str(pki.other[1])
    result = invoke(command, *(a.format(**names) for a in args))
    assert result.exit_code == 2, result.output
    assert says in result.output
    assert "Traceback" not in result.output
    assert SECRET not in result.output
    for key in ("ec", "rsa1024", "encrypted"):
        body = files[key].read_text().splitlines()[1]
        assert body not in result.output


def test_without_token_url_or_issuer() -> None:
    result = CliRunner().invoke(main, ["emit", W, "--client-id", "c", "--client-secret", "s"])
    assert result.exit_code == 2 and "give --token-url, or --issuer" in result.output


def test_flag_named() -> None:
    assert flag_named("cert_file /x: expired") == "--client-cert /x: expired"
    assert flag_named("private_key: bad", "--webhook-") == "--webhook-private-key: bad"
    assert flag_named("something else: kept") == "something else: kept"
    assert flag_named("unknown_field: kept") == "unknown_field: kept"


def test_help_lists_every_registered_method() -> None:
    from webhook_kit.oauth.client_auth import METHODS

    for command in ("emit", "certify"):
        shown = CliRunner().invoke(main, [command, "--help"]).output
        for method in METHODS:
            assert method in shown


# -- against the kit's own endpoint ----------------------------------------------------------

pytest_slow = pytest.mark.slow


@pytest_slow
@pytest.mark.parametrize("command", ["emit", "certify"])
def test_a_method_the_endpoint_does_not_advertise_is_refused_at_start(
    start_endpoint: EndpointFactory, files: dict[str, Path], command: str
) -> None:
    sink = start_endpoint()  # a secret client: the metadata lists the two secret methods
    args = ["--token-url", sink.info.token_url, "--ca", str(sink.info.ca_file)]
    args += ["--auth-method", KEY, "--private-key", str(files["ec"]), "--assertion-alg", "ES256"]
    result = invoke(command, *args, url=sink.info.url)
    assert result.exit_code == 2, result.output
    assert "--auth-method: the token endpoint does not advertise private_key_jwt" in result.output
    assert "client_secret_basic, client_secret_post" in result.output
    assert sink.recorder.query() == []  # refused before anything was sent


def emit_to(sink: Any, *args: str) -> Any:
    options = ["--token-url", sink.info.token_url, "--ca", str(sink.info.ca_file)]
    return invoke("emit", *options, "--status", "on-course", "--json", *args, url=sink.info.url)


@pytest_slow
def test_emit_with_private_key_jwt(
    start_endpoint: EndpointFactory, pki: ClientPki, files: dict[str, Path]
) -> None:
    sink = start_endpoint(
        client=ClientRegistration(CLIENT, KEY, public_key_file=pki.public_key_file)
    )
    args = ["--auth-method", KEY, "--private-key", str(files["ec"]), "--assertion-alg", "ES256"]
    result = emit_to(sink, *args, "--key-id", "k1", "--assertion-audience", "issuer")
    assert result.exit_code == 0, result.output
    assert '"state": "sent"' in result.output
    assert [r["status"] for r in sink.recorder.query(accepted=True)] == ["on-course"]


@pytest_slow
@pytest.mark.parametrize("binding", ["mtls", "dpop"])
def test_emit_with_a_certificate_and_bound_tokens(
    start_endpoint: EndpointFactory, pki: ClientPki, binding: Any
) -> None:
    registration = ClientRegistration(CLIENT, TLS, client_ca_file=pki.ca_file, subject_dn=SUBJECT)
    sink = start_endpoint(client=registration, token_binding=binding)
    args = [
        "--auth-method",
        TLS,
        "--client-cert",
        str(pki.cert[0]),
        "--client-key",
        str(pki.cert[1]),
    ]
    if binding == "dpop":
        args += ["--dpop", "ES256"]
    result = emit_to(sink, *args)
    assert result.exit_code == 0, result.output
    assert '"state": "sent"' in result.output
    assert [r["status"] for r in sink.recorder.query(accepted=True)] == ["on-course"]


@pytest_slow
def test_certify_with_a_certificate_and_dpop(
    start_endpoint: EndpointFactory, pki: ClientPki
) -> None:
    """The CLI's flags reach certify: the DPoP and certificate checks run, and pass."""
    registration = ClientRegistration(CLIENT, TLS, client_ca_file=pki.ca_file, subject_dn=SUBJECT)
    sink = start_endpoint(client=registration, token_binding="dpop")
    args = ["--token-url", sink.info.token_url, "--ca", str(sink.info.ca_file), "--probes", "1"]
    args += ["--auth-method", TLS, "--client-cert", str(pki.cert[0])]
    args += ["--client-key", str(pki.cert[1]), "--dpop", "ES256", "--format", "json"]
    result = invoke("certify", *args, url=sink.info.url)
    assert result.exit_code == 0, result.output
    checks = {c["id"]: c["verdict"] for c in json.loads(result.output)["checks"]}
    for check_id in ("oauth.bound_token_bare", "oauth.dpop_replay", "oauth.mtls_other_cert"):
        assert checks[check_id] == "pass", result.output
