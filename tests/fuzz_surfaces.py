"""Hostile input for the three surfaces: the provider API (schemathesis, from its OpenAPI
description), the endpoint's webhook route and its token endpoint (hypothesis).

Each ``fuzz_*`` runs ``examples`` generated cases against a live server and returns how many ran;
any 5xx, non-JSON error body or dead server fails it. ``tests/test_fuzz.py`` runs a few hundred in
CI; ``scripts/fuzz.py`` runs 10,000 per surface.
"""

from __future__ import annotations

import json
import string
from typing import Any

import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

SETTINGS = dict(deadline=None, suppress_health_check=list(HealthCheck), database=None)

json_values = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=False) | st.integers() | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=12), children, max_size=6)
    ),
    max_leaves=25,
)
STATUSES = [
    "on-course",
    "document-uploaded",
    "selfie-uploaded",
    "deleted",
    "documen2-uploaded",
    "",
    "x",
]
notification_like = st.fixed_dictionaries(
    {},
    optional={
        "event_id": st.text(max_size=200) | json_values,
        "validation_id": st.text(max_size=50) | json_values,
        "status": st.sampled_from(STATUSES) | json_values,
        "previous_status": st.sampled_from(STATUSES) | st.none(),
        "occurred_at": st.just("2026-11-25T21:58:03.412Z") | st.text(max_size=30),
        "scores": st.lists(
            st.fixed_dictionaries({"name": st.text(max_size=30), "value": json_values}), max_size=3
        )
        | json_values,
        "test": json_values,
    },
)
# Header values a client can send at all (requests refuses leading whitespace and line breaks).
header_text = st.text(
    alphabet=string.ascii_letters + string.digits + string.punctuation + " ", max_size=60
).map(str.strip)


def check_error_body(response: requests.Response) -> None:
    assert response.status_code < 500, f"{response.status_code}: {response.text[:300]}"
    if response.status_code >= 400 and response.content:
        body = response.json()  # every error is JSON
        assert isinstance(body, dict)


def fuzz_webhook(http: requests.Session, url: str, token: str, examples: int) -> int:
    count = [0]

    @settings(max_examples=examples, **SETTINGS)
    @given(
        body=notification_like | json_values | st.binary(max_size=300).map(lambda b: b),
        content_type=st.sampled_from(
            [
                "application/json",
                "application/json; charset=utf-8",
                "text/plain",
                "",
                "application/json; charset=latin-1",
            ]
        )
        | header_text,
        authorization=st.sampled_from(["good", "none"]) | header_text,
        webhook_id=st.none() | header_text,
    )
    def run(body: Any, content_type: str, authorization: str, webhook_id: str | None) -> None:
        count[0] += 1
        headers = {"Content-Type": content_type}
        if authorization == "good":
            headers["Authorization"] = f"Bearer {token}"
        elif authorization != "none":
            headers["Authorization"] = authorization
        if webhook_id is not None:
            headers["Webhook-Id"] = webhook_id
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        check_error_body(http.post(url, data=data, headers=headers, timeout=30))

    run()
    return count[0]


def fuzz_token_endpoint(
    http: requests.Session, url: str, client_id: str, secret: str, examples: int
) -> int:
    count = [0]
    params = st.dictionaries(
        st.sampled_from(["grant_type", "scope", "audience", "client_id", "client_secret", "x"])
        | st.text(max_size=10),
        st.sampled_from(["client_credentials", "password", "", client_id, secret])
        | st.text(max_size=40),
        max_size=5,
    )

    @settings(max_examples=examples, **SETTINGS)
    @given(
        form=params,
        raw=st.none() | st.binary(max_size=200),
        basic=st.sampled_from(["good", "none", "wrong"]) | header_text,
        content_type=st.sampled_from(["application/x-www-form-urlencoded", "application/json", ""])
        | header_text,
    )
    def run(form: dict[str, str], raw: bytes | None, basic: str, content_type: str) -> None:
        count[0] += 1
        headers = {"Content-Type": content_type}
        auth = None
        if basic == "good":
            auth = (client_id, secret)
        elif basic == "wrong":
            auth = (client_id, secret + "x")
        elif basic != "none":
            headers["Authorization"] = basic
        response = http.post(
            url, data=raw if raw is not None else form, headers=headers, auth=auth, timeout=30
        )
        assert response.status_code < 500, response.text[:300]
        if response.status_code >= 400:
            body = response.json()
            assert isinstance(body.get("error"), str)  # RFC 6749 section 5.2
        assert secret not in response.text

    run()
    return count[0]


def _fuzz_operation(
    http: requests.Session, base_url: str, apikey: str, operation: Any, examples: int
) -> int:
    count = [0]

    @settings(max_examples=examples, **SETTINGS)
    @given(case=operation.as_strategy(), key=st.sampled_from([apikey, apikey, apikey, "wrong"]))
    def run(case: Any, key: str) -> None:
        count[0] += 1
        response = case.call(
            base_url=base_url,
            session=http,
            headers={"apikey": key},
            timeout=30,
            verify=http.verify,
        )
        where = f"{case.method} {case.formatted_path}"
        assert response.status_code < 500, f"{where}: {response.status_code} {response.text[:300]}"
        if response.status_code >= 400:
            body = response.json()
            assert isinstance(body.get("error_type"), str)
            assert isinstance(body.get("error_message"), str)

    run()
    return count[0]


def fuzz_provider(
    http: requests.Session, base_url: str, apikey: str, examples_per_operation: int
) -> int:
    import schemathesis

    spec = json.loads(http.get(base_url + "/openapi.json", timeout=30).text)
    schema = schemathesis.openapi.from_dict(spec)
    return sum(
        _fuzz_operation(http, base_url, apikey, result.ok(), examples_per_operation)
        for result in schema.get_all_operations()
    )
