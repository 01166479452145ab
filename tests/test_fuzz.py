"""Property-based and schema-driven fuzzing of every surface (a few hundred cases in CI).

``scripts/fuzz.py`` runs the same with 10,000 cases per surface.
"""

from __future__ import annotations

import os
from typing import Any

from tests.fuzz_surfaces import fuzz_provider, fuzz_token_endpoint, fuzz_webhook
from tests.helpers import KitClient
from tests.provider.helpers import ProviderClient
from webhook_kit.sink.runner import Sink

SCALE = int(os.environ.get("WEBHOOK_KIT_FUZZ_EXAMPLES", "150"))


def alive(client: KitClient) -> bool:
    return client.http.get(client.sink.urls.base + "/_kit/health", timeout=10).status_code == 200


def test_webhook_route_never_5xx(start_sink: Any) -> None:
    sink: Sink = start_sink()
    kit = KitClient(sink)
    assert fuzz_webhook(kit.http, sink.info.url, kit.token(), SCALE) >= SCALE // 2
    assert alive(kit)


def test_token_endpoint_never_5xx(start_sink: Any) -> None:
    sink: Sink = start_sink()
    kit = KitClient(sink)
    info = sink.info
    assert (
        fuzz_token_endpoint(kit.http, info.token_url, info.client_id, info.client_secret, SCALE)
        >= SCALE // 2
    )
    assert alive(kit)


def test_provider_api_never_5xx(start_sink: Any, start_provider: Any) -> None:
    sink: Sink = start_sink()
    api = ProviderClient(start_provider())
    api.configure(sink)
    per_operation = max(5, SCALE // 12)
    assert fuzz_provider(api.http, api.base, api.provider.apikey, per_operation) >= per_operation
    assert (
        api.http.get(api.base.replace("/validas/v1", "/_kit/health"), timeout=10).status_code == 200
    )
