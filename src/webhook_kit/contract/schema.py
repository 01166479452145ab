"""The shipped JSON Schemas (2020-12), loaded once, with compiled validators.

The hot path (one check per received notification) runs the compiled Rust validator from
``jsonschema-rs`` (about 1 µs); only when it says "invalid" does the Python ``jsonschema`` validator
run, because its errors name the failing path in a way people can read.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, Final

import jsonschema_rs
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match
from referencing import Registry, Resource

from webhook_kit.contract.statuses import LEGACY_ALIASES, SCORE_NAMES
from webhook_kit.errors import ConfigError, SchemaError

#: Schema names, as ``webhook-kit schemas`` lists them.
SCHEMA_NAMES: Final[tuple[str, ...]] = ("notification", "settings", "event", "error")


def _schema_files() -> resources.abc.Traversable:
    return resources.files("webhook_kit.contract").joinpath("schemas")


@cache
def load(name: str) -> dict[str, Any]:
    """The schema document ``name`` (one of :data:`SCHEMA_NAMES`). Callers must not mutate it."""
    if name not in SCHEMA_NAMES:
        raise ConfigError(f"unknown schema {name!r}; known: {', '.join(SCHEMA_NAMES)}")
    text = _schema_files().joinpath(f"{name}.json").read_text(encoding="utf-8")
    document: dict[str, Any] = json.loads(text)
    return document


def write_all(directory: Path) -> list[Path]:
    """Write every schema to ``directory`` (created if needed); returns the written paths."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name in SCHEMA_NAMES:
        target = directory / f"{name}.json"
        target.write_text(json.dumps(load(name), indent=2) + "\n", encoding="utf-8")
        written.append(target)
    return written


def _legacy_notification() -> dict[str, Any]:
    # v2.32's "documen2-uploaded" is read as an alias: same score rule as its v2.40 spelling.
    schema = copy.deepcopy(load("notification"))
    schema["$id"] = schema["$id"].replace("notification.json", "notification-legacy.json")
    schema["$defs"]["status"]["enum"].extend(LEGACY_ALIASES)
    for alias, canonical in LEGACY_ALIASES.items():
        schema["allOf"].insert(
            0,
            {
                "if": {"properties": {"status": {"const": alias}}, "required": ["status"]},
                "then": {
                    "required": ["scores"],
                    "properties": {
                        "scores": {
                            "contains": {
                                "properties": {"name": {"const": SCORE_NAMES[canonical]}},
                                "required": ["name"],
                            }
                        }
                    },
                },
            },
        )
        # The "no scores" rule lists the scored statuses; the alias is one of them.
        for rule in schema["allOf"]:
            status_rule = rule["if"]["properties"]["status"]
            if "not" in status_rule:
                status_rule["not"]["enum"].append(alias)
    return schema


def _registry() -> Registry[Any]:
    resources_ = [(load(name)["$id"], Resource.from_contents(load(name))) for name in SCHEMA_NAMES]
    # Relative "$ref": "notification.json" resolves against the base URI of the referring schema.
    return Registry().with_resources(resources_)


class Validator:
    """A schema compiled once: a fast yes/no check and a readable first error."""

    def __init__(self, schema: Mapping[str, Any], *, fast: bool = True) -> None:
        self.schema = schema
        self._slow = Draft202012Validator(schema, registry=_registry())
        self._fast = jsonschema_rs.validator_for(dict(schema)) if fast else None

    def is_valid(self, instance: object) -> bool:
        if self._fast is not None:
            return bool(self._fast.is_valid(instance))
        return bool(self._slow.is_valid(instance))

    def raw_errors(self, instance: object) -> list[ValidationError]:
        """The ``jsonschema`` errors themselves, for callers that map them to their own form."""
        if self.is_valid(instance):
            return []
        return list(self._slow.iter_errors(instance))

    def errors(self, instance: object) -> list[SchemaError]:
        """Every error, best first, each with a JSON-pointer ``path``."""
        found = list(self._slow.iter_errors(instance))
        if not found:
            return []
        # Errors from the per-status rules are consequences; a bad field itself is the cause.
        direct = [e for e in found if e.validator not in _RULE_KEYWORDS]
        first = best_match(direct or found)
        ordered = [first] + [e for e in found if e is not first]
        return [_to_schema_error(e) for e in ordered]

    def check(self, instance: object) -> None:
        """Raise :class:`SchemaError` for the most relevant failure, else return."""
        if self.is_valid(instance):
            return
        errors = self.errors(instance)
        if errors:
            raise errors[0]


_RULE_KEYWORDS: Final[frozenset[str]] = frozenset({"if", "then", "not", "allOf"})


def _to_schema_error(error: ValidationError) -> SchemaError:
    path = "/" + "/".join(str(part) for part in error.absolute_path)
    message = str(error.message)
    if error.validator == "required" and isinstance(error.instance, dict):
        wanted: Any = error.validator_value
        missing = [name for name in wanted if name not in error.instance]
        if missing:
            # "'scores' is a required property" names no path; say which field, where.
            return SchemaError(f"{missing[0]} missing", path.rstrip("/") + "/" + missing[0])
    if error.validator in ("if", "then", "allOf", "not") or len(message) > 300:
        message = _explain(error)
    return SchemaError(message, path)


def _explain(error: ValidationError) -> str:
    # Rule errors from "if/then" read as raw schema dumps; say what the contract requires instead.
    instance = error.instance
    if error.validator == "not" and isinstance(instance, dict) and "scores" in instance:
        return f"scores must be absent for status {instance.get('status')!r}"
    if error.validator == "required" or "scores" in error.message:
        return "scores missing or without the score this status requires"
    if error.validator == "contains":
        return "scores do not include the score this status requires"
    return str(error.message)[:300]


@cache
def notification_validator(*, legacy: bool = False) -> Validator:
    """The notification validator; ``legacy=True`` also reads v2.32's ``documen2-uploaded``."""
    return Validator(_legacy_notification() if legacy else load("notification"))


@cache
def validator(name: str) -> Validator:
    """A compiled validator for schema ``name``; compiled on first use, then reused."""
    if name == "notification":
        return notification_validator()
    # event.json refers to notification.json; the Rust validator would need its own retriever.
    return Validator(load(name), fast=name != "event")
