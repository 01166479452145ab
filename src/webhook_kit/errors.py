"""Every exception webhook-kit raises on purpose derives from :class:`WebhookKitError`.

::

    WebhookKitError
    ├── ConfigError            bad settings, flags or files (the CLI exits 1)
    │   └── CertificateError   a certificate or key that cannot be read or used
    ├── ServerError            a server could not start (port in use, ...)
    ├── SchemaError            a document does not match a shipped schema
    ├── TokenError             a bearer token is refused
    │   (attribute ``description`` says why, ``error`` is the RFC 6750 code)
    ├── TokenFetchError        a sender could not get an access token (failure class token_error)
    └── StoreError             the durable store could not take a write

Exit codes are decided at the CLI edge only.
"""

from __future__ import annotations


class WebhookKitError(Exception):
    """Root of every webhook-kit error."""


class ConfigError(WebhookKitError):
    """Settings, flags or files that cannot be used."""


class CertificateError(ConfigError):
    """A certificate or private key that cannot be read or used."""


class ServerError(WebhookKitError):
    """A server could not be started."""


class SchemaError(WebhookKitError):
    """A document does not match its schema. ``path`` is a JSON pointer to the failing spot."""

    def __init__(self, message: str, path: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.path = path


class TokenError(WebhookKitError):
    """A bearer token was refused (RFC 6750)."""

    def __init__(self, description: str, error: str | None = "invalid_token") -> None:
        super().__init__(description)
        self.description = description
        #: RFC 6750 error code; ``None`` when no credentials were sent at all (section 3.1).
        self.error = error


class TokenFetchError(WebhookKitError):
    """A sender could not obtain an access token. The message never contains a secret.

    ``error`` is the token endpoint's RFC 6749 error code, kept only when it uses the characters
    that RFC allows; ``description`` its ``error_description``, made printable.
    """

    def __init__(
        self, message: str, *, error: str | None = None, description: str | None = None
    ) -> None:
        super().__init__(message)
        self.error = error
        self.description = description


class StoreError(WebhookKitError):
    """The durable store could not take a write (the event was not accepted)."""
