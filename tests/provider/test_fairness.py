"""Fair delivery across accounts (issue 13): a slow or dead endpoint delays only its own account.

One real provider (over an SQLite file, then a PostgreSQL schema) delivers for several accounts.
Healthy accounts each have a kit endpoint of their own. The bad ones point at :class:`Receiver`,
a small TLS server of this test's own that can do what the kit's endpoint cannot: hold requests
at a gate for as long as the test wants (a slow endpoint, longer than the test needs) while
counting how many are inside at once, refuse connections on a port until the test opens it (a
dead endpoint that comes back), and issue tokens to several clients, remembering whose each one
is. Every assertion is on state (stored events, the breaker through the provider API, what the
servers received), reached by waiting on conditions with timeouts; none is on timing.

Accounts are added through the storage API before the provider starts: an SQLite file is one
process's at a time. Their settings and validations then go through the provider API, each with
the account's own key.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hmac
import secrets
import socket
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
import requests
from aiohttp import web

from tests.conftest import EndpointFactory
from webhook_kit.provider import apikeys
from webhook_kit.provider.service import Provider
from webhook_kit.storage.url import open_storage
from webhook_kit.tls import CertFiles, ensure_dev_certs, server_context

pytestmark = pytest.mark.slow

T = TypeVar("T")
WAIT = 30.0
#: The provider's delivery timeout: longer than the slow endpoint is held while the test
#: watches it, so that no held request times out (and frees its slot) under the test's eyes.
DELIVERY_TIMEOUT = 20.0
#: How long the test waits for the healthy accounts: inside DELIVERY_TIMEOUT (see above).
HEALTHY_WAIT = 15.0
#: The breaker's default policy (``BreakerPolicy``): its first pause, then twice as long.
FIRST_PAUSE = 5.0


def until(
    check: Callable[[], T | None],
    what: str,
    timeout: float = WAIT,
    show: Callable[[], object] | None = None,
) -> T:
    """Poll ``check`` until it returns something other than None/False; fail after ``timeout``
    (with what ``show`` returns then)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value is not None and value is not False:
            return value
        if time.monotonic() > deadline:
            seen = f"; seen: {show()}" if show is not None else ""
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}{seen}")
        time.sleep(0.05)  # a polling interval: the condition is checked again every turn


@dataclass
class Delivery:
    path: str
    client: str
    event_id: str


