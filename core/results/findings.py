"""The images of a run a reviewer must look at: those whose decision passed its threshold,
with their score, and those the out-of-distribution guard flagged. Works on the result's JSON
form (``InferenceResult.to_json()``), the same for the window, the CLI and a stored result."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Finding:
    """Image ``index`` (into the result's inputs) decided ``label`` at ``score`` >= threshold."""

    index: int
    label: str
    score: float
    threshold: float
    ood: str = ""  # the OOD guard's message for this image, "" when not flagged


def ood_images(result: dict[str, Any]) -> dict[int, str]:
    """Image index -> the message of the "ood" guard flag that names it."""
    flagged: dict[int, str] = {}
    for guard in result.get("guards") or []:
        if guard.get("kind") == "ood":
            for i in guard.get("images") or []:
                flagged.setdefault(int(i), str(guard.get("message", "")))
    return flagged


def run_warnings(result: dict[str, Any]) -> list[str]:
    """What the result area must say about the run: each guard flag's message once (the
    intended-population flags and the OOD flag that names its images: the guards write whole
    sentences with the counts). A self-test or verification failure never reaches a result:
    the run is refused instead (core.app.model_runs)."""
    lines: list[str] = []
    for guard in result.get("guards") or []:
        message = str(guard.get("message", ""))
        if message and message not in lines:
            lines.append(message)
    return lines


def positive_findings(result: dict[str, Any]) -> list[Finding]:
    """The images whose decided label has a threshold and reached it, in input order.

    Models that only take the arg-max (no thresholds) have no "over threshold" images."""
    thresholds: dict[str, float] = result.get("thresholds") or {}
    scores: list[dict[str, float]] = result.get("scores") or []
    flagged = ood_images(result)
    found = []
    for i, label in enumerate(result.get("decisions") or []):
        threshold = thresholds.get(label)
        if threshold is None or i >= len(scores):
            continue
        score = float(scores[i].get(label, 0.0))
        if score >= threshold:
            found.append(Finding(i, label, score, float(threshold), flagged.get(i, "")))
    return found
