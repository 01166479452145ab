"""The pytest plugin: fixtures for webhook tests, and ``--webhook-certify URL`` in CI.

Registered through the ``pytest11`` entry point, so it loads in every pytest run of every
environment that has webhook-kit installed: only pytest is imported here at load time; the rest
is imported inside the fixtures and hooks that need it.

Fixtures: ``webhook_endpoint`` (the kit's HTTPS OAuth endpoint, cleared for each test),
``webhook_ca`` (the CA file to trust), ``webhook_certs_dir`` (where that CA and the endpoint's
certificate live, made once per session), ``webhook_dispatcher`` (sends through the real
dispatcher), ``webhook_endpoint_settings`` (override it to configure the endpoint).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from webhook_kit.certify.model import CertifySettings, CheckResult, Report
    from webhook_kit.cli.options import Sender
    from webhook_kit.endpoint.service import Endpoint
    from webhook_kit.endpoint.settings import EndpointSettings
    from webhook_kit.testing import EndpointHandle, WebhookDispatcher

#: (option suffix, help); each is also an ini key ``webhook_<suffix with _>``. The same options
#: as ``webhook-kit certify``, so CI and a terminal give the same verdict.
OPTIONS = (
    ("certify", "certify the endpoint at this URL: one test item per check"),
    ("token-url", "the endpoint's OAuth token URL"),
    ("issuer", "discover the token URL (and JWKS) from this issuer's metadata"),
    ("jwks-url", "the receiver's JWKS, for the algorithm-confusion forgeries"),
    ("client-id", "OAuth client id"),
    ("client-secret", "OAuth client secret (better: the WEBHOOK_KIT_CLIENT_SECRET variable)"),
    (
        "auth-method",
        "client authentication: client_secret_basic (default), client_secret_post, "
        "private_key_jwt, tls_client_auth or self_signed_tls_client_auth",
    ),
    ("private-key", "private_key_jwt: the PEM private key file that signs the assertions"),
    ("key-id", "private_key_jwt: the assertions' kid"),
    ("assertion-alg", "private_key_jwt: RS256 (default), PS256 or ES256"),
    ("assertion-audience", "private_key_jwt: token_endpoint (default) or issuer"),
    ("client-cert", "a PEM client certificate file for mutual TLS"),
    ("client-key", "the PEM private key file of the client certificate"),
    ("dpop", "ask for DPoP-bound tokens with a key of this algorithm (ES256, PS256, RS256)"),
    ("resource", "RFC 8707 resource of the token request"),
    ("other-client-cert", "a second client certificate the receiver trusts (mtls_other_cert)"),
    ("other-client-key", "the private key of the second client certificate"),
    ("scope", "OAuth scope to request"),
    ("audience", "OAuth audience to request"),
    ("ca", "a CA file to trust besides the system store (development only)"),
    ("timeout", "seconds a 2xx may take (default 10)"),
    ("probes", "availability probes (default 10)"),
    ("strict", "true: warnings fail too (a hardening gate)"),
    ("expiry-wait", "replay the real token after it expires when at most this many s away"),
    ("expiry-leeway", "seconds past exp before the replay (default 60)"),
    ("soak", "send notifications at a steady rate for this long (e.g. 90s, 10m)"),
    ("rate", "notifications per second during the soak (default 1)"),
    ("deadline", "seconds the whole run may take (default 300)"),
)
REPORT_KEY = pytest.StashKey["Report"]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("webhook-kit", "webhook-kit: certify a webhook endpoint")
    for suffix, help_text in OPTIONS:
        key = "webhook_" + suffix.replace("-", "_")
        group.addoption(f"--webhook-{suffix}", dest=key, default=None, help=help_text)
        parser.addini(key, help=help_text, default=None)


def _value(config: pytest.Config, suffix: str) -> str | None:
    key = "webhook_" + suffix.replace("-", "_")
    value = config.getoption(key) or config.getini(key)
    if not value and suffix == "client-secret":
        import os

        value = os.environ.get("WEBHOOK_KIT_CLIENT_SECRET")
    return str(value) if value else None


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "webhook_certify(check): a webhook-kit certify check made by --webhook-certify"
    )


def pytest_report_header(config: pytest.Config) -> list[str]:
    from webhook_kit._version import __version__

    url = _value(config, "certify")
    line = f"webhook-kit {__version__}"
    return [f"{line}, certifying {url}" if url else line]


def _number(config: pytest.Config, suffix: str, default: float) -> float:
    import math

    text = _value(config, suffix)
    if text is None:
        return default
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise pytest.UsageError(f"--webhook-{suffix}: expected a number, got {text!r}")
    return value


def _seconds(text: str) -> float:
    from webhook_kit.parsing import duration

    seconds = duration(text)
    if seconds is None:
        raise pytest.UsageError(
            f"--webhook-soak: expected a duration like 90s, 10m or 1h, got {text!r}"
        )
    return seconds


def _flag(config: pytest.Config, suffix: str) -> bool:
    from webhook_kit.parsing import yes_no

    text = _value(config, suffix) or "false"
    value = yes_no(text)
    if value is None:
        raise pytest.UsageError(f"--webhook-{suffix}: expected true or false, got {text!r}")
    return value


def _file(config: pytest.Config, suffix: str) -> Path | None:
    text = _value(config, suffix)
    if text is None:
        return None
    path = Path(text)
    if not path.is_file():
        raise pytest.UsageError(f"--webhook-{suffix}: no such file: {text}")
    return path


def _sender(config: pytest.Config) -> Sender:
    """The same sender options ``webhook-kit certify`` takes, checked the same way."""
    from webhook_kit.cli.options import Sender
    from webhook_kit.oauth.client_auth import METHODS, SECRET_METHODS

    method = _value(config, "auth-method") or METHODS[0]
    if method not in METHODS:
        raise pytest.UsageError(
            f"--webhook-auth-method: expected one of {', '.join(METHODS)}, got {method!r}"
        )
    missing = [] if _value(config, "client-id") else ["client-id"]
    if method in SECRET_METHODS and not _value(config, "client-secret"):
        missing.append("client-secret")
    if not _value(config, "token-url") and not _value(config, "issuer"):
        missing.insert(0, "token-url")
    if missing:
        raise pytest.UsageError(
            "--webhook-certify needs " + ", ".join(f"--webhook-{m}" for m in missing)
        )
    ca = _value(config, "ca")
    return Sender(
        token_url=_value(config, "token-url"),
        client_id=str(_value(config, "client-id")),
        client_secret=_value(config, "client-secret") if method in SECRET_METHODS else None,
        scope=_value(config, "scope"),
        audience=_value(config, "audience"),
        auth_method=method,
        private_key=_file(config, "private-key"),
        key_id=_value(config, "key-id"),
        assertion_alg=_value(config, "assertion-alg") or "RS256",
        assertion_audience=_value(config, "assertion-audience") or "token_endpoint",
        client_cert=_file(config, "client-cert"),
        client_key=_file(config, "client-key"),
        dpop=_value(config, "dpop"),
        issuer=_value(config, "issuer"),
        resource=_value(config, "resource"),
        ca_file=Path(ca) if ca else None,
    )


def _certify_settings(config: pytest.Config) -> CertifySettings:
    """The settings ``webhook-kit certify`` would build from the same values; a bad value is
    a usage error naming the option, never an internal error."""
    from webhook_kit.certify.model import CertifySettings, SoakSettings
    from webhook_kit.errors import ConfigError

    url = _value(config, "certify")
    sender = _sender(config)
    probes = _number(config, "probes", 10)
    if probes != int(probes) or not 1 <= probes <= 1000:
        raise pytest.UsageError("--webhook-probes: expected a whole number from 1 to 1000")
    soak_text = _value(config, "soak")
    try:
        return CertifySettings(
            url=str(url),
            oauth=sender.oauth(_number(config, "timeout", 10), prefix="--webhook-"),
            issuer=sender.issuer,
            jwks_url=_value(config, "jwks-url"),
            ca_file=sender.ca_file,
            probes=int(probes),
            strict=_flag(config, "strict"),
            expiry_wait=_number(config, "expiry-wait", 0),
            expiry_leeway=_number(config, "expiry-leeway", 60),
            soak=(
                SoakSettings(_seconds(soak_text), _number(config, "rate", 1)) if soak_text else None
            ),
            deadline=_number(config, "deadline", 300),
            other_client_cert=_file(config, "other-client-cert"),
            other_client_key=_file(config, "other-client-key"),
        )
    except ConfigError as exc:
        raise pytest.UsageError(f"webhook-kit: {exc}") from exc


def _preflight(settings: CertifySettings) -> None:
    """The client certificate and key are usable, and the token endpoint's metadata (if any)
    advertises the method: as ``webhook-kit certify`` checks before it starts."""
    from webhook_kit.cli.options import preflight
    from webhook_kit.errors import ConfigError

    try:
        preflight(settings.oauth, settings.ca_file, prefix="--webhook-")
    except ConfigError as exc:
        raise pytest.UsageError(f"webhook-kit: {exc}") from exc


def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    if not _value(config, "certify"):
        return
    _preflight(_certify_settings(config))  # usage errors surface before anything runs
    from webhook_kit.certify.pipeline import CHECK_IDS

    for check_id in CHECK_IDS:
        item = CertifyItem.from_parent(session, name=f"certify[{check_id}]", check_id=check_id)
        item.add_marker(pytest.mark.webhook_certify(check_id))
        items.append(item)


class CertifyFailure(Exception):
    """A certify check that failed; its detail is the whole report."""


class CertifyItem(pytest.Item):
    """One certify check as a test item; the checks run once, on the first item."""

    def __init__(self, *, check_id: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.check_id = check_id

    def _report(self) -> Report:
        report = self.config.stash.get(REPORT_KEY, None)
        if report is None:
            from webhook_kit.certify.pipeline import certify
            from webhook_kit.serving.loop import run

            report = run(certify(_certify_settings(self.config)))
            self.config.stash[REPORT_KEY] = report
        return report

    def runtest(self) -> None:
        result: CheckResult = next(c for c in self._report().checks if c.id == self.check_id)
        if result.verdict == "fail":
            raise CertifyFailure(f"{result.id} ({result.requirement}): {result.detail}")
        if result.verdict == "skip":
            pytest.skip(result.detail)
        if result.verdict == "warn":
            self.add_report_section("call", "webhook-kit warning", result.detail)
        self.user_properties.append(("verdict", result.verdict))

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, CertifyFailure):
            return str(excinfo.value)
        return str(super().repr_failure(excinfo, style=style))

    def reportinfo(self) -> tuple[str, int | None, str]:
        return "webhook-kit certify", None, self.name


@pytest.fixture(scope="session")
def webhook_certs_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the session's development CA and leaf live (made once per test session)."""
    from webhook_kit.tls import ensure_dev_certs

    directory = tmp_path_factory.mktemp("webhook-kit-certs")
    ensure_dev_certs(directory)
    return directory


