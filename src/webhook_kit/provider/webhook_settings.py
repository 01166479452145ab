"""Webhook settings as the provider API takes them: validation with field errors, masking."""

from __future__ import annotations

from typing import Any

from jsonschema.exceptions import ValidationError

from webhook_kit.contract.schema import validator
from webhook_kit.delivery.dispatcher import Target
from webhook_kit.delivery.guard import url_problem
from webhook_kit.errors import ConfigError
from webhook_kit.oauth.client import OAuthSettings
from webhook_kit.oauth.client_auth import (
    DEFAULT_ALGORITHM,
    DEFAULT_METHOD,
    SECRET_METHODS,
    TLS_METHODS,
    ClientCredentials,
    SigningAlgorithm,
    parse_algorithm,
    parse_method,
)
from webhook_kit.oauth.credentials import mask
from webhook_kit.oauth.mtls import load_client_identity
from webhook_kit.provider.client_files import ClientFiles
from webhook_kit.storage.rows import DEFAULT_MAX_IN_FLIGHT, SigningKeyRow


class SettingsInvalid(Exception):
    def __init__(self, errors: list[dict[str, str]]) -> None:
        super().__init__("; ".join(f"{e['field']}: {e['message']}" for e in errors))
        self.errors = errors


def _field(error: ValidationError) -> list[dict[str, str]]:
    base = ".".join(str(p) for p in error.absolute_path)

    def join(name: str) -> str:
        return f"{base}.{name}" if base else name

    instance: Any = error.instance
    schema: Any = error.schema
    if error.validator == "required":
        wanted: Any = error.validator_value
        missing = [n for n in wanted if n not in instance]
        return [{"field": join(n), "message": "is required"} for n in missing]
    if error.validator == "additionalProperties":
        allowed = set(schema.get("properties", {}))
        extra = sorted(set(instance) - allowed)
        return [{"field": join(n), "message": "unknown field"} for n in extra]
    if error.validator == "pattern" and base in ("url", "auth.token_url"):
        return [{"field": base, "message": "must be an https:// URL"}]
    if error.validator == "type":
        return [{"field": base or "(body)", "message": f"must be of type {error.validator_value}"}]
    return [{"field": base or "(body)", "message": str(error.message)[:200]}]


