"""Every exception webhook-kit raises to its callers derives from :class:`WebhookKitError`.

::

    WebhookKitError
    ├── ConfigError            bad settings, flags or files
    │   └── CertificateError   a certificate or key that cannot be read or used
    ├── ServerError            a server could not start (port in use, ...)
    ├── SchemaError            a document does not match a shipped schema
    ├── TokenError             a bearer token is refused
    │   (attribute ``description`` says why, ``error`` is the RFC 6750 code)
    ├── TokenFetchError        a sender could not get an access token (failure class token_error)
    ├── StoreError             the durable store could not read or take a write
    │   ├── StoreUnavailable   the database cannot be reached now (try again: 503)
    │   ├── DuplicateEvent     an event id that is already stored
    │   ├── StaleUpdate        a row changed since it was read (a concurrent change)
    │   └── AlreadyExists      a name that is taken (an account)
    └── DiscoveryError         authorization server metadata could not be found (certify)

Exit codes are decided at the CLI edge only: an error in the flags themselves is a usage error
(exit 2); one found while running (an unreadable file, a port in use) exits 1; an unexpected
exception exits 3.

A few exceptions never reach a caller, so they do not derive from it: the ones that carry an
HTTP answer out of a request handler to its app (``serving.http.HttpError``, which both apps
use, and the token issuer's RFC 6749 errors), ``guard.ForbiddenAddress``, an ``OSError`` so that
aiohttp reports a refused connection as one, ``serving.strict_json.PayloadError``, a
``ValueError`` like the JSON parser's own, and the pytest plugin's report of a failed check.
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
    """The durable store could not read or take a write (the event was not accepted)."""


class StoreUnavailable(StoreError):
    """The database cannot be reached now (down, restarting, refusing connections).

    The caller may try again: the provider API answers 503 with ``Retry-After``, a worker
    backs off and reconnects.
    """


class DuplicateEvent(StoreError):
    """An event with this ``event_id`` is already stored."""


class StaleUpdate(StoreError):
    """The row changed between its read and this write (another request changed it first)."""


class AlreadyExists(StoreError):
    """A name that must be unique is taken."""


class DiscoveryError(WebhookKitError):
    """Authorization server metadata or a JWKS could not be found or used (safe to print)."""
