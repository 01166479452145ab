"""The pytest plugin, tested with pytester."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.certify.receivers import Breakage, receiver
from tests.oauth.keys import make_client_pki
from webhook_kit.certify.checks import binding_judges
from webhook_kit.certify.pipeline import CHECK_IDS
from webhook_kit.endpoint.service import Endpoint
from webhook_kit.testing import serve_app

# Runs whole pytest sessions (pytester), the examples' suites among them.
pytestmark = pytest.mark.slow

#: Checks that need an option to run (--webhook-expiry-wait, --webhook-soak, --webhook-dpop or
#: --webhook-client-cert for the bound-token checks); they skip saying so.
SKIPPED_BY_DEFAULT = ("oauth.expired_token", "availability.soak", *binding_judges.CHECK_IDS)


def certify_args(sink: Endpoint, url: str | None = None) -> list[str]:
    info = sink.info
    assert info.ca_file is not None
    return [
        "--webhook-certify",
        url or info.url,
        "--webhook-token-url",
        info.token_url,
        "--webhook-client-id",
        info.client_id,
        # One argument: a generated secret may begin with "-", which argparse would read as
        # an option of its own.
        f"--webhook-client-secret={info.client_secret}",
        "--webhook-ca",
        info.ca_file,
        "--webhook-probes",
        "3",
    ]


def test_fixtures_send_and_receive(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest
        from webhook_kit.contract.statuses import STATUSES

        def test_send_every_status(webhook_endpoint, webhook_dispatcher):
            outcomes = webhook_dispatcher.send_to(webhook_endpoint)
            assert [o.state for o in outcomes] == ["sent"] * 9
            received = webhook_endpoint.wait_for(9, timeout=10)
            assert [n["status"] for n in received] == list(STATUSES)

        def test_endpoint_is_cleared_between_tests(webhook_endpoint):
            assert webhook_endpoint.requests == []

        def test_wait_for_times_out(webhook_endpoint):
            with pytest.raises(TimeoutError):
                webhook_endpoint.wait_for(1, timeout=0.2)

        def test_ca_is_a_file(webhook_ca, webhook_endpoint):
            assert webhook_ca.is_file() and webhook_endpoint.ca_file == webhook_ca
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=4)


def test_endpoint_settings_can_be_overridden(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        """
        import pytest
        from webhook_kit.endpoint.settings import FaultRule, FaultSettings, EndpointSettings

        @pytest.fixture(scope="session")
        def webhook_endpoint_settings(webhook_certs_dir):
            return EndpointSettings(port=0, certs_dir=webhook_certs_dir,
                                faults=FaultSettings(respond=(FaultRule.parse("deleted=500"),)))
        """
    )
    pytester.makepyfile(
        """
        def test_deleted_fails(webhook_endpoint, webhook_dispatcher):
            outcomes = webhook_dispatcher.send_to(webhook_endpoint, ["on-course", "deleted"])
            assert [o.state for o in outcomes] == ["sent", "failed"]
        """
    )
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=1)


def test_certify_makes_one_item_per_check(pytester: pytest.Pytester, start_endpoint: Any) -> None:
    sink: Endpoint = start_endpoint()
    result = pytester.runpytest("-p", "no:cacheprovider", "-v", *certify_args(sink))
    result.assert_outcomes(
        passed=len(CHECK_IDS) - len(SKIPPED_BY_DEFAULT), skipped=len(SKIPPED_BY_DEFAULT)
    )
    result.stdout.fnmatch_lines(
        ["*webhook-kit *, certifying https://127.0.0.1:*", "*certify?oauth.no_token? PASSED*"]
    )
    assert sink.info.client_secret not in result.stdout.str()


def test_certify_failures_show_per_check(
    pytester: pytest.Pytester, start_endpoint: Any, certs_dir: Path
) -> None:
    sink: Endpoint = start_endpoint()
    with serve_app(receiver(sink.verifier, Breakage(auth="none")), certs_dir=certs_dir) as served:
        result = pytester.runpytest(
            "-p", "no:cacheprovider", *certify_args(sink, served.url("/webhook"))
        )
    outcomes = result.parseoutcomes()
    # One root cause: the open endpoint fails oauth.no_token; the forgeries it makes pointless
    # are skipped, blocked by it.
    assert outcomes["failed"] == 1
    assert outcomes["skipped"] >= 12
    result.stdout.fnmatch_lines(
        [
            "*oauth.no_token (oauth): sent a valid notification with no Authorization header: "
            "ACCEPTED*"
        ]
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_certify_options_from_ini(pytester: pytest.Pytester, start_endpoint: Any) -> None:
    sink: Endpoint = start_endpoint()
    info = sink.info
    pytester.makeini(
        f"""
        [pytest]
        webhook_certify = {info.url}
        webhook_token_url = {info.token_url}
        webhook_client_id = {info.client_id}
        webhook_ca = {info.ca_file}
        webhook_probes = 2
        """
    )
    monkey = pytest.MonkeyPatch()
    monkey.setenv("WEBHOOK_KIT_CLIENT_SECRET", info.client_secret)
    try:
        result = pytester.runpytest("-p", "no:cacheprovider")
    finally:
        monkey.undo()
    result.assert_outcomes(
        passed=len(CHECK_IDS) - len(SKIPPED_BY_DEFAULT), skipped=len(SKIPPED_BY_DEFAULT)
    )


def test_certify_with_private_key_jwt_and_dpop_from_ini(
    pytester: pytest.Pytester, start_endpoint: Any, tmp_path: Path
) -> None:
    """No secret at all: the plugin signs assertions and proves possession of a DPoP key, and
    the bound-token checks run against an endpoint that requires DPoP."""
    from webhook_kit.oauth.credentials import ClientRegistration

    pki = make_client_pki(tmp_path)
    key_file = tmp_path / "signing.pem"
    key_file.write_text(pki.signing_pem)
    registration = ClientRegistration(
        "sender-1", "private_key_jwt", public_key_file=pki.public_key_file
    )
    sink: Endpoint = start_endpoint(client=registration, token_binding="dpop")
    info = sink.info
    pytester.makeini(
        f"""
        [pytest]
        webhook_certify = {info.url}
        webhook_token_url = {info.token_url}
        webhook_client_id = sender-1
        webhook_auth_method = private_key_jwt
        webhook_private_key = {key_file}
        webhook_assertion_alg = ES256
        webhook_dpop = ES256
        webhook_ca = {info.ca_file}
        webhook_probes = 1
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider", "-v")
    skipped = ("oauth.expired_token", "availability.soak", "oauth.mtls_other_cert")
    result.assert_outcomes(passed=len(CHECK_IDS) - len(skipped), skipped=len(skipped))
    result.stdout.fnmatch_lines(["*certify?oauth.dpop_replay? PASSED*"])
    assert pki.signing_pem.splitlines()[1] not in result.stdout.str()