@pytest.fixture(scope="session")
def webhook_ca(webhook_certs_dir: Path) -> Path:
    """The CA file that the kit's certificates chain to: trust it in your sender."""
    return webhook_certs_dir / "ca.pem"


@pytest.fixture(scope="session")
def webhook_endpoint_settings(webhook_certs_dir: Path) -> EndpointSettings:
    """Settings of the session's endpoint; override this fixture to configure it."""
    from webhook_kit.endpoint.settings import EndpointSettings

    return EndpointSettings(port=0, certs_dir=webhook_certs_dir)


@pytest.fixture(scope="session")
def _webhook_endpoint_server(webhook_endpoint_settings: EndpointSettings) -> Iterator[Endpoint]:
    from webhook_kit.endpoint.service import running_endpoint

    with running_endpoint(webhook_endpoint_settings) as endpoint:
        yield endpoint


@pytest.fixture
def webhook_endpoint(_webhook_endpoint_server: Endpoint) -> EndpointHandle:
    """The kit's HTTPS, OAuth-protected endpoint, emptied for each test."""
    from webhook_kit.testing import EndpointHandle

    handle = EndpointHandle(_webhook_endpoint_server)
    handle.clear()
    return handle


@pytest.fixture
def webhook_dispatcher(webhook_ca: Path) -> WebhookDispatcher:
    """Sends notifications through the real dispatcher to any target (trusts ``webhook_ca``)."""
    from webhook_kit.testing import WebhookDispatcher

    return WebhookDispatcher(ca_file=webhook_ca)
