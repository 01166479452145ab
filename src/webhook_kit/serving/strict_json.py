"""Strict JSON for what strangers send: every value parsed here can be stored, listed, re-encoded.

A lone UTF-16 surrogate (``"\\ud800"``) is legal JSON syntax but not Unicode: once stored, every
later UTF-8 encoding of it fails, so one request used to break ``GET /_kit/deliveries`` until it
was cleared. ``1e400`` parses to infinity, which JSON cannot carry back out. Deep nesting exhausts
the stdlib parser's recursion (a 500) or the encoders' later. All three are refused here, with a
message that says which.
"""

from __future__ import annotations

import json
import math
from typing import Any

import orjson

#: Nesting deeper than this is refused; a notification is three levels deep.
MAX_DEPTH = 64


class PayloadError(ValueError):
    """The body is not JSON the kit will keep; the message says why."""


def _refuse_constant(name: str) -> object:
    raise PayloadError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise PayloadError(f"number {text[:40]} is out of range")
    return value


def parse_json(body: bytes, *, lone_surrogates: bool = False) -> Any:
    """Strict JSON (UTF-8, finite numbers, real Unicode, at most MAX_DEPTH levels).

    orjson first; the stdlib only for what orjson refuses, so its message can say where.
    Raises :class:`PayloadError` (a ``ValueError``). ``lone_surrogates=True`` keeps them in
    strings, for a caller that refuses them itself and names the field (the provider's 422).
    """
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        value = _parse_stdlib(body)
    else:
        # orjson refuses lone surrogates and infinities itself; only its depth limit (1024) is
        # looser than ours, and a body with few brackets cannot be deep.
        if body.count(b"[") + body.count(b"{") <= MAX_DEPTH:
            return value
    check_value(value, text=not lone_surrogates)
    return value


def _parse_stdlib(body: bytes) -> Any:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PayloadError(f"body is not UTF-8 ({exc.reason} at byte {exc.start})") from exc
    try:
        return json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except RecursionError as exc:
        raise PayloadError(f"JSON nested deeper than {MAX_DEPTH} levels") from exc
    except PayloadError:
        raise
    except ValueError as exc:  # JSONDecodeError, and int() beyond its digit limit
        raise PayloadError(str(exc)) from exc


def check_value(value: Any, *, text: bool = True) -> None:
    """Raise :class:`PayloadError` for nesting beyond MAX_DEPTH or (``text``) a lone surrogate
    anywhere."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            if text:
                _check_text(item)
        elif isinstance(item, dict | list):
            if depth > MAX_DEPTH:
                raise PayloadError(f"JSON nested deeper than {MAX_DEPTH} levels")
            if isinstance(item, dict):
                for key, child in item.items():
                    if text:
                        _check_text(key)
                    stack.append((child, depth + 1))
            else:
                stack.extend((child, depth + 1) for child in item)
        elif isinstance(item, float) and not math.isfinite(item):
            raise PayloadError("number out of range")


def _check_text(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        code = ord(text[exc.start])
        raise PayloadError(
            f"string contains a lone UTF-16 surrogate (\\u{code:04x}), which is not Unicode"
        ) from exc
