"""Why a radiologist rejected an AI result: a short fixed list (counted upstream, comparable
across sites) plus free text kept locally (it may name the patient; it never goes upstream)."""

from __future__ import annotations

#: Reason code -> what the window shows. Codes are stable: stored, audited and sent upstream.
REJECT_REASONS: dict[str, str] = {
    "false-positive": "False positive",
    "false-negative": "False negative (finding missed)",
    "wrong-anatomy": "Wrong anatomy or laterality",
    "poor-image-quality": "Poor image quality",
    "out-of-population": "Out of intended population",
    "artefact": "Artefact",
    "other": "Other (say why)",
}


def check_reason(decision: str, reason: str, comment: str) -> str:
    """The reason code to store ("" for none). A reason only goes with a rejection; "other"
    needs the free text that says what it is. ValueError naming the problem otherwise."""
    reason = reason.strip()
    if not reason:
        return ""
    if decision != "rejected":
        raise ValueError(f"a reason ('{reason}') goes with a rejection, not with '{decision}'")
    if reason not in REJECT_REASONS:
        known = ", ".join(REJECT_REASONS)
        raise ValueError(f"unknown reject reason '{reason}' (one of: {known})")
    if reason == "other" and not comment.strip():
        raise ValueError("reject reason 'other' needs a comment saying what it is")
    return reason


def reason_label(reason: str) -> str:
    """The reason as the window shows it (the code itself when it is not in the list)."""
    return REJECT_REASONS.get(reason, reason)
