"""webhook-kit: a local HTTPS + OAuth webhook receiver and conformance kit.

Public names are imported lazily, so ``import webhook_kit`` (done by the CLI and the pytest plugin
at start-up) costs almost nothing.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from webhook_kit._version import __version__

if TYPE_CHECKING:
    from webhook_kit.errors import (
        CertificateError,
        ConfigError,
        SchemaError,
        ServerError,
        TokenError,
        TokenFetchError,
        WebhookKitError,
    )
    from webhook_kit.sink.runner import Sink, SinkInfo, running_sink
    from webhook_kit.sink.settings import FaultRule, FaultSettings, SinkSettings
    from webhook_kit.statuses import STATUSES

_LAZY: dict[str, str] = {
    "CertificateError": "webhook_kit.errors",
    "ConfigError": "webhook_kit.errors",
    "FaultRule": "webhook_kit.sink.settings",
    "FaultSettings": "webhook_kit.sink.settings",
    "STATUSES": "webhook_kit.statuses",
    "SchemaError": "webhook_kit.errors",
    "ServerError": "webhook_kit.errors",
    "Sink": "webhook_kit.sink.runner",
    "SinkInfo": "webhook_kit.sink.runner",
    "SinkSettings": "webhook_kit.sink.settings",
    "TokenError": "webhook_kit.errors",
    "TokenFetchError": "webhook_kit.errors",
    "WebhookKitError": "webhook_kit.errors",
    "running_sink": "webhook_kit.sink.runner",
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
