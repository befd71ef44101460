"""Model rollouts: stable per-workstation arm assignment and the statistics of the report."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np

SIGNIFICANCE_LEVEL = 0.05


def assign_arm(device_id: str, rollout_id: int, split: float) -> str:
    """Hash (rollout, device) to [0, 1): stable for a device, independent across rollouts."""
    digest = hashlib.sha256(f"{rollout_id}:{device_id}".encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2**64
    return "candidate" if u < split else "baseline"


@dataclass(frozen=True)
class ArmStats:
    arm: str
    version: str
    n_results: int
    n_decided: int
    n_accepted: int
    acceptance_rate: float | None
    ci_low: float | None
    ci_high: float | None
    latency_p50_ms: float | None
    latency_p95_ms: float | None


def arm_stats(arm: str, version: str, decisions: list[str], latencies: list[float]) -> ArmStats:
    """Acceptance among decided results with a 95% Wilson interval; latency percentiles."""
    from scipy.stats import binomtest

    decided = [d for d in decisions if d in ("accepted", "rejected")]
    k = sum(1 for d in decided if d == "accepted")
    rate = ci_low = ci_high = None
    if decided:
        rate = k / len(decided)
        ci = binomtest(k, len(decided)).proportion_ci(0.95, method="wilson")
        ci_low, ci_high = float(ci.low), float(ci.high)
    p50 = p95 = None
    if latencies:
        p50, p95 = (float(v) for v in np.percentile(np.asarray(latencies), [50, 95]))
    return ArmStats(arm, version, len(decisions), len(decided), k, rate, ci_low, ci_high, p50, p95)


def agreement(flags: list[bool]) -> dict[str, Any]:
    """Shadow mode: how often the candidate's findings matched the shown model's (95% Wilson
    interval). A shadow result has no verdict of its own, so this replaces acceptance."""
    from scipy.stats import binomtest

    n, k = len(flags), sum(flags)
    if n == 0:
        return {"n": 0, "agreed": 0, "rate": None, "ci_low": None, "ci_high": None}
    ci = binomtest(k, n).proportion_ci(0.95, method="wilson")
    return {"n": n, "agreed": k, "rate": k / n, "ci_low": float(ci.low), "ci_high": float(ci.high)}


def compare(a: ArmStats, b: ArmStats, lat_a: list[float], lat_b: list[float]) -> dict[str, Any]:
    """Acceptance: Fisher's exact test for small counts, else chi-square; latency: Mann-Whitney."""
    from scipy.stats import chi2_contingency, fisher_exact, mannwhitneyu

    out: dict[str, Any] = {"alpha": SIGNIFICANCE_LEVEL}
    table = [
        [a.n_accepted, a.n_decided - a.n_accepted],
        [b.n_accepted, b.n_decided - b.n_accepted],
    ]
    if a.n_decided == 0 or b.n_decided == 0:
        out["acceptance"] = {
            "test": None,
            "p_value": None,
            "significant": False,
            "reason": "an arm has no accepted/rejected results yet",
        }
    else:
        expected_min = min(
            (sum(row) * sum(col)) / (a.n_decided + b.n_decided)
            for row in table
            for col in zip(*table, strict=True)
        )
        if expected_min < 5:
            test, p = "fisher_exact", float(fisher_exact(table).pvalue)
        elif sum(r[0] for r in table) == 0 or sum(r[1] for r in table) == 0:
            test, p = "chi2_contingency", 1.0
        else:
            test, p = "chi2_contingency", float(chi2_contingency(table).pvalue)
        out["acceptance"] = {"test": test, "p_value": p, "significant": p < SIGNIFICANCE_LEVEL}
    if len(lat_a) >= 2 and len(lat_b) >= 2:
        p = float(mannwhitneyu(lat_a, lat_b).pvalue)
        out["latency"] = {
            "test": "mannwhitneyu",
            "p_value": p,
            "significant": p < SIGNIFICANCE_LEVEL,
        }
    else:
        out["latency"] = {"test": None, "p_value": None, "significant": False}
    return out
