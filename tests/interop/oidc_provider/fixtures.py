"""pytest fixtures for the oidc-provider tests (a test module names this module in its
``pytest_plugins``): the keys and certificates, the installed stack, two running servers."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.interop.oidc_provider.clients import Pki, make_pki, registrations
from tests.interop.oidc_provider.stack import OidcProviderStack, RunningProvider


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("oidc-pki"))


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> OidcProviderStack:
    return OidcProviderStack(tmp_path_factory.mktemp("oidc-run"), pki.server)


@pytest.fixture(scope="module")
def provider(stack: OidcProviderStack, pki: Pki) -> Iterator[RunningProvider]:
    """oidc-provider with a client per method (shared: tokens are per request)."""
    clients, secrets = registrations(pki)
    with stack.start(clients, secrets=secrets) as running:
        yield running


@pytest.fixture(scope="module")
def nonce_provider(stack: OidcProviderStack, pki: Pki) -> Iterator[RunningProvider]:
    """The token endpoint and the resource route both require their DPoP nonce."""
    clients, secrets = registrations(pki)
    with stack.start(clients, secrets=secrets, require_nonce=True, resource_nonce=True) as running:
        yield running
