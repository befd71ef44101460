"""A rollout's results aggregated in SQL: one row per (arm, device), never one per result.

Which results count (intention to treat): those of devices with a stored assignment for the
rollout (``rollout_assignments``), for the rollout's model, shown (not shadow; but see
``_runs_counted``), made (``created_at``, the workstation's clock: a result made offline and
synced later still counts in its own period) at or after the device's assignment and before
the rollout closed or paused. Each is counted in the arm the device was ASSIGNED, whatever
version it ran: a device that had not yet installed its candidate still belongs to the
candidate arm, so the comparison stays the randomised one. ``version_mismatch`` says how many
results ran another arm's version.

Latency percentiles per device are ``percentile_cont`` on PostgreSQL (the array form); on
SQLite (no ordered-set aggregates) the same linear interpolation from ``row_number()`` over the
device's sorted latencies. tests/backend/test_rollout_sql.py checks both against numpy on the
same rows.

Speed (PostgreSQL): ``ix_results_report`` (backend.db) holds (model, device, latency) and every
column read here, ``has_error`` included, so the plan is one index-only scan per assigned device,
its rows already in latency order, grouped as they come: no scan of the wide results table, no
sort of the model's results (at 2M results 2.1 s became 0.66 s on this 2-core machine under
load; ``python -m benchmarks rollout_report``). So nothing here may read a column the index does
not hold, and the grouping is by ``results.device_id`` in the index's own collation.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Float, Integer, and_, case, cast, func, literal, or_, select, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session
from sqlalchemy.sql import Select

from backend.db import Result, Rollout, RolloutArm, RolloutAssignment

DECIDED = ("accepted", "rejected")


@dataclass(frozen=True)
class DeviceRow:
    """One device's results in one arm, summed in the database."""

    arm: str
    device_id: str
    n_results: int
    n_decided: int
    n_accepted: int
    n_errors: int
    n_version_mismatch: int
    latency_p50_ms: float | None
    latency_p95_ms: float | None


def window_end(ro: Rollout) -> datetime | None:
    """Results made after this do not count: the rollout closed, or paused (everyone was
    served the baseline from then on, so later results measure nothing)."""
    ends = [t for t in (ro.closed_at, ro.paused_at) if t is not None]
    return min(ends) if ends else None


def _eligible(ro: Rollout, versions: dict[str, str]) -> Select[Any]:
    """(arm, device, decided, accepted, latency, error, version mismatch) of every counted
    result, the flags as 0/1 integers. An error is a result whose summary has a non-null
    ``error`` field (``results.has_error``, computed by the database)."""
    # the arm's version as a CASE over the few arms: a join on the arm name cost 0.7 s at 2M
    whens = [(RolloutAssignment.arm == name, literal(v)) for name, v in versions.items()]
    # no arms (a rollout made before arms existed): a CASE needs at least one WHEN
    arm_version = case(*whens, else_=literal("")) if whens else literal("")
    q = (
        select(
            RolloutAssignment.arm.label("arm"),
            Result.device_id.label("device_id"),
            case((Result.decision.in_(DECIDED), 1), else_=0).label("dec"),
            case((Result.decision == "accepted", 1), else_=0).label("acc"),
            Result.latency_ms.label("latency_ms"),
            case((Result.has_error, 1), else_=0).label("err"),
            case((Result.model_version != arm_version, 1), else_=0).label("mismatch"),
        )
        .join(
            RolloutAssignment,
            and_(
                RolloutAssignment.device_id == Result.device_id,
                RolloutAssignment.rollout_id == ro.id,
            ),
        )
        .where(
            Result.model_id == ro.model_id,
            _runs_counted(ro),
            Result.created_at >= RolloutAssignment.assigned_at,
        )
    )
    end = window_end(ro)
    if end is not None:
        q = q.where(Result.created_at <= end)
    return q


def _runs_counted(ro: Rollout) -> Any:
    """Shown results; in shadow mode a candidate arm's are its shadow runs for this rollout
    (its devices are shown the baseline, so their shown results would compare A with A)."""
    if not ro.shadow:
        return Result.shadow.is_(False)
    return or_(
        and_(RolloutAssignment.arm == "baseline", Result.shadow.is_(False)),
        and_(
            RolloutAssignment.arm != "baseline",
            Result.shadow.is_(True),
            Result.rollout_id == ro.id,
        ),
    )


