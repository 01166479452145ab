"""Property-based and schema-driven fuzzing of every surface (a few hundred cases in CI).

The cases are derandomized here, so a failure is the same failure on every run; ``scripts/fuzz.py``
draws 10,000 new ones per surface. Input classes: see ``harnesses/fuzz.py``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from harnesses.fuzz import (
    ESCAPES,
    HUGE_NUMBERS,
    MARKUP,
    SURROGATES,
    TERMINAL_CONTROLS,
    Raw,
    ServeProcess,
    StreamWatch,
    Tally,
    fuzz_kit_routes,
    fuzz_provider,
    fuzz_provider_hostile,
    fuzz_token_endpoint,
    fuzz_webhook,
    nested,
    to_bytes,
    valid_notification,
)
from tests.helpers import KitClient, short_failure
from tests.provider.helpers import ProviderClient
from webhook_kit.endpoint.service import Endpoint

# Fuzzing: hundreds of generated cases per surface against live servers.
pytestmark = pytest.mark.slow

SCALE = int(os.environ.get("WEBHOOK_KIT_FUZZ_EXAMPLES", "150"))


def alive(client: KitClient) -> bool:
    return client.http.get(client.sink.urls.base + "/_kit/health", timeout=10).status_code == 200


def tally() -> Tally:
    return Tally(strict=True, derandomize=True)


@short_failure
def test_webhook_route_never_5xx(start_endpoint: Any) -> None:
    """Hostile bodies and headers, each followed by a read of the newest records; the live
    stream (what the inspector page parses) carries strict JSON throughout."""
    sink: Endpoint = start_endpoint()
    kit = KitClient(sink)
    with StreamWatch(kit.http, sink.urls.base + "/_kit/stream") as stream:
        cases = fuzz_webhook(kit.http, sink.urls.base, sink.info.url, kit.token(), SCALE, tally())
    assert cases >= SCALE // 2
    assert stream.events > 0, stream.error
    assert stream.invalid == [], stream.invalid[:3]
    assert alive(kit)


@short_failure
def test_token_endpoint_never_5xx(start_endpoint: Any) -> None:
    sink: Endpoint = start_endpoint()
    kit = KitClient(sink)
    info = sink.info
    cases = fuzz_token_endpoint(
        kit.http, info.token_url, info.client_id, info.client_secret, SCALE, tally()
    )
    assert cases >= SCALE // 2
    assert alive(kit)


@short_failure
def test_kit_routes_never_5xx(start_endpoint: Any) -> None:
    sink: Endpoint = start_endpoint()
    kit = KitClient(sink)
    assert fuzz_kit_routes(kit.http, sink.urls.base, SCALE, tally()) >= SCALE // 2
    assert alive(kit)


def _provider(start_endpoint: Any, start_provider: Any) -> tuple[Endpoint, ProviderClient, str]:
    sink: Endpoint = start_endpoint()
    api = ProviderClient(start_provider())
    assert api.configure(sink).status_code == 201
    netloc = sink.info.url.split("/")[2]
    return sink, api, netloc


def _provider_alive(api: ProviderClient) -> bool:
    health = api.base.replace("/validas/v1", "/_kit/health")
    return api.http.get(health, timeout=10).status_code == 200


@short_failure
def test_provider_api_never_5xx(start_endpoint: Any, start_provider: Any) -> None:
    _, api, netloc = _provider(start_endpoint, start_provider)
    per_operation = max(5, SCALE // 12)
    cases = fuzz_provider(api.http, api.base, api.provider.apikey, per_operation, tally(), netloc)
    assert cases >= per_operation
    assert _provider_alive(api)


@short_failure
def test_provider_hostile_never_5xx(start_endpoint: Any, start_provider: Any) -> None:
    """Settings, validation, events and multipart uploads with the hostile input classes; after
    each write the settings and the event list still read back."""
    sink, api, netloc = _provider(start_endpoint, start_provider)
    info = sink.info
    good = {
        "url": info.url,
        "auth": {
            "token_url": info.token_url,
            "client_id": info.client_id,
            "client_secret": info.client_secret,
        },
    }
    cases = fuzz_provider_hostile(
        api.http, api.base, api.provider.apikey, netloc, good, SCALE, tally()
    )
    assert cases >= SCALE // 2
    assert _provider_alive(api)


# -- regressions the fuzzers found ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/webhook/settings"),
        ("PUT", "/webhook/settings"),
        ("POST", "/validation"),
        ("PUT", "/validation/{id}/document"),
    ],
)
@pytest.mark.parametrize("kind", ["list", "dict"])
@short_failure
def test_provider_refuses_deep_nesting_with_400(
    start_endpoint: Any, start_provider: Any, method: str, path: str, kind: str
) -> None:
    _, api, _ = _provider(start_endpoint, start_provider)
    path = path.format(id=api.new_validation())
    body = nested(100_000, kind).encode()
    response = api.call(method, path, data=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 400, response.text[:200]
    assert response.json()["error_type"] == "invalid_json"
    assert _provider_alive(api)


@short_failure
def test_serve_console_shows_no_raw_control_characters(tmp_path: Path) -> None:
    """`webhook-kit serve` prints a line per request, fields taken from unauthenticated requests
    included: after the hostile webhook cases, its console holds no raw escape, BEL or NUL."""
    with ServeProcess(tmp_path) as serve:
        http = serve.session()
        token = serve.token(http)
        for n, text in enumerate((*ESCAPES, *MARKUP, *SURROGATES)):
            body = valid_notification("on-course")
            body.update(event_id=f"e{n}{text}", status=f"s{n}{text}")
            for auth in ({}, {"Authorization": f"Bearer {token}"}):
                headers = {"Content-Type": "application/json", **auth}
                http.post(serve.url, data=to_bytes(body), headers=headers, timeout=10)
        cases = fuzz_webhook(http, serve.base, serve.url, token, SCALE, tally())
        http.close()
    output = serve.output()
    assert "\\x1b]52;c;" in output, output[-3000:]  # the fixed cases were printed, escaped
    assert cases >= SCALE // 2
    assert output.count("\n") > SCALE // 2, output[-2000:]  # a line per request was printed
    assert "Traceback" not in output, output[-3000:]
    for char in TERMINAL_CONTROLS:
        assert char not in output, f"raw {char!r} on the console: {output[-1500:]!r}"


@short_failure
def test_serve_reads_back_a_hostile_record_file(tmp_path: Path) -> None:
    """What `serve --record` wrote from hostile requests is read back on the next start: the
    endpoint starts, and every read of the records answers 200."""
    with ServeProcess(tmp_path, "--record", "record.jsonl") as serve:
        http = serve.session()
        token = serve.token(http)
        for n, text in enumerate((*ESCAPES, *MARKUP, *SURROGATES, *HUGE_NUMBERS[:3])):
            body = valid_notification("on-course")
            body.update(event_id=f"e{n}{text}", scores=[{"name": text, "value": Raw(text)}])
            for auth in ({}, {"Authorization": f"Bearer {token}"}):
                headers = {"Content-Type": "application/json", **auth}
                http.post(serve.url, data=to_bytes(body), headers=headers, timeout=10)
        fuzz_webhook(http, serve.base, serve.url, token, SCALE // 2, tally())
        http.close()
    written = (tmp_path / "record.jsonl").read_bytes().count(b"\n")
    assert written > SCALE // 2
    with ServeProcess(tmp_path, "--record", "record.jsonl") as again:
        http = again.session()
        for path in ("/_kit/deliveries", "/_kit/deliveries.jsonl", "/_kit/", "/_kit/index.json"):
            response = http.get(again.base + path, timeout=10)
            assert response.status_code == 200, (
                f"{path}: {response.status_code} {response.text[:200]}"
            )
        assert http.get(again.base + "/_kit/deliveries", timeout=10).json()["count"] > 0
        http.close()
    output = again.output()
    assert "Traceback" not in output, output[-3000:]
    for char in TERMINAL_CONTROLS:
        assert char not in output, f"raw {char!r} on the console: {output[-1500:]!r}"


@pytest.mark.parametrize("limit", ["9" * 5000, "%C2%B2"])
@pytest.mark.parametrize("path", ["/webhook/events", "/webhook/validations?sent=true&"])
@short_failure
def test_provider_refuses_an_odd_limit_with_400(
    start_endpoint: Any, start_provider: Any, path: str, limit: str
) -> None:
    _, api, _ = _provider(start_endpoint, start_provider)
    separator = "" if path.endswith("&") else "?"
    response = api.call("GET", f"{path}{separator}limit={limit}")
    assert response.status_code == 400, response.text[:200]
    assert response.json()["error_type"] == "invalid_parameter"
