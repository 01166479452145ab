from __future__ import annotations

import json
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from tests.helpers import notification
from webhook_kit.contract import schema as schemas
from webhook_kit.contract.statuses import SCORE_NAMES, STATUSES

REPO_SCHEMAS = Path(__file__).resolve().parent.parent / "schemas"


@pytest.mark.parametrize("name", schemas.SCHEMA_NAMES)
def test_each_schema_is_valid_2020_12(name: str) -> None:
    document = schemas.load(name)
    assert document["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(document)


def test_repository_schemas_are_the_packaged_ones() -> None:
    for name in schemas.SCHEMA_NAMES:
        on_disk = json.loads((REPO_SCHEMAS / f"{name}.json").read_text())
        assert on_disk == schemas.load(name)


@pytest.mark.parametrize("status", STATUSES)
def test_score_rules_per_status(status: str) -> None:
    validator = schemas.notification_validator()
    body = notification(status)
    assert validator.is_valid(body)
    if status in SCORE_NAMES:
        without = {k: v for k, v in body.items() if k != "scores"}
        assert not validator.is_valid(without)
        wrong_name = dict(body, scores=[{"name": "Other", "value": 0.5}])
        assert not validator.is_valid(wrong_name)
    else:
        assert not validator.is_valid(
            dict(body, scores=[{"name": "ValidasScoreSelfie", "value": 0.5}])
        )


def test_on_course_previous_status_must_be_null() -> None:
    validator = schemas.notification_validator()
    assert not validator.is_valid(notification("on-course", previous_status="deleted"))


@pytest.mark.parametrize("value", [-0.01, 1.01, "0.5", None])
def test_score_values_are_numbers_in_0_1(value: object) -> None:
    body = notification("selfie-uploaded", scores=[{"name": "ValidasScoreSelfie", "value": value}])
    assert not schemas.notification_validator().is_valid(body)


def test_fast_and_readable_validators_agree() -> None:
    validator = schemas.notification_validator()
    cases = [notification(s) for s in STATUSES] + [
        notification("on-course", scores=[]),
        notification("selfie-uploaded", scores=[{"name": "ValidasScoreSelfie"}]),
        {"status": "on-course"},
        [],
    ]
    for case in cases:
        assert validator.is_valid(case) == (not validator.errors(case))


def test_legacy_alias_only_behind_the_option() -> None:
    body = notification("document2-uploaded")
    body["status"] = "documen2-uploaded"
    assert not schemas.notification_validator().is_valid(body)
    assert schemas.notification_validator(legacy=True).is_valid(body)
    assert not schemas.notification_validator(legacy=True).is_valid(
        {**body, "scores": [{"name": "ValidasScoreSelfie", "value": 0.1}]}
    )


def test_validators_are_compiled_once() -> None:
    assert schemas.notification_validator() is schemas.notification_validator()
    assert schemas.validator("settings") is schemas.validator("settings")


def test_settings_schema_refuses_http_and_unknown_fields() -> None:
    validator = schemas.validator("settings")
    good = {
        "url": "https://example.com/hook",
        "auth": {"token_url": "https://example.com/token", "client_id": "a", "client_secret": "b"},
    }
    assert validator.is_valid(good)
    assert not validator.is_valid({**good, "url": "http://example.com/hook"})
    assert not validator.is_valid({**good, "colour": "blue"})
    assert not validator.is_valid(
        {"url": good["url"], "auth": {"client_id": "a", "client_secret": "b"}}
    )


def test_error_schema_accepts_the_endpoint_errors() -> None:
    assert schemas.validator("error").is_valid({"error_type": "invalid_json", "error_message": "x"})


def test_write_all(tmp_path: Path) -> None:
    written = schemas.write_all(tmp_path / "out")
    assert sorted(p.name for p in written) == sorted(f"{n}.json" for n in schemas.SCHEMA_NAMES)
