"""What the backend receives about one AI result (its ResultItem): no patient data."""

from __future__ import annotations

from typing import Any


def result_item(
    result: dict[str, Any],
    decision: str = "none",
    decided_at: str | None = None,
    sequence: int = 0,
    reason: str = "",
) -> dict[str, Any]:
    """Model, verdict, latency and findings of an ``InferenceResult.to_json()``.

        A shown result goes up when it is made (decision "none"); each accept or reject follows as
        the same ``client_id`` with its ``decided_at``, so the backend keeps the latest verdict and
        the history (core.app.results). A decision's ``summary`` also carries ``decision_seq`` (its
    place among the result's accepts and rejects: ties in time are ordered by it) and a
    rejection's ``reason`` code; the free text never goes up (it may name the patient). Shadow
    runs (core.inference.shadow) use the same form."""
    prov = result.get("provenance", {})
    item = {
        "client_id": result["result_id"],
        "created_at": prov.get("created_at"),
        "model_id": result["model"]["id"],
        "model_version": result["model"]["version"],
        "decision": decision if decision in ("accepted", "rejected") else "none",
        "latency_ms": float(sum(prov.get("timings_ms", {}).values())),
        "summary": {"labels": result.get("labels"), "decisions": result.get("decisions")},
    }
    if decided_at is not None:
        item["decided_at"] = decided_at
    if sequence:
        item["summary"]["decision_seq"] = sequence
    if reason:
        item["summary"]["reason"] = reason
    return item
