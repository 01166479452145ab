"""Two accounts on one provider: every API route, driven by one against the other's objects.

Accounts A and B (and C, whose key is revoked) are made with ``webhook-kit accounts`` before the
provider starts: an SQLite file is one process's at a time, so the CLI (in this process, through
``CliRunner``) opens it, adds the accounts and closes it, and then the provider takes it. On
PostgreSQL the same order is kept so that both backends run the same test; the key rotation
test, which needs the CLI while the provider runs, is PostgreSQL only.

B attacks every route listed by ``ProviderApi.routes()``: a route added without an entry in
:data:`ATTACKS` fails :func:`test_every_route_has_an_isolation_check`. B's answer for A's object
must be exactly the answer for an object that never existed, and nothing of A (ids, name, key,
URLs, client id or secret) may appear in any of B's answers. A's objects are compared before and
after the attacks.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, cast

import pytest
import requests
from click.testing import CliRunner
from prometheus_client.parser import text_string_to_metric_families

from tests.provider.helpers import ProviderClient
from webhook_kit.cli import main
from webhook_kit.endpoint.service import Endpoint
from webhook_kit.provider.app import ProviderApi
from webhook_kit.provider.validations_api import CHANGE_ROUTES

pytestmark = pytest.mark.slow

WAIT = 60.0


def cli(*args: str) -> Any:
    """``webhook-kit accounts ...`` in this process; the result of ``CliRunner.invoke``."""
    return CliRunner().invoke(main, ["accounts", *args], catch_exceptions=False)


def add_account(db: str, name: str) -> dict[str, str]:
    result = cli("add", name, "--db", db, "--json")
    assert result.exit_code == 0, result.output
    created: dict[str, str] = json.loads(result.stdout)
    return created


def wait_for(check: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)  # a polling interval: the condition is re-checked every turn


class Caller:
    """A session on the provider API with one apikey (or none)."""

    def __init__(self, api: ProviderClient, key: str | None) -> None:
        self.api = api
        self.http = requests.Session()
        self.http.trust_env = False
        self.http.verify = api.http.verify
        if key is not None:
            self.http.headers["apikey"] = key
        self.answers: list[str] = []

    def call(self, method: str, path: str, **kw: Any) -> requests.Response:
        kw.setdefault("timeout", 30)
        response = self.http.request(method, self.api.base + path, **kw)
        self.answers.append(f"{response.status_code} {dict(response.headers)} {response.text}")
        return response

    def close(self) -> None:
        self.http.close()


def settings_of(sink: Endpoint) -> dict[str, Any]:
    info = sink.info
    return {
        "url": info.url,
        "auth": {
            "token_url": info.token_url,
            "client_id": info.client_id,
            "client_secret": info.client_secret,
        },
    }


def upload(change: str) -> dict[str, Any]:
    fields = {"document": "documentImage", "selfie": "image", "video": "video"}
    if change in fields:
        return {"files": {fields[change]: ("f.jpg", b"\xff\xd8 image bytes")}}
    return {}


@dataclass
class World:
    provider: Any
    db: str
    a: dict[str, str]
    b: dict[str, str]
    revoked_key: str
    sink_a: Endpoint
    sink_b: Endpoint
    as_a: Caller
    as_b: Caller
    default: ProviderClient
    a_validations: list[str] = field(default_factory=list)
    a_events: list[str] = field(default_factory=list)

    def secrets_of_a(self) -> list[str]:
        """Everything of A that B must never see."""
        info = self.sink_a.info
        return [
            self.a["id"],
            self.a["name"],
            self.a["apikey"],
            info.url,
            info.token_url,
            info.client_id,
            info.client_secret,
            *self.a_validations,
            *self.a_events,
        ]

    def a_snapshot(self) -> dict[str, Any]:
        """A's objects as A reads them."""
        snap: dict[str, Any] = {"settings": self.as_a.call("GET", "/webhook/settings").json()}
        for vid in self.a_validations:
            snap[vid] = self.as_a.call("GET", f"/validation/{vid}").json()
            snap[vid + "/events"] = self.as_a.call("GET", f"/validation/{vid}/events").json()
        snap["events"] = self.as_a.call("GET", "/webhook/events").json()
        return snap