def test_certify_without_credentials_is_a_usage_error(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest(
        "-p", "no:cacheprovider", "--webhook-certify", "https://127.0.0.1:9/webhook"
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--webhook-certify needs --webhook-token-url*"])


@pytest.mark.parametrize(
    ("option", "value", "says"),
    [
        ("--webhook-timeout", "0", "timeout must be a positive"),
        ("--webhook-timeout", "nan", "expected a number"),
        ("--webhook-probes", "0", "whole number from 1 to 1000"),
        ("--webhook-auth-method", "magic", "expected one of"),
        (
            "--webhook-auth-method",
            "private_key_jwt",
            "--webhook-private-key: private_key_jwt needs",
        ),
        ("--webhook-client-cert", "/nonexistent.pem", "--webhook-client-cert: no such file"),
        ("--webhook-dpop", "HS256", "--webhook-dpop: unsupported algorithm 'HS256'"),
        ("--webhook-assertion-alg", "none", "--webhook-assertion-alg: unsupported algorithm"),
        ("--webhook-strict", "maybe", "expected true or false"),
        ("--webhook-expiry-wait", "-1", "expiry wait must be"),
        ("--webhook-soak", "forever", "expected a duration"),
        ("--webhook-rate", "0", "soak rate must be"),
    ],
)
def test_a_bad_certify_value_is_a_usage_error(
    pytester: pytest.Pytester, option: str, value: str, says: str
) -> None:
    args = ["--webhook-certify", "https://127.0.0.1:9/webhook", "--webhook-token-url"]
    args += ["https://127.0.0.1:9/token", "--webhook-client-id", "c", "--webhook-client-secret"]
    args += ["s", option, value]
    if option == "--webhook-rate":
        args += ["--webhook-soak", "10s"]
    result = pytester.runpytest("-p", "no:cacheprovider", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()
    result.stderr.fnmatch_lines([f"*{says}*"])


def test_plugin_module_imports_only_pytest() -> None:
    code = (
        "import sys; import webhook_kit.pytest_plugin; "
        "heavy = [m for m in ('starlette', 'aiohttp', 'jsonschema', 'joserfc', 'uvicorn', 'rich') "
        "if m in sys.modules]; print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_plugin_is_registered_by_entry_point() -> None:
    from importlib.metadata import entry_points

    names = {ep.value for ep in entry_points(group="pytest11")}
    assert "webhook_kit.pytest_plugin" in names


def test_the_examples_pass() -> None:
    root = Path(__file__).resolve().parent.parent
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "examples/receiver"],
        capture_output=True,
        text=True,
        cwd=root,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout


def test_the_ci_workflow_example_is_valid_yaml() -> None:
    yaml = pytest.importorskip("yaml")
    root = Path(__file__).resolve().parent.parent
    workflow = yaml.safe_load((root / "examples/ci/webhook-kit.yml").read_text())
    steps = [s.get("run", "") for job in workflow["jobs"].values() for s in job["steps"]]
    assert any("--webhook-certify" in s for s in steps)
    assert any("pytest examples/receiver" in s for s in steps)


def test_auth_method_help_names_every_registered_method() -> None:
    from webhook_kit.oauth.client_auth import METHODS
    from webhook_kit.pytest_plugin import OPTIONS

    shown = dict(OPTIONS)["auth-method"]
    assert all(method in shown for method in METHODS)
