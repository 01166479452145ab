"""Webhook settings as the provider API takes them: validation with field errors, masking."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from jsonschema.exceptions import ValidationError

from webhook_kit.delivery.dispatcher import Target
from webhook_kit.oauth.client import OAuthSettings
from webhook_kit.oauth.credentials import mask
from webhook_kit.schemas import validator


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


def validate(document: Any) -> dict[str, Any]:
    """The settings with defaults filled in; raises :class:`SettingsInvalid` naming each field."""
    errors: list[dict[str, str]] = []
    for error in validator("settings").raw_errors(document):
        errors.extend(e for e in _field(error) if e not in errors)
    if errors:
        raise SettingsInvalid(errors)
    for name, url in (("url", document["url"]), ("auth.token_url", document["auth"]["token_url"])):
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 - raises ValueError for a port that is not a number in range
        except ValueError as exc:
            errors.append({"field": name, "message": f"not a valid URL ({exc})"})
            continue
        if parts.scheme != "https" or not parts.hostname:
            errors.append(
                {"field": name, "message": "must be an absolute https:// URL with a host"}
            )
    if errors:
        raise SettingsInvalid(errors)
    auth = dict(document["auth"])
    auth.setdefault("client_auth_method", "client_secret_basic")
    return {"url": document["url"], "enabled": document.get("enabled", True), "auth": auth}


def masked(settings: dict[str, Any]) -> dict[str, Any]:
    """The settings as they may be shown: the client secret never is."""
    auth = dict(settings["auth"])
    auth["client_secret"] = mask(auth.get("client_secret"))
    shown = {"url": settings["url"], "enabled": settings["enabled"], "auth": auth}
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