def _unencodable(value: Any, path: str = "") -> list[dict[str, str]]:
    """Fields holding a lone UTF-16 surrogate (JSON allows ``"\\ud800"``; Unicode does not):
    stored, such text would break every later read of the settings."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return [{"field": path or "(body)", "message": "contains a lone UTF-16 surrogate"}]
        return []
    if isinstance(value, dict):
        return [
            e
            for k, v in value.items()
            for e in _unencodable(k, path) + _unencodable(v, f"{path}.{k}" if path else str(k))
        ]
    if isinstance(value, list):
        return [e for i, v in enumerate(value) for e in _unencodable(v, f"{path}.{i}")]
    return []


#: What a read shows but a write does not set: a document read may be written back as it is.
READ_ONLY = ("breaker", "disabled_reason", "last_test")


def validate(document: Any) -> dict[str, Any]:
    """The settings with defaults filled in; raises :class:`SettingsInvalid` naming each field."""
    if isinstance(document, dict):
        document = {k: v for k, v in document.items() if k not in READ_ONLY}
    errors = _unencodable(document)
    if errors:
        raise SettingsInvalid(errors)
    for error in validator("settings").raw_errors(document):
        errors.extend(e for e in _field(error) if e not in errors)
    if errors:
        raise SettingsInvalid(errors)
    for name, url in (("url", document["url"]), ("auth.token_url", document["auth"]["token_url"])):
        problem = url_problem(url)
        if problem is not None:
            errors.append({"field": name, "message": problem})
    auth = dict(document["auth"])
    auth.setdefault("client_auth_method", DEFAULT_METHOD)
    errors.extend(_credential_errors(auth))
    for name in ("client_id", "client_secret", "scope", "audience", "resource"):
        value = auth.get(name)
        if isinstance(value, str) and any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
            errors.append(
                {"field": f"auth.{name}", "message": "must not contain control characters"}
            )
    if errors:
        raise SettingsInvalid(errors)
    return {
        "url": document["url"],
        "enabled": document.get("enabled", True),
        "max_in_flight": document.get("max_in_flight", DEFAULT_MAX_IN_FLIGHT),
        "auth": auth,
    }


def _credential_errors(auth: dict[str, Any]) -> list[dict[str, str]]:
    """What the chosen method needs, and what it must not be given; a client certificate that
    cannot be used (not PEM, not its key's, expired) is named by its field."""
    method = auth["client_auth_method"]
    errors = []
    if method in SECRET_METHODS and not auth.get("client_secret"):
        errors.append({"field": "auth.client_secret", "message": f"is required for {method}"})
    if method not in SECRET_METHODS and "client_secret" in auth:
        errors.append({"field": "auth.client_secret", "message": f"is not used by {method}"})
    has_cert, has_key = bool(auth.get("client_cert")), bool(auth.get("client_key"))
    if method in TLS_METHODS and not has_cert:
        errors.append({"field": "auth.client_cert", "message": f"is required for {method}"})
    if has_cert != has_key:
        missing = "auth.client_key" if has_cert else "auth.client_cert"
        errors.append({"field": missing, "message": "client_cert and client_key go together"})
    elif has_cert:
        with ClientFiles.private() as files:
            cert, key = files.pair(auth["client_cert"], auth["client_key"])
            try:
                load_client_identity(
                    cert, key, cert_field="auth.client_cert", key_field="auth.client_key"
                )
            except ConfigError as exc:
                field, _, message = str(exc).partition(": ")
                # The file names are this check's own temporary ones: not worth showing.
                message = message.replace(str(cert), "it").replace(str(key), "the key")
                errors.append({"field": field.split()[0], "message": message})
    return errors


#: Write-only fields: never shown, kept on an update that leaves them out (see keep_secret).
WRITE_ONLY = ("client_secret", "client_key")


def keep_secret(document: Any, current: dict[str, Any]) -> None:
    """For an update: fill in the stored client secret and client key when the document leaves
    them out, unless the URL or the token URL changes; then raise :class:`SettingsInvalid`
    asking for them.

    Changing where the credentials go must come with the credentials: otherwise anyone who may
    update the settings could point them at a host of theirs and collect the stored secret."""
    if not isinstance(document, dict) or not isinstance(document.get("auth"), dict):
        return
    auth = document["auth"]
    kept = [
        name for name in WRITE_ONLY if name not in auth and current["auth"].get(name) is not None
    ]
    if not kept:
        return
    if (
        auth.get("client_auth_method", DEFAULT_METHOD)
        != current["auth"].get("client_auth_method", DEFAULT_METHOD)
        and "client_secret" in kept
    ):
        kept.remove("client_secret")  # a new method decides anew whether a secret is needed
    changed = [
        name
        for name, new, old in (
            ("url", document.get("url"), current["url"]),
            ("auth.token_url", auth.get("token_url"), current["auth"]["token_url"]),
        )
        if new != old
    ]
    if changed:
        raise SettingsInvalid(
            [
                {
                    "field": f"auth.{name}",
                    "message": f"is required when {' or '.join(changed)} changes "
                    "(the stored secret never follows a new host)",
                }
                for name in kept
            ]
        )
    for name in kept:
        auth[name] = current["auth"][name]


def masked(settings: dict[str, Any]) -> dict[str, Any]:
    """The settings as they may be shown: the client secret never is."""
    auth = dict(settings["auth"])
    for name in WRITE_ONLY:
        if name in auth or name == "client_secret":
            auth[name] = mask(auth.get(name))
    shown = {
        "url": settings["url"],
        "enabled": settings["enabled"],
        "max_in_flight": settings.get("max_in_flight", DEFAULT_MAX_IN_FLIGHT),
        "auth": auth,
    }
    if settings.get("disabled_reason"):
        shown["disabled_reason"] = settings["disabled_reason"]
    if settings.get("last_test") is not None:
        shown["last_test"] = settings["last_test"]
    return shown


def to_target(
    settings: dict[str, Any],
    timeout: float,
    *,
    signing_key: SigningKeyRow | None = None,
    files: ClientFiles | None = None,
) -> Target:
    """The settings as a delivery target. ``signing_key``: the account's key, for
    ``private_key_jwt``; ``files``: where a client certificate from the settings is written."""
    auth = settings["auth"]
    method = parse_method(auth.get("client_auth_method", DEFAULT_METHOD))
    cert_file = key_file = None
    if auth.get("client_cert") and auth.get("client_key"):
        if files is None:
            raise ConfigError("a client certificate needs somewhere to be written")
        cert_file, key_file = files.pair(auth["client_cert"], auth["client_key"])
    private_key = key_id = None
    algorithm: SigningAlgorithm = DEFAULT_ALGORITHM
    if method == "private_key_jwt":
        if signing_key is None:
            raise ConfigError("private_key_jwt needs the account's signing key")
        private_key, key_id = signing_key.private_pem, signing_key.kid
        algorithm = parse_algorithm(signing_key.algorithm)
    credentials = ClientCredentials(
        auth["client_id"],
        method,
        secret=auth.get("client_secret") if method in SECRET_METHODS else None,
        private_key=private_key,
        key_id=key_id,
        algorithm=algorithm,
        cert_file=cert_file,
        key_file=key_file,
        assertion_audience=auth.get("assertion_audience", "token_endpoint"),
    )
    return Target(
        url=settings["url"],
        oauth=OAuthSettings(
            token_url=auth["token_url"],
            scope=auth.get("scope"),
            audience=auth.get("audience"),
            timeout=timeout,
            credentials=credentials,
            dpop="ES256" if auth.get("dpop") else None,
            issuer=auth.get("issuer"),
            resource=auth.get("resource"),
        ),
        enabled=bool(settings["enabled"]),
    )
