"""Keep secrets out of every text that leaves the process: reasons, logs, reports.

A hostile or careless endpoint may echo a secret back in another form than it was sent: the
``Authorization: Basic`` credentials (base64 of ``client_id:secret``, each part form-encoded as
RFC 6749 section 2.3.1 says), the form body of ``client_secret_post`` (URL-encoded), or the secret
inside a JSON string. :func:`scrub` replaces each of those forms too, wherever it starts.
"""

from __future__ import annotations

import base64
import functools
import json
import re
from collections.abc import Iterable
from urllib.parse import quote, quote_plus

REDACTED = "********"
#: Shorter secrets are not scrubbed: replacing a 3-character string would mangle ordinary text.
MIN_SECRET = 4


def scrub(text: str, secrets: Iterable[str | None]) -> str:
    """``text`` with every occurrence of each non-empty secret, in any of the encodings an echo
    may use (URL-encoded, base64 or base64url at any offset, JSON-escaped), replaced."""
    for secret in secrets:
        if not secret or len(secret) < MIN_SECRET:
            continue
        pattern = _pattern(secret)
        if pattern is not None:
            text = pattern.sub(REDACTED, text)
    return text


@functools.lru_cache(maxsize=64)
def _pattern(secret: str) -> re.Pattern[str] | None:
    forms = _forms(secret)
    if not forms:
        return None
    # Longest first, so that a longer encoding is replaced whole rather than in part.
    return re.compile("|".join(_regex(f) for f in sorted(forms, key=len, reverse=True)))


def _regex(form: str) -> str:
    """``form`` as a pattern whose percent-escapes match in either case (%2f is %2F)."""
    return "".join(
        "%" + "".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else c for c in part[1:])
        if _ESCAPE.fullmatch(part)
        else re.escape(part)
        for part in _ESCAPE.split(form)
        if part
    )


_ESCAPE = re.compile(r"(%[0-9A-Fa-f]{2})")


def _forms(secret: str) -> set[str]:
    texts = {
        secret,
        quote(secret, safe=""),
        quote(secret),
        quote_plus(secret),
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
    }
    forms = {t for t in texts if len(t) >= MIN_SECRET}
    for text in texts:
        for core in _base64_cores(text.encode("utf-8", "surrogatepass")):
            forms.add(core)
            forms.add(core.translate(_URLSAFE))
    return forms


_URLSAFE = str.maketrans("+/", "-_")


def _base64_cores(data: bytes) -> list[str]:
    """The base64 characters that encode ``data`` and nothing else, for each of the three
    offsets ``data`` can start at inside a longer encoded string (``client_id:secret``).

    Characters at the edges also carry bits of the neighbours, so they are left out; what is
    left must still be long enough not to match ordinary text by chance.
    """
    cores = []
    for offset in range(3):
        encoded = base64.b64encode(b"\0" * offset + data).decode("ascii")
        start = -(-offset * 8 // 6)  # ceil: the first character with no bit of the prefix
        end = (offset + len(data)) * 8 // 6  # floor: the last character with no bit after
        core = encoded[start:end]
        if len(core) >= 6:
            cores.append(core)
    return cores
