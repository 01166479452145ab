from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import KitClient
from webhook_kit.endpoint.service import Endpoint, running_endpoint
from webhook_kit.endpoint.settings import EndpointSettings
from webhook_kit.oauth.issuer import TokenSettings
from webhook_kit.tls import ensure_dev_certs

SERVERS = ["uvicorn", "hypercorn"]


@pytest.fixture(scope="session")
def certs_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One trustme CA and leaf for the whole run."""
    directory = tmp_path_factory.mktemp("certs")
    ensure_dev_certs(directory)
    return directory


EndpointFactory = Callable[..., Endpoint]


@pytest.fixture
def start_endpoint(certs_dir: Path) -> Iterator[EndpointFactory]:
    """Start real endpoints (TLS, ephemeral port, background thread); all stop at test end."""
    with contextlib.ExitStack() as stack:

        def start(**options: Any) -> Endpoint:
            options.setdefault("port", 0)
            options.setdefault("certs_dir", certs_dir)
            # Token options (audience, scopes, token_ttl) go into the composed TokenSettings.
            tokens: dict[str, Any] = {
                k: options.pop(k) for k in ("audience", "scopes") if k in options
            }
            if "token_ttl" in options:
                tokens["ttl"] = options.pop("token_ttl")
            settings = EndpointSettings(**options, tokens=TokenSettings(**tokens))
            return stack.enter_context(running_endpoint(settings))

        yield start


@pytest.fixture(scope="module", params=SERVERS)
def shared_endpoint(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Endpoint]:
    """One endpoint per server kind, shared by a module's read-only tests."""
    directory = tmp_path_factory.mktemp("shared-certs")
    settings = EndpointSettings(port=0, server=request.param, certs_dir=directory)
    with running_endpoint(settings) as sink:
        yield sink


@pytest.fixture
def client(shared_endpoint: Endpoint) -> Iterator[KitClient]:
    """A client of the shared endpoint; its connections close before the endpoint stops."""
    kit = KitClient(shared_endpoint)
    yield kit
    kit.close()


@pytest.fixture
def start_provider(certs_dir: Path) -> Iterator[Callable[..., Any]]:
    """Start real providers (TLS, ephemeral port, in-memory store unless told otherwise)."""
    from webhook_kit.delivery.dispatcher import DispatcherSettings
    from webhook_kit.delivery.guard import policy_of
    from webhook_kit.provider.service import ProviderSettings, running_provider

    delivery_keys = ("concurrency", "timeout", "ca_file", "policy")

    with contextlib.ExitStack() as stack:

        def start(**options: Any) -> Any:
            """Provider options, plus the delivery ones (``timeout``, ``policy``, ...) and
            ``public_only``/``allow_private``, which go into its DispatcherSettings."""
            options.setdefault("port", 0)
            options.setdefault("db", ":memory:")
            options.setdefault("certs_dir", certs_dir)
            options.setdefault("ca_file", certs_dir / "ca.pem")
            delivery = {k: options.pop(k) for k in delivery_keys if k in options}
            delivery["address_policy"] = policy_of(
                public_only=options.pop("public_only", False),
                allow_private=options.pop("allow_private", False),
            )
            settings = ProviderSettings(**options, delivery=DispatcherSettings(**delivery))
            return stack.enter_context(running_provider(settings))

        yield start


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A real PostgreSQL database URL with a schema of this test's own, dropped afterwards."""
    from tests import postgres

    server = postgres.server_url()
    schema = postgres.new_schema()
    yield postgres.with_schema(server, schema)
    postgres.drop_schema(server, schema)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each backend in turn: an SQLite file, then a PostgreSQL schema of the test's own."""
    if request.param == "sqlite":
        return str(tmp_path / "kit.db")
    return str(request.getfixturevalue("postgres_url"))
