"""The OpenAPI 3.1 description of the provider API (served at ``/validas/v1/openapi.json``).

Over 400 lines on purpose: it is one document, data rather than logic, and it reads top to bottom
like the API itself (one function per resource). ``openapi.json`` beside it is this output, kept
current by a test.
"""

from __future__ import annotations

import copy
from typing import Any

from webhook_kit._version import __version__
from webhook_kit.contract.schema import load
from webhook_kit.contract.statuses import STATUSES


def _strip_ids(schema: dict[str, Any]) -> dict[str, Any]:
    # Components live inside the OpenAPI document; their own $id/$schema would re-root $refs.
    schema = copy.deepcopy(schema)
    schema.pop("$id", None)
    schema.pop("$schema", None)
    return schema


def _rebase(node: Any, prefix: str) -> Any:
    """Point the schema's internal ``#/...`` references at its place in the OpenAPI document."""
    if isinstance(node, dict):
        return {
            k: (
                prefix + v[1:]
                if k == "$ref" and isinstance(v, str) and v.startswith("#/")
                else _rebase(v, prefix)
            )
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_rebase(v, prefix) for v in node]
    return node


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def _ok(description: str, schema: dict[str, Any], status: str = "200") -> dict[str, Any]:
    return {
        status: {
            "description": description,
            "content": {"application/json": {"schema": schema}},
        }
    }


def _data(schema: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "required": ["data"], "properties": {"data": schema}}


def _page(item: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["data", "next_cursor"],
        "properties": {
            "data": {"type": "array", "items": item},
            "next_cursor": {"type": ["string", "null"]},
        },
    }


COMMON_ERRORS = {
    "400": _error("Bad parameter or body that is not JSON"),
    "401": _error("Missing, wrong, expired or revoked apikey header"),
    "409": _error("Not possible in the current state (webhook not enabled, final validation)"),
    "503": _error(
        "storage_unavailable: the database cannot be reached or cannot take the change (a full "
        "disk); try again after the Retry-After header's seconds"
    ),
}

EVENT_FILTERS = [
    {"name": "sent", "in": "query", "schema": {"type": "string", "enum": ["true", "false"]}},
    {"name": "status", "in": "query", "schema": {"type": "string", "enum": list(STATUSES)}},
    {"name": "validation_id", "in": "query", "schema": {"type": "string"}},
    {"name": "since", "in": "query", "schema": {"type": "string", "format": "date-time"}},
    {"name": "until", "in": "query", "schema": {"type": "string", "format": "date-time"}},
]
PAGING = [
    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 500}},
    {"name": "cursor", "in": "query", "schema": {"type": "string"}},
]
EVENT_ID = {"name": "event_id", "in": "path", "required": True, "schema": {"type": "string"}}
VALIDATION_ID = {
    "name": "validation_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string"},
}
EVENT_REF = {"$ref": "#/components/schemas/Event"}
CHANGE_RESULT = _data(
    {
        "type": "object",
        "required": ["id", "status", "event_id"],
        "properties": {
            "id": {"type": "string"},
            "status": {"type": "string"},
            "event_id": {"type": "string"},
        },
    }
)


def _upload(field: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    properties: dict[str, Any] = {
        field: {"type": "string", "contentMediaType": "application/octet-stream"}
    }
    properties.update(extra or {})
    return {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {"type": "object", "required": [field], "properties": properties}
            },
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": [field],
                    "properties": {**properties, field: {"type": "string", "minLength": 1}},
                }
            },
        },
    }


def _change(summary: str, request_body: dict[str, Any] | None = None) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "summary": summary,
        "parameters": [VALIDATION_ID],
        "responses": {
            **_ok("The new status and its event", CHANGE_RESULT),
            "404": _error("Unknown validation"),
            **COMMON_ERRORS,
        },
    }
    if request_body is not None:
        operation["requestBody"] = request_body
        operation["responses"]["413"] = _error(
            "Upload too large: over 20 MiB of file (the body is counted while it streams)"
        )
        operation["responses"]["415"] = _error("Neither multipart/form-data nor JSON")
        operation["responses"]["422"] = _error("The file field is missing or empty")
    return operation


def build_openapi() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "webhook-kit provider API",
            "version": __version__,
            "description": "Webhook settings, test, events and validations. Every call needs the "
            "`apikey` header, which names the caller's account: each account has its own API "
            "keys (stored hashed; rotated with a grace period, revoked with `webhook-kit "
            "accounts`), webhook settings, validations and events, and every call sees only its "
            "own account's objects (another account's validation or event is a 404). Errors "
            "are JSON {error_type, error_message}.",
        },
        "servers": [{"url": "/validas/v1"}],
        "security": [{"apikey": []}],
        "paths": {
            **_settings_paths(),
            **_test_path(),
            **_event_paths(),
            **_validations_query_path(),
            **_validation_paths(),
            **_jwks_path(),
        },
        "components": {
            "securitySchemes": {"apikey": {"type": "apiKey", "in": "header", "name": "apikey"}},
            "schemas": _schemas(),
        },
    }


