"""Small parsers of user-typed values, shared by the CLI, the pytest plugin's ini keys and the
HTTP APIs' query strings, so that "yes" or "10m" mean the same everywhere. Pure; leaves."""

from __future__ import annotations

import re

_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})
_DURATION = re.compile(r"\s*(\d{1,9}(?:\.\d{1,9})?)\s*([smh]?)\s*", re.ASCII)
_UNIT = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0}


def yes_no(text: str) -> bool | None:
    """``True``/``False`` for the usual spellings (any case), ``None`` for anything else."""
    lowered = text.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    return None


def duration(text: str) -> float | None:
    """Seconds from ``90``, ``90s``, ``10m`` or ``1h`` (ASCII digits only), else ``None``."""
    match = _DURATION.fullmatch(text)
    if match is None:
        return None
    return float(match.group(1)) * _UNIT[match.group(2)]