def postgres_query(session: Session, ro: Rollout) -> Select[Any]:
    """The PostgreSQL form of the per-device aggregate (its plan is checked by a test: one
    index-only scan of ``ix_results_report`` per device, no sort)."""
    base = _eligible(ro, _versions(session, ro)).subquery("base")
    # grouped by device alone (a device has one arm per rollout), in the index's order
    return select(
        func.min(base.c.arm).label("arm"),
        base.c.device_id,
        *_counts(base),
        func.percentile_cont(postgresql.array([0.5, 0.95]))
        .within_group(base.c.latency_ms)
        .label("pct"),
    ).group_by(base.c.device_id)


def _versions(session: Session, ro: Rollout) -> dict[str, str]:
    arms = select(RolloutArm.name, RolloutArm.version).where(RolloutArm.rollout_id == ro.id)
    return {name: version for name, version in session.execute(arms)}


def device_rows(session: Session, ro: Rollout) -> list[DeviceRow]:
    """Per (arm, device): counts and latency p50/p95, computed by the database."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SET LOCAL jit = off"))  # compiling cost more than it saved
        got = [(r, r.pct[0], r.pct[1]) for r in session.execute(postgres_query(session, ro))]
    else:
        base = _eligible(ro, _versions(session, ro)).subquery("base")
        got = [(r, r.p50, r.p95) for r in session.execute(_interpolated(base))]
    return [
        DeviceRow(
            arm=r.arm,
            device_id=r.device_id,
            n_results=int(r.n),
            n_decided=int(r.decided or 0),
            n_accepted=int(r.accepted or 0),
            n_errors=int(r.errors or 0),
            n_version_mismatch=int(r.mismatch or 0),
            latency_p50_ms=None if p50 is None else float(p50),
            latency_p95_ms=None if p95 is None else float(p95),
        )
        for r, p50, p95 in got
    ]


def _counts(t: Any) -> list[Any]:
    return [
        func.count().label("n"),
        func.sum(t.c.dec).label("decided"),
        func.sum(t.c.acc).label("accepted"),
        func.sum(t.c.err).label("errors"),
        func.sum(t.c.mismatch).label("mismatch"),
    ]


def _interpolated(base: Any) -> Select[Any]:
    """percentile_cont by hand: rank k (0-based) among n sorted latencies, value at position
    q(n-1) interpolated linearly between its two neighbours."""
    part = (base.c.arm, base.c.device_id)
    ranked = select(
        base,
        (func.row_number().over(partition_by=part, order_by=base.c.latency_ms) - 1).label("k"),
        func.count().over(partition_by=part).label("cnt"),
    ).subquery("ranked")

    def pct(q: float) -> Any:
        pos = cast(ranked.c.cnt - 1, Float) * literal(q)
        lo = cast(pos, Integer)  # truncation: pos >= 0
        frac = pos - lo
        return func.sum(
            case(
                (ranked.c.k == lo, ranked.c.latency_ms * (1 - frac)),
                (ranked.c.k == lo + 1, ranked.c.latency_ms * frac),
                else_=0.0,
            )
        )

    return select(
        ranked.c.arm,
        ranked.c.device_id,
        *_counts(ranked),
        pct(0.5).label("p50"),
        pct(0.95).label("p95"),
    ).group_by(ranked.c.arm, ranked.c.device_id)


def shadow_agreement(session: Session, ro: Rollout) -> dict[str, int]:
    """Shadow runs of this rollout by assigned devices: how many said whether they agreed with
    the shown model's findings, and how many agreed."""
    flag = Result.summary["agrees_with_shown"].as_boolean()
    q = (
        select(
            func.count(flag).label("n"),
            func.sum(case((flag.is_(True), 1), else_=0)).label("agreed"),
        )
        .join(
            RolloutAssignment,
            and_(
                RolloutAssignment.device_id == Result.device_id,
                RolloutAssignment.rollout_id == ro.id,
            ),
        )
        .where(
            Result.rollout_id == ro.id,
            Result.shadow.is_(True),
            Result.created_at >= RolloutAssignment.assigned_at,
        )
    )
    end = window_end(ro)
    if end is not None:
        q = q.where(Result.created_at <= end)
    row = session.execute(q).one()
    return {"n": int(row.n or 0), "agreed": int(row.agreed or 0)}