@pytest.fixture
def world(db_url: str, start_provider: Any, start_endpoint: Any) -> Iterator[World]:
    a = add_account(db_url, "alpha-corp")
    b = add_account(db_url, "beta-corp")
    c = add_account(db_url, "gamma-corp")
    result = cli("revoke-key", "gamma-corp", "--db", db_url)
    assert result.exit_code == 0, result.output
    provider = start_provider(db=db_url)
    default = ProviderClient(provider)
    sink_a, sink_b = start_endpoint(), start_endpoint()
    w = World(
        provider,
        db_url,
        a,
        b,
        c["apikey"],
        sink_a,
        sink_b,
        Caller(default, a["apikey"]),
        Caller(default, b["apikey"]),
        default,
    )
    assert w.as_a.call("POST", "/webhook/settings", json=settings_of(sink_a)).status_code == 201
    assert w.as_b.call("POST", "/webhook/settings", json=settings_of(sink_b)).status_code == 201
    # A: two validations, one driven on (three events in all); B: one of its own.
    for _ in range(2):
        created = w.as_a.call("POST", "/validation")
        assert created.status_code == 201, created.text
        w.a_validations.append(created.json()["data"]["id"])
        w.a_events.append(created.json()["data"]["event_id"])
    moved = w.as_a.call("PUT", f"/validation/{w.a_validations[0]}/selfie", **upload("selfie"))
    assert moved.status_code == 200, moved.text
    w.a_events.append(moved.json()["data"]["event_id"])
    assert w.as_b.call("POST", "/validation").status_code == 201

    def a_all_sent() -> bool:
        data = w.as_a.call("GET", "/webhook/events").json()["data"]
        return len(data) == 3 and all(e["state"] == "sent" for e in data)

    wait_for(a_all_sent, "A's three events to be delivered")
    yield w
    w.as_a.close()
    w.as_b.close()
    default.http.close()


def same_as_missing(w: World, method: str, template: str, a_id: str, **kw: Any) -> None:
    """B's answer for A's object is exactly its answer for an object that never existed."""
    missing = "00000000-0000-4000-8000-" + secrets.token_hex(6)
    theirs = w.as_b.call(method, template.format(id=a_id), **kw)
    nothing = w.as_b.call(method, template.format(id=missing), **kw)
    assert theirs.status_code == 404, (method, template, theirs.text)
    assert nothing.status_code == 404
    assert theirs.text.replace(a_id, "<id>") == nothing.text.replace(missing, "<id>")


def no_data_of_a(w: World, response: requests.Response) -> None:
    text = response.text
    for secret in w.secrets_of_a():
        assert secret not in text, f"{response.request.method} {response.url} shows {secret!r}"


# Each attack: B against A's objects, for one (method, path) of ProviderApi.routes().
Attack = Callable[[World], None]


def attack_create_settings(w: World) -> None:
    # B may only write its own settings: A's stay as they were (checked by the snapshot).
    response = w.as_b.call("POST", "/webhook/settings", json=settings_of(w.sink_b))
    assert response.status_code == 201
    no_data_of_a(w, response)


def attack_read_settings(w: World) -> None:
    response = w.as_b.call("GET", "/webhook/settings")
    assert response.status_code == 200
    assert response.json()["data"]["url"] == w.sink_b.info.url
    no_data_of_a(w, response)


def attack_update_settings(w: World) -> None:
    document = settings_of(w.sink_b)
    document["enabled"] = True
    response = w.as_b.call("PUT", "/webhook/settings", json=document)
    assert response.status_code == 200
    no_data_of_a(w, response)


def attack_delete_settings(w: World) -> None:
    assert w.as_b.call("DELETE", "/webhook/settings").status_code == 204
    # B's settings are gone, A's not: B then reads 404 while A still reads its own.
    response = w.as_b.call("GET", "/webhook/settings")
    assert response.status_code == 404
    no_data_of_a(w, response)
    assert w.as_a.call("GET", "/webhook/settings").status_code == 200
    assert w.as_b.call("POST", "/webhook/settings", json=settings_of(w.sink_b)).status_code == 201


def attack_test(w: World) -> None:
    received_a = w.sink_a.recorder.count()
    response = w.as_b.call("POST", "/webhook/test")
    assert response.status_code == 200, response.text
    no_data_of_a(w, response)
    # B's test went to B's endpoint, never to A's.
    assert w.sink_a.recorder.count() == received_a


def attack_list_events(w: World) -> None:
    for query in ("", f"?validation_id={w.a_validations[0]}", "?sent=true", "?sent=false"):
        response = w.as_b.call("GET", "/webhook/events" + query)
        assert response.status_code == 200, response.text
        no_data_of_a(w, response)
        ids = {e["event_id"] for e in response.json()["data"]}
        assert not ids & set(w.a_events)
    response = w.as_b.call("GET", f"/webhook/events?validation_id={w.a_validations[0]}")
    assert response.json()["data"] == []


def attack_redeliver_failed(w: World) -> None:
    for query in ("", f"?validation_id={w.a_validations[0]}"):
        response = w.as_b.call("POST", "/webhook/events/redelivery" + query)
        assert response.status_code == 202, response.text
        assert response.json()["data"] == {"redelivered": 0, "event_ids": []}


