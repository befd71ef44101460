"""HTTP routes of rollouts: a workstation's assignment, and for admins creation with K arms,
the device-level report, sample-size planning, pause / promote / rollback and the events."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from backend import catalogue, storable
from backend.db import RolloutEvent
from backend.deps import ApiError, BackendState, admin, db_session, device, state
from backend.rollout_assign import RolloutError, assignments_for
from backend.rollout_stats import devices_per_arm
from core.sync.wire import API_PREFIX, AssignmentList, ErrorBody

router = APIRouter(
    prefix=API_PREFIX,
    responses={s: {"model": ErrorBody} for s in (400, 401, 403, 404, 409, 422, 429)},
)
Db = Annotated[Session, Depends(db_session)]
State = Annotated[BackendState, Depends(state)]
Admin = Annotated[str, Depends(admin)]
RolloutIdPath = Annotated[int, Path(ge=1, le=storable.INT32_MAX)]
Version = Annotated[str, Field(pattern=catalogue.ID_PATTERN)]


class CandidateArm(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: Version
    share: float = Field(ge=0, le=1, description="share of devices on this candidate")


class Guardrails(BaseModel):
    model_config = ConfigDict(extra="forbid")
    max_latency_p95_ms: float | None = Field(default=None, ge=0)
    max_rejection_increase: float | None = Field(default=None, ge=0, le=1)
    max_error_rate: float | None = Field(default=None, ge=0, le=1)
    min_devices: int = Field(default=5, ge=1, le=1_000_000)


class RolloutCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model_id: Annotated[str, Field(pattern=catalogue.ID_PATTERN)]
    baseline: Version
    candidates: list[CandidateArm] = Field(min_length=1, max_length=8)
    shadow: bool = False
    alpha: float = Field(default=0.05, gt=0, lt=1)
    tau: float = Field(default=0.05, gt=0, le=1, description="mSPRT mixture sd")
    guardrails: Guardrails = Field(default_factory=Guardrails)
    on_breach: str = Field(default="pause", pattern="^(pause|rollback)$")


class PromoteRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    arm: str | None = Field(default=None, max_length=32)


def _not_found_or_conflict(exc: Exception) -> ApiError:
    msg = str(exc)
    if "does not exist" in msg:
        return ApiError(404, "rollout_not_found", msg)
    return ApiError(409, "rollout_conflict", msg)


@router.get("/rollouts/assignment", tags=["rollouts"])
def get_assignment(
    device_id: Annotated[str, Depends(device)], session: Db, st: State
) -> AssignmentList:
    """This workstation's arm in every open rollout; the arm is stored the first time."""
    got = assignments_for(session, device_id)
    for a, arm_name in got:
        st.metrics.rollout_arms.labels(str(a.rollout_id), arm_name).inc()
    return AssignmentList(assignments=[a for a, _n in got])


@router.post("/admin/rollouts", tags=["admin"])
def post_rollout(body: RolloutCreate, actor: Admin, session: Db, st: State) -> dict[str, Any]:
    first, *more = body.candidates
    guardrails = {k: v for k, v in body.guardrails.model_dump().items() if v is not None}
    try:
        ro = catalogue.create_rollout(
            session,
            st.repo,
            body.model_id,
            body.baseline,
            first.version,
            first.share,
            body.shadow,
            more_candidates=[(c.version, c.share) for c in more],
            design={
                "alpha": body.alpha,
                "tau": body.tau,
                "guardrails": guardrails,
                "on_breach": body.on_breach,
            },
            actor=actor,
        )
    except catalogue.CatalogueError as exc:
        raise ApiError(409, "rollout_conflict", str(exc)) from exc
    return {"id": ro.id, "status": ro.status}


@router.get("/admin/rollouts/plan", tags=["admin"])
def get_plan(
    _admin: Admin,
    baseline_rate: Annotated[float, Query(gt=0, lt=1)],
    min_difference: Annotated[float, Query(ge=-1, le=1)],
    alpha: Annotated[float, Query(gt=0, lt=1)] = 0.05,
    power: Annotated[float, Query(gt=0, lt=1)] = 0.8,
    icc: Annotated[float, Query(ge=0, le=1)] = 0.0,
    results_per_device: Annotated[float, Query(ge=1, le=1e7)] = 1.0,
    candidates: Annotated[int, Query(ge=1, le=8)] = 1,
) -> dict[str, Any]:
    """Devices needed per arm (design effect 1 + (m - 1) ICC)."""
    try:
        return devices_per_arm(
            baseline_rate, min_difference, alpha, power, icc, results_per_device, candidates
        )
    except ValueError as exc:
        raise ApiError(422, "invalid_plan", str(exc)) from exc


@router.get("/admin/rollouts/{rollout_id}/report", tags=["admin"])
def get_report(rollout_id: RolloutIdPath, actor: Admin, session: Db, st: State) -> dict[str, Any]:
    """The report; computing it is a look of the sequential test and enforces guardrails."""
    try:
        from backend.rollout_monitor import report

        return report(session, rollout_id, repo=st.repo, actor=actor)
    except RolloutError as exc:
        raise ApiError(404, "rollout_not_found", str(exc)) from exc


@router.post("/admin/rollouts/{rollout_id}/pause", tags=["admin"])
def post_pause(rollout_id: RolloutIdPath, actor: Admin, session: Db) -> dict[str, Any]:
    try:
        ro = catalogue.pause_rollout(session, rollout_id, actor, "admin")
    except catalogue.CatalogueError as exc:
        raise _not_found_or_conflict(exc) from exc
    return {"id": ro.id, "status": ro.status}


@router.post("/admin/rollouts/{rollout_id}/promote", tags=["admin"])
def post_promote(
    rollout_id: RolloutIdPath, body: PromoteRequest, actor: Admin, session: Db, st: State
) -> dict[str, Any]:
    try:
        ro = catalogue.promote(session, st.repo, rollout_id, body.arm, actor)
    except catalogue.CatalogueError as exc:
        raise _not_found_or_conflict(exc) from exc
    return {"id": ro.id, "status": ro.status}


@router.post("/admin/rollouts/{rollout_id}/rollback", tags=["admin"])
def post_rollback(
    rollout_id: RolloutIdPath, actor: Admin, session: Db, st: State
) -> dict[str, Any]:
    try:
        ro = catalogue.close_rollout(session, st.repo, rollout_id, None, actor)
    except catalogue.CatalogueError as exc:
        raise _not_found_or_conflict(exc) from exc
    return {"id": ro.id, "status": ro.status}


@router.get("/admin/rollouts/{rollout_id}/events", tags=["admin"])
def get_events(rollout_id: RolloutIdPath, _admin: Admin, session: Db) -> list[dict[str, Any]]:
    rows = session.scalars(
        select(RolloutEvent)
        .where(RolloutEvent.rollout_id == rollout_id)
        .order_by(RolloutEvent.id)
        .limit(1000)
    )
    return [
        {"id": e.id, "kind": e.kind, "actor": e.actor, "detail": e.detail, "at": e.at.isoformat()}
        for e in rows
    ]
