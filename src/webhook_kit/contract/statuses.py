"""The nine validation statuses (vali-Das v2.40), their order and their score rules."""

from __future__ import annotations

from typing import Final

#: In lifecycle order. Exact spelling is documented; never change it.
STATUSES: Final[tuple[str, ...]] = (
    "on-course",
    "document-uploaded",
    "document2-uploaded",
    "document3-uploaded",
    "selfie-uploaded",
    "video-uploaded",
    "cancelled",
    "confirmed",
    "deleted",
)

#: v2.32 spelled the second document status this way; read it only when asked to.
LEGACY_ALIASES: Final[dict[str, str]] = {"documen2-uploaded": "document2-uploaded"}

#: The score each ``*-uploaded`` status carries; the other statuses carry none.
SCORE_NAMES: Final[dict[str, str]] = {
    "document-uploaded": "Score-DocumentGlobal",
    "document2-uploaded": "Score-DocumentGlobal",
    "document3-uploaded": "Score-DocumentGlobal",
    "selfie-uploaded": "ValidasScoreSelfie",
    "video-uploaded": "ValidasScoreVideo",
}

#: After one of these, a validation takes no further change except deletion.
FINAL_STATUSES: Final[frozenset[str]] = frozenset({"cancelled", "confirmed", "deleted"})


def canonical(status: str) -> str:
    """The v2.40 spelling of ``status`` (legacy aliases mapped, others unchanged)."""
    return LEGACY_ALIASES.get(status, status)