def attack_get_event(w: World) -> None:
    for event_id in w.a_events:
        same_as_missing(w, "GET", "/webhook/events/{id}", event_id)


def attack_redeliver_event(w: World) -> None:
    for event_id in w.a_events:
        same_as_missing(w, "POST", "/webhook/events/{id}/redelivery", event_id)


def attack_validations(w: World) -> None:
    for sent in ("true", "false"):
        response = w.as_b.call("GET", f"/webhook/validations?sent={sent}")
        assert response.status_code == 200, response.text
        no_data_of_a(w, response)


def attack_create_validation(w: World) -> None:
    response = w.as_b.call("POST", "/validation")
    assert response.status_code == 201
    no_data_of_a(w, response)


def attack_get_validation(w: World) -> None:
    for vid in w.a_validations:
        same_as_missing(w, "GET", "/validation/{id}", vid)


def attack_delete_validation(w: World) -> None:
    for vid in w.a_validations:
        same_as_missing(w, "DELETE", "/validation/{id}", vid)


def attack_validation_events(w: World) -> None:
    for vid in w.a_validations:
        same_as_missing(w, "GET", "/validation/{id}/events", vid)


PRIVATE_JWK_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}


def attack_jwks(w: World) -> None:
    # Public by design (A's authorization server fetches it, with no apikey): public keys only,
    # nothing else of A; an account that does not exist is a 404 naming nothing.
    anonymous = Caller(w.default, None)
    for caller in (w.as_b, anonymous):
        response = caller.call("GET", f"/accounts/{w.a['id']}/jwks.json")
        assert response.status_code in (200, 404), response.text
        if response.status_code == 200:
            for key in response.json()["keys"]:
                assert not PRIVATE_JWK_MEMBERS & set(key), sorted(key)
        no_data_of_a(w, response)
        missing = caller.call("GET", "/accounts/acc_000000000000/jwks.json")
        assert missing.status_code == 404
        no_data_of_a(w, missing)
    anonymous.close()


def attack_change(change: str) -> Attack:
    def attack(w: World) -> None:
        for vid in w.a_validations:
            same_as_missing(w, "PUT", f"/validation/{{id}}/{change}", vid, **upload(change))

    return attack


ATTACKS: dict[tuple[str, str], Attack] = {
    ("GET", "/accounts/{account}/jwks.json"): attack_jwks,
    ("POST", "/webhook/settings"): attack_create_settings,
    ("GET", "/webhook/settings"): attack_read_settings,
    ("PUT", "/webhook/settings"): attack_update_settings,
    ("POST", "/webhook/test"): attack_test,
    ("GET", "/webhook/events"): attack_list_events,
    ("POST", "/webhook/events/redelivery"): attack_redeliver_failed,
    ("GET", "/webhook/events/{event_id}"): attack_get_event,
    ("POST", "/webhook/events/{event_id}/redelivery"): attack_redeliver_event,
    ("GET", "/webhook/validations"): attack_validations,
    ("POST", "/validation"): attack_create_validation,
    ("GET", "/validation/{validation_id}"): attack_get_validation,
    ("DELETE", "/validation/{validation_id}"): attack_delete_validation,
    ("GET", "/validation/{validation_id}/events"): attack_validation_events,
    **{
        ("PUT", f"/validation/{{validation_id}}/{path}"): attack_change(path)
        for path, _ in CHANGE_ROUTES
    },
    # Last: B deletes its own settings (and makes them again).
    ("DELETE", "/webhook/settings"): attack_delete_settings,
}


def api_routes() -> set[tuple[str, str]]:
    """Every (method, path) the provider API serves; building routes touches no store."""
    stub = cast(Any, SimpleNamespace(events=None))
    api = ProviderApi(records=stub, dispatcher=stub, apikey="unused")
    found = set()
    for route in api.routes():
        for method in route.methods or ():
            if method != "HEAD":
                found.add((method, route.path))
    return found


def test_every_route_has_an_isolation_check() -> None:
    routes = api_routes()
    assert len(routes) >= 18
    assert set(ATTACKS) == routes, (
        f"routes without an isolation check: {sorted(routes - set(ATTACKS))}; "
        f"checks of routes that do not exist: {sorted(set(ATTACKS) - routes)}"
    )


