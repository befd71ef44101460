"""What the backend receives about one AI result (its ResultItem): no patient data."""

from __future__ import annotations

from typing import Any


def result_item(result: dict[str, Any], decision: str) -> dict[str, Any]:
    """Model, verdict, latency and findings of an ``InferenceResult.to_json()``; shown results
    (core.results.store) and shadow runs (core.inference.shadow) both go upstream in this form."""
    prov = result.get("provenance", {})
    return {
        "client_id": result["result_id"],
        "created_at": prov.get("created_at"),
        "model_id": result["model"]["id"],
        "model_version": result["model"]["version"],
        "decision": decision if decision in ("accepted", "rejected") else "none",
        "latency_ms": float(sum(prov.get("timings_ms", {}).values())),
        "summary": {"labels": result.get("labels"), "decisions": result.get("decisions")},
    }
