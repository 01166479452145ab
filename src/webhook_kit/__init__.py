"""webhook-kit: a local HTTPS + OAuth webhook receiver and conformance kit.

Public names are imported lazily, so ``import webhook_kit`` (done by the CLI and the pytest plugin
at start-up) costs almost nothing.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from webhook_kit._version import __version__

if TYPE_CHECKING:
    from webhook_kit.contract.statuses import STATUSES
    from webhook_kit.endpoint.service import Endpoint, EndpointInfo, running_endpoint
    from webhook_kit.endpoint.settings import EndpointSettings, FaultRule, FaultSettings
    from webhook_kit.errors import (
        CertificateError,
        ConfigError,
        SchemaError,
        ServerError,
        TokenError,
        TokenFetchError,
        WebhookKitError,
    )

_LAZY: dict[str, str] = {
    "CertificateError": "webhook_kit.errors",
    "ConfigError": "webhook_kit.errors",
    "FaultRule": "webhook_kit.endpoint.settings",
    "FaultSettings": "webhook_kit.endpoint.settings",
    "STATUSES": "webhook_kit.contract.statuses",
    "SchemaError": "webhook_kit.errors",
    "ServerError": "webhook_kit.errors",
    "Endpoint": "webhook_kit.endpoint.service",
    "EndpointInfo": "webhook_kit.endpoint.service",
    "EndpointSettings": "webhook_kit.endpoint.settings",
    "TokenError": "webhook_kit.errors",
    "TokenFetchError": "webhook_kit.errors",
    "WebhookKitError": "webhook_kit.errors",
    "running_endpoint": "webhook_kit.endpoint.service",
}

__all__ = sorted([*_LAZY, "__version__"])


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'webhook_kit' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