def test_b_never_reaches_a(world: World) -> None:
    w = world
    before = w.a_snapshot()
    received_a = w.sink_a.recorder.count()
    for (method, path), attack in ATTACKS.items():
        try:
            attack(w)
        except AssertionError as exc:
            raise AssertionError(f"{method} {path}: {exc}") from exc
    assert w.a_snapshot() == before
    assert w.sink_a.recorder.count() == received_a
    # Nothing of A in any of B's answers but the id B itself asked for (compared above with
    # the answer for an id that never existed).
    asked = set(w.a_validations) | set(w.a_events)
    others = [s for s in w.secrets_of_a() if s not in asked]
    for answer in w.as_b.answers:
        for secret in others:
            assert secret not in answer


def test_keys_default_missing_revoked(world: World) -> None:
    w = world
    for key in (None, "", w.revoked_key, "wk_" + secrets.token_urlsafe(32)):
        caller = Caller(w.default, key)
        response = caller.call("GET", "/webhook/settings")
        caller.close()
        assert response.status_code == 401, key
        assert response.json()["error_type"] == "unauthorized"
    # The provider's own --apikey is the default account: its own (empty) world.
    assert w.default.call("GET", "/webhook/settings").status_code == 404
    created = w.default.call("POST", "/validation")
    assert created.status_code == 201
    vid = created.json()["data"]["id"]
    assert w.default.call("GET", f"/validation/{vid}").status_code == 200
    assert w.as_a.call("GET", f"/validation/{vid}").status_code == 404
    assert w.default.call("GET", f"/validation/{w.a_validations[0]}").status_code == 404


def test_metrics_show_account_ids_only(world: World) -> None:
    w = world
    url = w.provider.info.metrics_url
    http = requests.Session()
    http.trust_env = False
    http.verify = w.default.http.verify
    assert http.get(url, timeout=30).status_code == 401
    wrong = {"Authorization": "Bearer " + w.a["apikey"]}
    assert http.get(url, headers=wrong, timeout=30).status_code == 401
    page = http.get(
        url, headers={"Authorization": f"Bearer {w.provider.info.metrics_token}"}, timeout=30
    )
    http.close()
    assert page.status_code == 200
    text = page.text
    labels: set[str] = set()
    delivered: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if "account" in sample.labels:
                labels.add(sample.labels["account"])
            if sample.name == "webhook_kit_deliveries_total":
                if sample.labels["outcome"] == "success":
                    delivered[sample.labels["account"]] = sample.value
    assert delivered.get(w.a["id"]) == 3
    assert labels <= {w.a["id"], w.b["id"], "default"}, labels
    info_b = w.sink_b.info
    for secret in (
        *w.secrets_of_a()[1:],  # A's id is the one thing that may show
        w.b["name"],
        w.b["apikey"],
        info_b.url,
        info_b.client_secret,
        info_b.token_url,
        w.revoked_key,
        w.provider.info.apikey,
    ):
        assert secret not in text


def test_duplicate_name_is_a_clear_error(world: World) -> None:
    result = cli("add", world.a["name"], "--db", world.db)
    assert result.exit_code == 1
    assert "Traceback" not in result.output and world.a["apikey"] not in result.output
    if world.db.startswith("postgresql"):
        assert "alpha-corp" in result.output  # names the account that exists
    else:
        # The running provider holds the SQLite file: the CLI is refused at start, clearly.
        assert "in use by another webhook-kit process" in result.output


def test_duplicate_name_before_start(tmp_path: Any) -> None:
    db = str(tmp_path / "kit.db")
    add_account(db, "alpha-corp")
    result = cli("add", "alpha-corp", "--db", db)
    assert result.exit_code == 1, result.output
    assert "alpha-corp" in result.output and "Traceback" not in result.output


def test_rotated_key_works_during_grace_only(postgres_url: str, start_provider: Any) -> None:
    a = add_account(postgres_url, "alpha-corp")
    provider = start_provider(db=postgres_url)
    client = ProviderClient(provider)
    old = Caller(client, a["apikey"])
    assert old.call("GET", "/webhook/settings").status_code == 404
    result = cli("rotate-key", "alpha-corp", "--db", postgres_url, "--grace", "4s", "--json")
    assert result.exit_code == 0, result.output
    new = Caller(client, json.loads(result.stdout)["apikey"])
    # Within the grace both keys name A (404: A has no settings; 401 would be a refused key).
    assert old.call("GET", "/webhook/settings").status_code == 404
    assert new.call("GET", "/webhook/settings").status_code == 404
    wait_for(
        lambda: old.call("GET", "/webhook/settings").status_code == 401,
        "the old key to stop after its grace",
    )
    assert new.call("GET", "/webhook/settings").status_code == 404
    # Revoked at once, while the provider runs.
    result = cli("revoke-key", "alpha-corp", "--db", postgres_url)
    assert result.exit_code == 0, result.output
    assert new.call("GET", "/webhook/settings").status_code == 401
    for caller in (old, new):
        caller.close()
    client.http.close()
