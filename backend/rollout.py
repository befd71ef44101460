"""Model rollouts: the two-arm assignment of a device (kept for callers of the old API).

The statistics moved: ``backend.rollout_assign`` (K arms, stored assignments),
``backend.rollout_sql`` (device aggregates in SQL), ``backend.rollout_stats`` (device-level
tests, Holm, mSPRT, planning) and ``backend.rollout_monitor`` (report, guardrails).
"""

from __future__ import annotations

from backend.rollout_assign import unit_hash


def assign_arm(device_id: str, rollout_id: int, split: float) -> str:
    """Hash (rollout, device) to [0, 1): stable for a device, independent across rollouts.

    Equal to ``rollout_assign.pick_arm`` for a rollout of one candidate at ``split``."""
    return "candidate" if unit_hash(device_id, rollout_id) < split else "baseline"
