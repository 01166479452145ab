"""Text from the network or from a user, made safe to print on a terminal or into a report.

Remote text (a token endpoint's ``error``, a redirect's ``Location``, an unauthenticated request's
``event_id``) may carry escape sequences that write to the clipboard (OSC 52), plant hyperlinks
(OSC 8) or draw a fake verdict line, and rich reads ``[...]`` in it as markup. Every such string
goes through :func:`visible` before it is printed, and through :func:`markup_safe` too when rich
renders it. XML 1.0 cannot carry most control characters at all, so :func:`visible` also makes
JUnit output valid.
"""

from __future__ import annotations

import re

# C0 and C1 controls, DEL, lone surrogates, and the bidirectional overrides that reorder what a
# reader sees (CVE-2021-42574, "Trojan Source").
_UNSAFE = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff\u200e\u200f\u202a-\u202e\u2066-\u2069]"
)
_NEWLINES = re.compile("[\n\t]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def visible(text: object, *, keep_newlines: bool = False) -> str:
    """``text`` with every control character shown as an escape (``\\x1b``), never acted on.

    Newlines and tabs are escaped too unless ``keep_newlines``: one remote value must not be able
    to start a new line that looks like the tool's own output.
    """
    out = _UNSAFE.sub(_escape, str(text))
    return out if keep_newlines else _NEWLINES.sub(_escape, out)


def markup_safe(text: object) -> str:
    """``visible(text)`` with rich markup escaped, for strings rich will render."""
    from rich.markup import escape

    return escape(visible(text))