def _settings_paths() -> dict[str, Any]:
    settings_body = {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Settings"}}},
    }
    settings_read = _data({"$ref": "#/components/schemas/SettingsRead"})
    return {
        "/webhook/settings": {
            "post": {
                "summary": "Create or replace the webhook settings",
                "requestBody": settings_body,
                "responses": {
                    **_ok("Saved (secret masked)", settings_read, "201"),
                    "422": _error("Invalid settings, with field errors"),
                    **COMMON_ERRORS,
                },
            },
            "get": {
                "summary": "Read the webhook settings (secret masked)",
                "responses": {
                    **_ok("The settings", settings_read),
                    "404": _error("No settings"),
                    **COMMON_ERRORS,
                },
            },
            "put": {
                "summary": "Update the settings",
                "description": "auth.client_secret may be left out to keep the stored one, "
                "unless url or auth.token_url changes: then it is required again (422 naming "
                "auth.client_secret), so that a stored secret never follows a new host.",
                "requestBody": settings_body,
                "responses": {
                    **_ok("Saved (secret masked)", settings_read),
                    "404": _error("No settings"),
                    "422": _error("Invalid settings, with field errors"),
                    **COMMON_ERRORS,
                },
            },
            "delete": {
                "summary": "Remove the settings",
                "responses": {
                    "204": {"description": "Removed"},
                    "404": _error("No settings"),
                    **COMMON_ERRORS,
                },
            },
        },
    }


def _test_path() -> dict[str, Any]:
    return {
        "/webhook/test": {
            "post": {
                "summary": "Deliver one test notification now; returns a step-by-step trace",
                "description": "Targets may be on public or loopback addresses (private ones "
                "with the provider's --allow-private; link-local and cloud metadata addresses "
                "never). A failed step says what the sender needs and no more: a refused, "
                "unreachable or non-TLS port all read the same.",
                "responses": {
                    **_ok(
                        "The trace (ok true or false)",
                        _data({"$ref": "#/components/schemas/TestTrace"}),
                    ),
                    **COMMON_ERRORS,
                },
            }
        },
    }


def _event_paths() -> dict[str, Any]:
    return {
        "/webhook/events": {
            "get": {
                "summary": "Status-change events, filtered, paginated by cursor",
                "parameters": EVENT_FILTERS + PAGING,
                "responses": {**_ok("A page of events", _page(EVENT_REF)), **COMMON_ERRORS},
            }
        },
        "/webhook/events/redelivery": {
            "post": {
                "summary": "Redeliver every failed event matching the filters",
                "parameters": [p for p in EVENT_FILTERS if p["name"] != "sent"],
                "responses": {
                    **_ok(
                        "Queued",
                        _data(
                            {
                                "type": "object",
                                "properties": {
                                    "redelivered": {"type": "integer"},
                                    "event_ids": {"type": "array", "items": {"type": "string"}},
                                },
                            }
                        ),
                        "202",
                    ),
                    **COMMON_ERRORS,
                },
            }
        },
        "/webhook/events/{event_id}": {
            "get": {
                "summary": "One event with all its attempts",
                "parameters": [EVENT_ID],
                "responses": {
                    **_ok("The event", _data(EVENT_REF)),
                    "404": _error("Unknown event"),
                    **COMMON_ERRORS,
                },
            }
        },
        "/webhook/events/{event_id}/redelivery": {
            "post": {
                "summary": "Send one event again",
                "parameters": [EVENT_ID],
                "responses": {
                    **_ok("Queued", _data({"type": "object"}), "202"),
                    "404": _error("Unknown event"),
                    **COMMON_ERRORS,
                },
            }
        },
    }


def _validations_query_path() -> dict[str, Any]:
    return {
        "/webhook/validations": {
            "get": {
                "summary": "Validations whose notifications were all sent (sent=true) or not",
                "parameters": [
                    {
                        "name": "sent",
                        "in": "query",
                        "required": True,
                        "schema": {"type": "string", "enum": ["true", "false"]},
                    },
                    *PAGING,
                ],
                "responses": {
                    **_ok(
                        "A page of validations",
                        _page(
                            {
                                "type": "object",
                                "properties": {
                                    "validation_id": {"type": "string"},
                                    "events": {"type": "integer"},
                                    "sent": {"type": "integer"},
                                    "not_sent": {"type": "integer"},
                                },
                            }
                        ),
                    ),
                    **COMMON_ERRORS,
                },
            }
        },
    }


