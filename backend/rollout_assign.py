"""Rollout arms and assignments: created with K arms, each device's arm stored when served.

The arm a device gets is a hash of (rollout, device) placed on the arms' cumulative weights
(candidates first, then the baseline, so a two-arm rollout assigns exactly as
``backend.rollout.assign_arm`` always did). It is written to ``rollout_assignments`` the first
time it is served (insert, or keep the row already there), and the stored row is what the
analysis reads: never the arm or version a workstation reports.

A paused rollout serves the baseline to every device and records no new assignments.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.db import Rollout, RolloutArm, RolloutAssignment, RolloutEvent, utcnow
from backend.db_lock import sqlite_write_lock
from core.sync.wire import Assignment

BASELINE = "baseline"
ACTIVE, PAUSED = "active", "paused"
OPEN_STATUSES = (ACTIVE, PAUSED)


class RolloutError(Exception):
    """A rollout request that cannot be honoured; the message names the rollout and why."""


@dataclass(frozen=True)
class Arm:
    name: str
    version: str
    weight: float
    position: int


def unit_hash(device_id: str, rollout_id: int) -> float:
    """(rollout, device) to [0, 1): stable for a device, independent across rollouts."""
    digest = hashlib.sha256(f"{rollout_id}:{device_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def pick_arm(device_id: str, rollout_id: int, arms: list[Arm]) -> str:
    """The arm whose slice of [0, 1) holds the device's hash; candidates first."""
    u = unit_hash(device_id, rollout_id)
    total = sum(a.weight for a in arms)
    edge = 0.0
    ordered = sorted(arms, key=lambda a: (a.position == 0, a.position))
    for arm in ordered:
        edge += arm.weight / total
        if u < edge:
            return arm.name
    return ordered[-1].name


def arms_of(session: Session, ro: Rollout) -> list[Arm]:
    """The rollout's arms in position order (the baseline first)."""
    rows = session.scalars(
        select(RolloutArm).where(RolloutArm.rollout_id == ro.id).order_by(RolloutArm.position)
    ).all()
    if rows:
        return [Arm(r.name, r.version, r.weight, r.position) for r in rows]
    return [  # a rollout without arm rows (not possible after revision 0003; kept for safety)
        Arm(BASELINE, ro.baseline_version, 1.0 - ro.split, 0),
        Arm("candidate", ro.candidate_version, ro.split, 1),
    ]


def candidate_names(n: int) -> list[str]:
    """``candidate`` for one, ``candidate-1`` ... ``candidate-n`` for several."""
    return ["candidate"] if n == 1 else [f"candidate-{i}" for i in range(1, n + 1)]


def record_event(
    session: Session, rollout_id: int, kind: str, detail: dict[str, Any], actor: str = ""
) -> None:
    session.add(RolloutEvent(rollout_id=rollout_id, kind=kind, actor=actor, detail=detail))


def add_arms(
    session: Session,
    ro: Rollout,
    baseline: str,
    candidates: list[tuple[str, float]],
) -> list[Arm]:
    """Validate and store the arms: the baseline takes what the candidates leave."""
    if not candidates:
        raise RolloutError("a rollout needs at least one candidate version")
    versions = [baseline, *(v for v, _w in candidates)]
    if len(set(versions)) != len(versions):
        raise RolloutError(f"rollout arms must run different versions, got {versions}")
    weights = [w for _v, w in candidates]
    if any(not 0.0 <= w <= 1.0 for w in weights) or sum(weights) > 1.0 + 1e-9:
        raise RolloutError(f"candidate shares {weights} must each lie in 0..1 and sum to <= 1")
    arms = [Arm(BASELINE, baseline, max(0.0, 1.0 - sum(weights)), 0)]
    for i, (name, (version, w)) in enumerate(
        zip(candidate_names(len(candidates)), candidates, strict=True), start=1
    ):
        arms.append(Arm(name, version, w, i))
    for a in arms:
        session.add(
            RolloutArm(
                rollout_id=ro.id,
                name=a.name,
                version=a.version,
                weight=a.weight,
                position=a.position,
            )
        )
    return arms


def _store(session: Session, rollout_id: int, device_id: str, arm: str) -> str:
    """Insert the assignment unless one exists; the stored arm wins either way."""
    dialect = session.get_bind().dialect.name
    values = {"rollout_id": rollout_id, "device_id": device_id, "arm": arm, "assigned_at": utcnow()}
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        session.execute(pg_insert(RolloutAssignment).values(**values).on_conflict_do_nothing())
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        session.execute(sqlite_insert(RolloutAssignment).values(**values).on_conflict_do_nothing())
    elif session.get(RolloutAssignment, (rollout_id, device_id)) is None:
        session.add(RolloutAssignment(**values))
        session.flush()
    stored = session.scalar(
        select(RolloutAssignment.arm).where(
            RolloutAssignment.rollout_id == rollout_id,
            RolloutAssignment.device_id == device_id,
        )
    )
    return str(stored)


def assignments_for(session: Session, device_id: str) -> list[tuple[Assignment, str]]:
    """Every open rollout's assignment for this device, with the stored arm's name.

    The wire's ``arm`` says baseline or candidate; ``version`` says which candidate (K arms).
    Commits the new assignment rows."""
    out: list[tuple[Assignment, str]] = []
    rollouts = session.scalars(
        select(Rollout).where(Rollout.status.in_(OPEN_STATUSES)).order_by(Rollout.id)
    ).all()
    for ro in rollouts:
        arms = arms_of(session, ro)
        by_name = {a.name: a for a in arms}
        base = by_name[BASELINE]
        if ro.status == PAUSED:
            name = BASELINE
        else:
            name = _store(session, ro.id, device_id, pick_arm(device_id, ro.id, arms))
        arm = by_name.get(name, base)
        if arm.name == BASELINE:
            shown, shadow = base.version, None
        elif ro.shadow:
            shown, shadow = base.version, arm.version
        else:
            shown, shadow = arm.version, None
        wire_arm: Literal["baseline", "candidate"] = (
            "baseline" if arm.name == BASELINE else "candidate"
        )
        out.append(
            (
                Assignment(
                    rollout_id=ro.id,
                    model_id=ro.model_id,
                    arm=wire_arm,
                    version=shown,
                    shadow_version=shadow,
                ),
                arm.name,
            )
        )
    session.commit()
    return out


def lock_rollout(session: Session, rollout_id: int) -> Rollout | None:
    """The rollout's row locked until the transaction ends, its status re-read from the database.

    Everything that changes a rollout's status or records a look takes this lock first, before
    the channel's TUF target row and the signing lock: one lock order everywhere, so an admin's
    promote and a guardrail rollback wait for each other instead of deadlocking, and the one
    that comes second sees the first one's status. ``FOR NO KEY UPDATE``: assignments and
    events inserted meanwhile (key-share locks) do not wait."""
    sqlite_write_lock(session, Rollout)
    return session.get(
        Rollout, rollout_id, with_for_update={"key_share": True}, populate_existing=True
    )


def pause(session: Session, ro: Rollout, actor: str, reason: dict[str, Any]) -> None:
    """Baseline for everyone from now on; the analysis window ends here. Not committed.

    ``ro`` must come from :func:`lock_rollout` in this transaction."""
    if ro.status != ACTIVE:
        raise RolloutError(f"rollout {ro.id} is {ro.status}, not active: cannot pause it")
    ro.status, ro.paused_at = PAUSED, utcnow()
    record_event(session, ro.id, "paused", reason, actor)