@dataclass
class Receiver:
    """A TLS server in a thread of its own: ``/token`` for ``clients``, ``/hook/{name}``.

    ``held`` paths wait at the gate until :meth:`release`; ``refusing`` is a socket bound but not
    listening (connections to it are refused) until :meth:`open_refusing`.
    """

    files: CertFiles
    clients: dict[str, str]
    held: frozenset[str] = frozenset()
    issued: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    owner: dict[str, str] = field(default_factory=dict)
    deliveries: list[Delivery] = field(default_factory=list)
    inside: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    peak: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._gate = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.sock = self._socket()
        self.sock.listen(128)
        self.refusing = self._socket()
        self.base = f"https://127.0.0.1:{self.sock.getsockname()[1]}"
        self.refusing_base = f"https://127.0.0.1:{self.refusing.getsockname()[1]}"
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    @staticmethod
    def _socket() -> socket.socket:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        return sock

    def _app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/token", self._token)
        app.router.add_post("/hook/{name}", self._hook)
        return app

    def _run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=10)

    def start(self) -> None:
        self._thread.start()

        async def serve() -> None:
            self._runner = web.AppRunner(self._app())
            await self._runner.setup()
            await web.SockSite(self._runner, self.sock, ssl_context=self._tls()).start()

        self._run(serve())

    def _tls(self) -> Any:
        return server_context(self.files)

    def open_refusing(self) -> None:
        """The dead endpoint comes up: the same port now listens and answers."""

        async def serve() -> None:
            assert self._runner is not None
            await web.SockSite(self._runner, self.refusing, ssl_context=self._tls()).start()

        self._run(serve())

    def release(self) -> None:
        self._loop.call_soon_threadsafe(self._gate.set)

    def stop(self) -> None:
        self.release()
        if self._runner is not None:
            self._run(self._runner.cleanup())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()
        self.refusing.close()

    def snapshot(self) -> tuple[list[Delivery], dict[str, int], dict[str, int]]:
        with self._lock:
            return list(self.deliveries), dict(self.inside), dict(self.peak)

    async def _token(self, request: web.Request) -> web.Response:
        scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
        client_id, _, secret = (
            base64.b64decode(encoded).decode() if scheme == "Basic" else ""
        ).partition(":")
        expected = self.clients.get(client_id)
        if expected is None or not hmac.compare_digest(secret.encode(), expected.encode()):
            return web.json_response({"error": "invalid_client"}, status=401)
        token = secrets.token_urlsafe(16)
        with self._lock:
            self.issued[client_id].append(token)
            self.owner[token] = client_id
        return web.json_response(
            {"access_token": token, "token_type": "Bearer", "expires_in": 3600}
        )

    async def _hook(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        client = self.owner.get(token)
        if client is None:
            return web.json_response(
                {"error": "invalid_token"}, status=401, headers={"WWW-Authenticate": "Bearer"}
            )
        body = await request.json()
        with self._lock:
            self.inside[name] += 1
            self.peak[name] = max(self.peak[name], self.inside[name])
        try:
            if name in self.held:
                await self._gate.wait()
        finally:
            with self._lock:
                self.inside[name] -= 1
                self.deliveries.append(Delivery(name, client, str(body["event_id"])))
        return web.json_response({"received": True})


@pytest.fixture
def receiver_factory(certs_dir: Path) -> Iterator[Callable[..., Receiver]]:
    files, _ = ensure_dev_certs(certs_dir)
    started: list[Receiver] = []

    def make(clients: dict[str, str], held: frozenset[str] = frozenset()) -> Receiver:
        receiver = Receiver(files, clients, held)
        receiver.start()
        started.append(receiver)
        return receiver

    yield make
    for receiver in started:
        receiver.stop()


class Account:
    """One account's key and a session on the provider API with it."""

    def __init__(self, name: str, key: str) -> None:
        self.name = name
        self.key = key
        self.http = requests.Session()
        self.http.trust_env = False
        self.http.headers["apikey"] = key
        self.base = ""

    def bind(self, provider: Provider) -> None:
        info = provider.info
        self.base = info.base_url
        assert info.ca_file is not None
        self.http.verify = info.ca_file

    def call(self, method: str, path: str, **kw: Any) -> requests.Response:
        kw.setdefault("timeout", 30)
        return self.http.request(method, self.base + path, **kw)

    def configure(self, url: str, token_url: str, client_id: str, secret: str, **more: Any) -> None:
        document = {
            "url": url,
            "auth": {"token_url": token_url, "client_id": client_id, "client_secret": secret},
            **more,
        }
        response = self.call("POST", "/webhook/settings", json=document)
        assert response.status_code == 201, response.text

    def new_validations(self, n: int) -> None:
        for _ in range(n):
            response = self.call("POST", "/validation")
            assert response.status_code == 201, response.text

    def events(self, **query: str) -> list[dict[str, Any]]:
        response = self.call("GET", "/webhook/events", params={"limit": "500", **query})
        assert response.status_code == 200, response.text
        data: list[dict[str, Any]] = response.json()["data"]
        return data

    def breaker(self) -> dict[str, Any]:
        response = self.call("GET", "/webhook/settings")
        assert response.status_code == 200, response.text
        shown: dict[str, Any] = response.json()["data"]["breaker"]
        return shown

    def close(self) -> None:
        self.http.close()


@pytest.fixture
def make_accounts(db_url: str) -> Iterator[Callable[[list[str]], dict[str, Account]]]:
    made: list[Account] = []

    def make(names: list[str]) -> dict[str, Account]:
        keys = {name: apikeys.new_key() for name in names}

        async def add() -> None:
            storage = await open_storage(db_url)
            try:
                for name, key in keys.items():
                    await storage.records.add_account(name, apikeys.key_hash(key), time.time())
            finally:
                await storage.close()

        asyncio.run(add())
        accounts = {name: Account(name, key) for name, key in keys.items()}
        made.extend(accounts.values())
        return accounts

    yield make
    for account in made:
        account.close()


def moment(text: str) -> float:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def test_a_slow_and_a_dead_endpoint_delay_no_one_else(
    db_url: str,
    receiver_factory: Callable[..., Receiver],
    start_endpoint: EndpointFactory,
    start_provider: Callable[..., Provider],
    make_accounts: Callable[[list[str]], dict[str, Account]],
) -> None:
    healthy = [f"healthy-{n}" for n in range(4)]
    accounts = make_accounts([*healthy, "slow", "dead"])
    receiver = receiver_factory(
        {"slow-client": "s3cret-slow", "dead-client": "s3cret-dead"}, held=frozenset({"slow"})
    )
    sinks = {name: start_endpoint() for name in healthy}
    provider = start_provider(db=db_url, timeout=DELIVERY_TIMEOUT)
    for account in accounts.values():
        account.bind(provider)
    slow_cap = 3
    accounts["slow"].configure(
        f"{receiver.base}/hook/slow",
        f"{receiver.base}/token",
        "slow-client",
        "s3cret-slow",
        max_in_flight=slow_cap,
    )
    accounts["dead"].configure(
        f"{receiver.refusing_base}/hook/dead",
        f"{receiver.base}/token",
        "dead-client",
        "s3cret-dead",
    )
    for name, sink in sinks.items():
        info = sink.info
        accounts[name].configure(info.url, info.token_url, info.client_id, info.client_secret)

    # The bad accounts' events are the oldest: a queue in arrival order would serve them first.
    accounts["slow"].new_validations(12)
    accounts["dead"].new_validations(10)
    per_healthy = 6
    for name in healthy:
        accounts[name].new_validations(per_healthy)

    def all_received() -> bool:
        return all(
            len({r.get("event_id") for r in sink.recorder.select(accepted=True)}) == per_healthy
            for sink in sinks.values()
        )

    until(all_received, "every healthy account's events", timeout=HEALTHY_WAIT)
    # Every healthy event is sent, as the store says too, while the slow endpoint is full and
    # its account still has undelivered events (and the dead one all of its own).
    for name in healthy:
        assert accounts[name].events(sent="false") == [], name
    until(lambda: receiver.snapshot()[1].get("slow") == slow_cap, "the slow endpoint to fill up")
    assert len(accounts["slow"].events(sent="false")) >= 12 - slow_cap
    assert len(accounts["dead"].events(sent="false")) == 10
    assert receiver.snapshot()[2]["slow"] == slow_cap

    # Let the slow endpoint answer: its account's events all arrive, never above its cap.
    receiver.release()
    until(lambda: not accounts["slow"].events(sent="false"), "the slow account's events")
    deliveries, _, peak = receiver.snapshot()
    assert peak["slow"] == slow_cap
    slow_ids = [d.event_id for d in deliveries if d.path == "slow"]
    assert len(set(slow_ids)) == 12
    assert all(d.client == "slow-client" for d in deliveries)


def test_a_dead_endpoint_opens_its_breaker_and_its_events_wait_unspent(
    db_url: str,
    receiver_factory: Callable[..., Receiver],
    start_provider: Callable[..., Provider],
    make_accounts: Callable[[list[str]], dict[str, Account]],
) -> None:
    dead = make_accounts(["dead"])["dead"]
    receiver = receiver_factory({"dead-client": "s3cret-dead"})
    provider = start_provider(db=db_url)
    dead.bind(provider)
    dead.configure(
        f"{receiver.refusing_base}/hook/dead",
        f"{receiver.base}/token",
        "dead-client",
        "s3cret-dead",
    )
    total = 30
    dead.new_validations(total)

    opened = until(
        lambda: (b := dead.breaker())["state"] == "open" and b, "the breaker to open", WAIT
    )
    assert "consecutive failures" in opened["reason"], opened
    assert "127.0.0.1" in opened["reason"], opened  # why: the connection was refused
    untried = {e["event_id"] for e in dead.events() if not e["attempts"]}
    assert untried, "every event was tried before the breaker opened"

    # Its pause passes, one probe goes, fails, and the breaker opens again for twice as long.
    def reopened() -> dict[str, Any] | None:
        b = dead.breaker()
        return b if b["state"] == "open" and b["since"] != opened["since"] else None

    def seen() -> str:
        spent = sum(len(e["attempts"]) for e in dead.events() if e["event_id"] in untried)
        return f"breaker {dead.breaker()}, {spent} attempts on the {len(untried)} untried events"

    again = until(
        reopened, "the probe to fail and the breaker to open again", 3 * FIRST_PAUSE, seen
    )
    assert again["reason"].startswith("the probe failed"), again
    assert moment(again["next_probe_at"]) - moment(again["since"]) >= 2 * FIRST_PAUSE - 0.01
    tried_meanwhile = [e for e in dead.events() if e["event_id"] in untried and e["attempts"]]
    # The probe is the only attempt made while the breaker was open: no retry budget spent.
    assert len(tried_meanwhile) <= 1, tried_meanwhile
    assert all(len(e["attempts"]) == 1 for e in tried_meanwhile), tried_meanwhile

    # The endpoint comes back: the next probe closes the breaker and everything is delivered.
    receiver.open_refusing()
    until(
        lambda: dead.breaker()["state"] == "closed" and not dead.events(sent="false"),
        "the breaker to close and every event to be sent",
        4 * FIRST_PAUSE + WAIT,
    )
    closed = dead.breaker()
    assert closed["reason"] == "a delivery succeeded", closed
    delivered = {d.event_id for d in receiver.snapshot()[0] if d.path == "dead"}
    assert len(delivered) == total


TWO_CLIENTS = {"alpha": ("client-alpha", "secret-alpha"), "beta": ("client-beta", "secret-beta")}
PER_ACCOUNT = 5


def two_accounts_on_one_token_endpoint(
    db_url: str,
    receiver_factory: Callable[..., Receiver],
    start_provider: Callable[..., Provider],
    make_accounts: Callable[[list[str]], dict[str, Account]],
) -> tuple[Receiver, dict[str, Account]]:
    """Two accounts with the same webhook and token URLs, told apart only by their client
    credentials; returns once every one of their events has been received."""
    accounts = make_accounts(list(TWO_CLIENTS))
    receiver = receiver_factory(dict(TWO_CLIENTS.values()))
    provider = start_provider(db=db_url)
    for name, account in accounts.items():
        account.bind(provider)
        account.configure(
            f"{receiver.base}/hook/shared", f"{receiver.base}/token", *TWO_CLIENTS[name]
        )
        account.new_validations(PER_ACCOUNT)
    until(lambda: len(receiver.snapshot()[0]) >= 2 * PER_ACCOUNT, "every delivery")
    return receiver, accounts


def test_accounts_with_one_token_endpoint_never_share_a_token(
    db_url: str,
    receiver_factory: Callable[..., Receiver],
    start_provider: Callable[..., Provider],
    make_accounts: Callable[[list[str]], dict[str, Account]],
) -> None:
    receiver, accounts = two_accounts_on_one_token_endpoint(
        db_url, receiver_factory, start_provider, make_accounts
    )
    deliveries = receiver.snapshot()[0]
    assert len(deliveries) == 2 * PER_ACCOUNT
    for name, account in accounts.items():
        client_id = TWO_CLIENTS[name][0]
        own = {e["event_id"] for e in account.events()}
        assert len(own) == PER_ACCOUNT
        # Each of its events came with a token issued to its own client, and to no other.
        assert {d.event_id for d in deliveries if d.client == client_id} == own
    assert set(receiver.issued) == {"client-alpha", "client-beta"}


def test_concurrent_first_deliveries_of_an_account_fetch_one_token(
    db_url: str,
    receiver_factory: Callable[..., Receiver],
    start_provider: Callable[..., Provider],
    make_accounts: Callable[[list[str]], dict[str, Account]],
) -> None:
    receiver, _ = two_accounts_on_one_token_endpoint(
        db_url, receiver_factory, start_provider, make_accounts
    )
    assert {c: len(tokens) for c, tokens in receiver.issued.items()} == {
        "client-alpha": 1,
        "client-beta": 1,
    }