def _jwks_path() -> dict[str, Any]:
    return {
        "/accounts/{account}/jwks.json": {
            "get": {
                "summary": "An account's public keys for private_key_jwt (no apikey)",
                "description": "The keys the provider signs this account's client assertions "
                "with: register this URL at the customer's authorization server. Public: no "
                "apikey, public key fields only.",
                "security": [],
                "parameters": [
                    {
                        "name": "account",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string"},
                    }
                ],
                "responses": {
                    "200": {
                        "description": "A JWKS",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["keys"],
                                    "properties": {
                                        "keys": {"type": "array", "items": {"type": "object"}}
                                    },
                                }
                            }
                        },
                    },
                    "404": _error("No such account"),
                    "503": _error("storage_unavailable: try again after Retry-After seconds"),
                },
            }
        }
    }


def _validation_paths() -> dict[str, Any]:
    return {
        "/validation": {
            "post": {
                "summary": "Create a validation (status on-course)",
                "responses": {**_ok("Created", CHANGE_RESULT, "201"), **COMMON_ERRORS},
            }
        },
        "/validation/{validation_id}": {
            "get": {
                "summary": "One validation",
                "parameters": [VALIDATION_ID],
                "responses": {
                    **_ok("The validation", _data({"type": "object"})),
                    "404": _error("Unknown validation"),
                    **COMMON_ERRORS,
                },
            },
            "delete": _change("Delete the validation (status deleted)"),
        },
        "/validation/{validation_id}/events": {
            "get": {
                "summary": "All events of one validation, oldest first",
                "parameters": [VALIDATION_ID],
                "responses": {
                    **_ok("The events", _data({"type": "array", "items": EVENT_REF})),
                    "404": _error("Unknown validation"),
                    **COMMON_ERRORS,
                },
            }
        },
        "/validation/{validation_id}/document": {
            "put": _change(
                "Upload a document (1st, 2nd, 3rd: document-uploaded, document2-, document3-)",
                _upload(
                    "documentImage",
                    {"analysisType": {"type": "string"}, "documentType": {"type": "string"}},
                ),
            )
        },
        "/validation/{validation_id}/selfie": {
            "put": _change("Upload a selfie (selfie-uploaded)", _upload("image"))
        },
        "/validation/{validation_id}/video": {
            "put": _change("Upload a video (video-uploaded)", _upload("video"))
        },
        "/validation/{validation_id}/cancellation": {
            "put": _change("Cancel the validation (cancelled)")
        },
        "/validation/{validation_id}/confirmation": {
            "put": _change("Confirm the validation (confirmed)")
        },
    }


def _schemas() -> dict[str, Any]:
    settings = _strip_ids(load("settings"))
    settings_read_schema = copy.deepcopy(settings)
    settings_read_schema["properties"]["auth"]["properties"]["client_secret"] = {
        "type": "string",
        "description": "Always masked",
    }
    settings_read_schema["additionalProperties"] = True
    settings_read_schema["properties"]["breaker"] = {
        "type": "object",
        "description": "The endpoint's circuit breaker: closed (delivering), open (paused after "
        "consecutive failures, probed at next_probe_at) or half_open (one probe in flight).",
        "properties": {
            "state": {"enum": ["closed", "open", "half_open"]},
            "since": {"type": ["string", "null"], "format": "date-time"},
            "reason": {"type": "string"},
            "consecutive_failures": {"type": "integer"},
            "next_probe_at": {"type": ["string", "null"], "format": "date-time"},
        },
    }
    event = _strip_ids(load("event"))
    event["properties"]["notification"] = {"$ref": "#/components/schemas/Notification"}
    event["properties"]["status"] = {"type": "string", "enum": list(STATUSES)}
    event["properties"]["attempts"] = {
        "type": "array",
        "items": {"$ref": "#/components/schemas/Attempt"},
    }
    attempt = event.pop("$defs")["attempt"]
    notification = _rebase(_strip_ids(load("notification")), "#/components/schemas/Notification")
    return {
        "Settings": settings,
        "SettingsRead": settings_read_schema,
        "Event": event,
        "Attempt": attempt,
        "Notification": notification,
        "Error": _strip_ids(load("error")),
        "TestTrace": {
            "type": "object",
            "required": ["ok", "url", "steps"],
            "properties": {
                "ok": {"type": "boolean"},
                "url": {"type": "string"},
                "steps": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["step", "ok", "detail", "duration_ms"],
                        "properties": {
                            "step": {"enum": ["token", "tls", "delivery"]},
                            "ok": {"type": "boolean"},
                            "detail": {"type": "string"},
                            "duration_ms": {"type": "number"},
                        },
                    },
                },
                "notification": {"$ref": "#/components/schemas/Notification"},
            },
        },
    }
