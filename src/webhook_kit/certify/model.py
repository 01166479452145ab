"""Certify's vocabulary: settings, requirements, check results, the verdict. Pure.

The severity policy (docs/certify.md) lives here, in one place:

- ``fail``: a documented requirement is violated (someone without a valid token gets a
  notification accepted; a sender that verifies TLS cannot connect; JSON or a status is refused;
  the endpoint is not available).
- ``warn``: hardening advice that lets nobody in. ``--strict`` makes it fail.
- ``skip``: the check could not run; ``blocked_by`` names the earlier failure that stopped it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from webhook_kit.errors import ConfigError
from webhook_kit.oauth.client import OAuthSettings

Requirement = Literal["url", "https", "oauth", "json", "delivery", "availability", "robustness"]
REQUIREMENTS: tuple[Requirement, ...] = (
    "url",
    "https",
    "oauth",
    "json",
    "delivery",
    "availability",
    "robustness",
)
Verdict = Literal["pass", "fail", "warn", "skip"]
Severity = Literal["fail", "warn"]

#: Certificates with fewer days left than this get a warning.
EXPIRY_WARN_DAYS = 14


@dataclass(frozen=True)
class SoakSettings:
    """``--soak DURATION --rate R``: steady contract-valid notifications for a while."""

    duration: float
    rate: float = 1.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.duration) and 0 < self.duration <= 7 * 86400):
            raise ConfigError("soak duration must be between 0 and 7 days")
        if not (math.isfinite(self.rate) and 0 < self.rate <= 100):
            raise ConfigError("soak rate must be between 0 and 100 per second")


@dataclass(frozen=True)
class CertifySettings:
    """What to certify and how. The OAuth client settings are composed, not copied: certify
    requests its token exactly as the dispatcher would. ``oauth.token_url`` may be empty when
    ``issuer`` is given; discovery fills it in."""

    url: str
    oauth: OAuthSettings
    issuer: str | None = None
    jwks_url: str | None = None
    ca_file: Path | None = None
    probes: int = 10
    strict: bool = False
    #: Replay the real token after it expires, when it expires within this many seconds.
    expiry_wait: float = 0.0
    #: How long after ``exp`` the replay waits: clock-skew tolerance is not a flaw.
    expiry_leeway: float = 60.0
    soak: SoakSettings | None = None
    #: The whole run stops after this many seconds (soak and expiry wait come on top).
    deadline: float = 300.0
    #: A second client certificate the receiver's TLS trusts, for ``oauth.mtls_other_cert``
    #: (default: a self-signed one certify makes, which a strict handshake refuses).
    other_client_cert: Path | None = None
    other_client_key: Path | None = None

    def __post_init__(self) -> None:
        if not (math.isfinite(self.oauth.timeout) and self.oauth.timeout > 0):
            raise ConfigError("timeout must be a positive number of seconds")
        if self.probes < 1:
            raise ConfigError("probes must be at least 1")
        if not (math.isfinite(self.expiry_wait) and 0 <= self.expiry_wait <= 86400):
            raise ConfigError("expiry wait must be between 0 and 86400 seconds")
        if not (math.isfinite(self.expiry_leeway) and 0 <= self.expiry_leeway <= 3600):
            raise ConfigError("expiry leeway must be between 0 and 3600 seconds")
        if not (math.isfinite(self.deadline) and self.deadline > 0):
            raise ConfigError("deadline must be positive")
        if not self.oauth.token_url and not self.issuer and not self.oauth.issuer:
            raise ConfigError("give a token URL or an issuer to discover it from")
        if (self.other_client_cert is None) != (self.other_client_key is None):
            raise ConfigError("other_client_cert: give the other certificate and its key")

    @property
    def timeout(self) -> float:
        return self.oauth.timeout

    @property
    def budget(self) -> float:
        """Seconds the whole run may take."""
        extra = self.expiry_wait + (self.soak.duration if self.soak else 0.0)
        return self.deadline + extra

    def with_oauth(self, **changes: Any) -> CertifySettings:
        """These settings with OAuth settings other than the credentials changed (the token
        URL found by discovery); the credentials change through :meth:`with_credentials`."""
        return replace(self, oauth=replace(self.oauth, **changes))

    def with_credentials(self, **changes: Any) -> CertifySettings:
        """These settings with the client's credentials changed (``secret=``, ``method=``,
        ``private_key=``, ``cert_file=``...), as the OAuth settings allow."""
        return replace(self, oauth=self.oauth.with_credentials(**changes))


@dataclass(frozen=True)
class CheckResult:
    id: str
    requirement: Requirement
    verdict: Verdict
    detail: str
    duration_ms: float = 0.0
    #: For a skip: the failed check that made this one impossible.
    blocked_by: str | None = None
    #: For a warn that ``--strict`` turned into a fail, ``warn``; otherwise what the verdict is.
    severity: Severity | None = field(default=None)

    def __post_init__(self) -> None:
        if self.severity is None and self.verdict in ("fail", "warn"):
            object.__setattr__(self, "severity", self.verdict)

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "requirement": self.requirement,
            "verdict": self.verdict,
            "severity": self.severity,
            "detail": self.detail,
            "duration_ms": self.duration_ms,
            "blocked_by": self.blocked_by,
        }


def strictly(result: CheckResult) -> CheckResult:
    """Under ``--strict`` a warning fails; its severity still says it was hardening advice."""
    if result.verdict != "warn":
        return result
    return replace(result, verdict="fail", severity="warn")


@dataclass(frozen=True)
class Report:
    url: str
    checks: tuple[CheckResult, ...]
    strict: bool = False

    @property
    def verdict(self) -> Literal["pass", "fail"]:
        return "fail" if any(c.verdict == "fail" for c in self.checks) else "pass"

    def counts(self) -> dict[str, int]:
        out = {"pass": 0, "fail": 0, "warn": 0, "skip": 0}
        for check in self.checks:
            out[check.verdict] += 1
        return out

    def root_causes(self) -> tuple[CheckResult, ...]:
        """The failures that blocked other checks, each named once."""
        blockers = {c.blocked_by for c in self.checks if c.blocked_by}
        return tuple(c for c in self.checks if c.id in blockers)

    def as_json(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "verdict": self.verdict,
            "strict": self.strict,
            "checks": [c.as_json() for c in self.checks],
        }
