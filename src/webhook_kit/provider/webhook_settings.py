"""Webhook settings as the provider API takes them: validation with field errors, masking."""

from __future__ import annotations

from typing import Any

from jsonschema.exceptions import ValidationError

from webhook_kit.contract.schema import validator
from webhook_kit.delivery.dispatcher import Target
from webhook_kit.delivery.guard import url_problem
from webhook_kit.oauth.client import OAuthSettings
from webhook_kit.oauth.credentials import mask
from webhook_kit.storage.rows import DEFAULT_MAX_IN_FLIGHT


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
    auth.setdefault("client_auth_method", "client_secret_basic")
    for name in ("client_id", "client_secret", "scope", "audience"):
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


def keep_secret(document: Any, current: dict[str, Any]) -> None:
    """For an update: fill in the stored client secret when the document leaves it out, unless
    the URL or the token URL changes; then raise :class:`SettingsInvalid` asking for it.

    Changing where the credentials go must come with the credentials: otherwise anyone who may
    update the settings could point them at a host of theirs and collect the stored secret."""
    if not isinstance(document, dict) or not isinstance(document.get("auth"), dict):
        return
    auth = document["auth"]
    if "client_secret" in auth:
        return
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
                    "field": "auth.client_secret",
                    "message": f"is required when {' or '.join(changed)} changes "
                    "(the stored secret never follows a new host)",
                }
            ]
        )
    auth["client_secret"] = current["auth"]["client_secret"]


def masked(settings: dict[str, Any]) -> dict[str, Any]:
    """The settings as they may be shown: the client secret never is."""
    auth = dict(settings["auth"])
    auth["client_secret"] = mask(auth.get("client_secret"))
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


def to_target(settings: dict[str, Any], timeout: float) -> Target:
    auth = settings["auth"]
    return Target(
        url=settings["url"],
        oauth=OAuthSettings(
            token_url=auth["token_url"],
            client_id=auth["client_id"],
            client_secret=auth["client_secret"],
            scope=auth.get("scope"),
            audience=auth.get("audience"),
            auth_method=auth.get("client_auth_method", "client_secret_basic"),
            timeout=timeout,
        ),
        enabled=bool(settings["enabled"]),
    )
