"""Typed, frozen settings of ``webhook-kit serve``, built once from the CLI or a test."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from webhook_kit.contract.statuses import LEGACY_ALIASES, STATUSES
from webhook_kit.errors import ConfigError
from webhook_kit.oauth.client_auth import TLS_METHODS
from webhook_kit.oauth.credentials import ClientRegistration
from webhook_kit.oauth.issuer import TokenSettings
from webhook_kit.oauth.verifier import BINDINGS, Binding

ServerName = Literal["uvicorn", "hypercorn"]
#: Requests kept in memory at most; memory is bounded in bytes too (see ``recorder``).
MAX_KEEP = 1_000_000


@dataclass(frozen=True)
class FaultRule:
    """Answer ``code`` to notifications of ``status`` (``*`` = any), the first ``times`` times."""

    status: str
    code: int
    times: int | None = None

    @classmethod
    def parse(cls, text: str) -> FaultRule:
        """Parse ``STATUS=CODE`` or ``STATUS=CODExN`` (e.g. ``deleted=500``, ``*=503x2``)."""
        status, sep, rest = text.partition("=")
        status = status.strip()
        if not sep or not status:
            raise ConfigError(f"expected STATUS=CODE, got {text!r}")
        if status != "*" and status not in STATUSES and status not in LEGACY_ALIASES:
            raise ConfigError(f"unknown status {status!r} in {text!r}")
        code_text, _, times_text = rest.partition("x")
        try:
            code = int(code_text)
            times = int(times_text) if times_text else None
        except ValueError as exc:
            raise ConfigError(f"expected STATUS=CODE[xTIMES], got {text!r}") from exc
        if not 200 <= code <= 599:
            raise ConfigError(f"status code {code} out of range 200-599 in {text!r}")
        if times is not None and times < 1:
            raise ConfigError(f"TIMES must be at least 1 in {text!r}")
        return cls(status, code, times)


@dataclass(frozen=True)
class FaultSettings:
    respond: tuple[FaultRule, ...] = ()
    fail_rate: float = 0.0
    fail_code: int = 503
    delay: float = 0.0
    retry_after: int | None = None
    seed: int | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.fail_rate <= 1.0:
            raise ConfigError(f"fail rate must be between 0 and 1, got {self.fail_rate}")
        if self.delay < 0:
            raise ConfigError(f"delay must not be negative, got {self.delay}")
        if self.retry_after is not None and self.retry_after < 0:
            raise ConfigError(f"retry-after must not be negative, got {self.retry_after}")


@dataclass(frozen=True)
class EndpointSettings:
    host: str = "127.0.0.1"
    port: int = 8443
    path: str = "/webhook"
    server: ServerName = "uvicorn"
    client_id: str | None = None
    client_secret: str | None = field(default=None, repr=False)
    #: The sender client, registered for any method (instead of client_id/client_secret).
    client: ClientRegistration | None = None
    #: What /webhook requires of tokens: bound to the client certificate, to a DPoP key, or not.
    token_binding: Binding = "none"
    #: Require server-issued nonces in DPoP proofs (RFC 9449 section 8).
    dpop_nonce: bool = False
    #: The tokens its issuer grants: composed, and handed to the issuer as they are.
    tokens: TokenSettings = TokenSettings()
    max_body: int = 1024 * 1024
    legacy_statuses: bool = False
    record_file: Path | None = None
    keep: int = 10_000
    certs_dir: Path = Path("certs")
    certfile: Path | None = None
    keyfile: Path | None = None
    faults: FaultSettings = FaultSettings()
    #: Seconds a client has for a request's headers, then for its body (uvicorn; see servers).
    header_timeout: float = 10.0
    body_timeout: float = 30.0

    def __post_init__(self) -> None:
        if not self.path.startswith("/") or self.path.startswith(
            ("/_kit", "/oauth", "/.well-known")
        ):
            raise ConfigError(f"webhook path must start with / and not be reserved: {self.path!r}")
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"port must be 0-65535, got {self.port}")
        if (self.certfile is None) != (self.keyfile is None):
            raise ConfigError("--certfile and --keyfile go together")
        if (self.client_id is None) != (self.client_secret is None):
            raise ConfigError("--client-id and --client-secret go together")
        self._check_client()
        if self.max_body < 1:
            raise ConfigError("body limit must be positive")
        if not (0 < self.header_timeout < 3600 and 0 < self.body_timeout < 3600):
            raise ConfigError("header and body timeouts must be between 0 and 3600 seconds")
        if not 1 <= self.keep <= MAX_KEEP:
            raise ConfigError(f"--keep must be between 1 and {MAX_KEEP}")

    def _check_client(self) -> None:
        if self.client is not None and self.client_id is not None:
            raise ConfigError("register the client once: --client-id/--client-secret, or a method")
        if self.token_binding not in BINDINGS:
            raise ConfigError(
                f"token binding must be one of {', '.join(BINDINGS)}, got {self.token_binding!r}"
            )
        client = self.client
        trust = client.client_trust_file if client is not None else None
        if self.token_binding == "mtls" and trust is None:
            raise ConfigError(
                "--token-binding mtls needs the client's CA (--client-ca) "
                "or its self-signed certificate (--client-cert)"
            )
        uses_certificates = trust is not None or (
            client is not None and client.method in TLS_METHODS
        )
        if uses_certificates and self.server != "uvicorn":
            raise ConfigError(
                "client certificates need --server uvicorn "
                "(hypercorn does not show the client certificate to the app)"
            )
