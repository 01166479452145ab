"""Certify's vocabulary: settings, requirements, check results, the verdict. Pure."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from webhook_kit.errors import ConfigError

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

#: Certificates with fewer days left than this get a warning.
EXPIRY_WARN_DAYS = 14


@dataclass(frozen=True)
class CertifySettings:
    url: str
    token_url: str
    client_id: str
    client_secret: str = field(repr=False)
    scope: str | None = None
    audience: str | None = None
    auth_method: Literal["client_secret_basic", "client_secret_post"] = "client_secret_basic"
    ca_file: Path | None = None
    timeout: float = 10.0
    probes: int = 10

    def __post_init__(self) -> None:
        if self.timeout <= 0:
            raise ConfigError("timeout must be positive")
        if self.probes < 1:
            raise ConfigError("probes must be at least 1")


@dataclass(frozen=True)
class CheckResult:
    id: str
    requirement: Requirement
    verdict: Verdict
    detail: str
    duration_ms: float = 0.0

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Report:
    url: str
    checks: tuple[CheckResult, ...]

    @property
    def verdict(self) -> Literal["pass", "fail"]:
        return "fail" if any(c.verdict == "fail" for c in self.checks) else "pass"

    def counts(self) -> dict[str, int]:
        out = {"pass": 0, "fail": 0, "warn": 0, "skip": 0}
        for check in self.checks:
            out[check.verdict] += 1
        return out

    def as_json(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "verdict": self.verdict,
            "checks": [c.as_json() for c in self.checks],
        }
