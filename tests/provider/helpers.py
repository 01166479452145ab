"""The provider API client lives in ``harnesses.clients``, shared with ``scripts/``."""

from __future__ import annotations

from harnesses.clients import ProviderClient as ProviderClient
