"""The validation lifecycle: which change leads to which status. Pure."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Change = Literal["document", "selfie", "video", "cancellation", "confirmation", "delete"]
DOCUMENT_STATUSES = ("document-uploaded", "document2-uploaded", "document3-uploaded")


class LifecycleError(Exception):
    """A change the validation's state does not allow (answered 409)."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message


@dataclass(frozen=True)
class State:
    status: str
    documents: int = 0


def apply(state: State, change: Change) -> State:
    """The state after ``change``; raises :class:`LifecycleError` when it is not allowed.

    Cancelled and confirmed validations take no further change except deletion (data must always
    be removable); a deleted one takes none.
    """
    if state.status == "deleted":
        raise LifecycleError("validation_deleted", "the validation is deleted")
    if change == "delete":
        return State("deleted", state.documents)
    if state.status in ("cancelled", "confirmed"):
        raise LifecycleError(
            "validation_final", f"the validation is {state.status}; only deletion is possible"
        )
    if change == "document":
        if state.documents >= len(DOCUMENT_STATUSES):
            raise LifecycleError("too_many_documents", "a validation takes at most 3 documents")
        return State(DOCUMENT_STATUSES[state.documents], state.documents + 1)
    if change == "selfie":
        return State("selfie-uploaded", state.documents)
    if change == "video":
        return State("video-uploaded", state.documents)
    if change == "cancellation":
        return State("cancelled", state.documents)
    return State("confirmed", state.documents)
