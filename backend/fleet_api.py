"""Fleet routes: a workstation's status report, and IT's device list and revocation (admin).

``install(app)`` adds these routes and the operator pages to an app, and makes every
device-token request go through ``active_device``: the revoked flag is read per request, so an
access token that has not expired yet is refused (401 ``device_revoked``) right after revoke.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, Query
from fastapi import Path as PathParam
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from backend import deps, fleet
from backend.auth import Principal
from backend.deps import (
    ApiError,
    BackendState,
    admin,
    db_session,
    device_revoked_error,
    principal,
    state,
)
from backend.ops import log
from core.sync.status_report import STATUS_PATH, DeviceStatusReport
from core.sync.wire import API_PREFIX, ErrorBody

router = APIRouter(
    prefix=API_PREFIX,
    responses={s: {"model": ErrorBody} for s in (401, 403, 404, 409, 422, 429)},
)
Db = Annotated[Session, Depends(db_session)]
Admin = Annotated[str, Depends(admin)]
DevicePath = Annotated[str, PathParam(pattern=r"^[A-Za-z0-9._:-]{1,64}$")]
_device_role = deps.device  # the role check and per-device rate limit, before any override


def active_device(
    p: Annotated[Principal, Depends(principal)],
    st: Annotated[BackendState, Depends(state)],
) -> str:
    """``deps.device`` plus: the device exists and is not revoked (read per request, so every
    process refuses at once), and "last seen" is noted."""
    device_id = _device_role(p, st)
    with st.sessions() as session:
        active = fleet.check_and_touch(session, device_id)
    if not active:
        raise device_revoked_error(
            "this workstation was revoked by an admin (or no longer exists): its tokens are "
            "refused; ask IT to enrol it again"
        )
    return device_id


@router.post(STATUS_PATH, tags=["fleet"], status_code=204)
def post_status(
    report: DeviceStatusReport,
    device_id: Annotated[str, Depends(deps.device)],
    session: Db,
) -> Response:
    fleet.store_status(session, device_id, report)
    return Response(status_code=204)


class DevicePage(BaseModel):
    total: int
    limit: int
    offset: int
    items: list[dict[str, Any]]


@router.get("/admin/devices", tags=["fleet"])
def get_devices(
    who: Admin,
    session: Db,
    revoked: bool | None = None,
    stale_after_s: Annotated[float | None, Query(ge=0, le=10 * 365 * 86400)] = None,
    q: Annotated[str, Query(max_length=64)] = "",
    app_version: Annotated[str, Query(max_length=64)] = "",
    sort: Annotated[str, Query(max_length=32)] = "label",
    order: Literal["asc", "desc"] = "asc",
    limit: Annotated[int, Query(ge=1, le=fleet.MAX_PAGE)] = 100,
    offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
) -> DevicePage:
    try:
        page = fleet.list_devices(
            session,
            revoked=revoked,
            stale_after_s=stale_after_s,
            search=q,
            app_version=app_version,
            sort=sort,
            descending=order == "desc",
            limit=limit,
            offset=offset,
        )
    except fleet.FleetError as exc:
        raise ApiError(exc.status, exc.code, exc.message) from exc
    return DevicePage(
        total=page.total, limit=limit, offset=offset, items=[r.as_json() for r in page.items]
    )


class RevokeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=1, max_length=500)


@router.post("/admin/devices/{device_id}/revoke", tags=["fleet"])
def post_revoke(
    device_id: DevicePath, req: RevokeRequest, who: Admin, session: Db
) -> dict[str, Any]:
    try:
        row = fleet.revoke(session, device_id, who, req.reason)
    except fleet.FleetError as exc:
        raise ApiError(exc.status, exc.code, exc.message) from exc
    log(30, "device revoked", device=device_id, admin=who)
    return row.as_json()


def install(app: FastAPI) -> None:
    """Add the fleet API and the operator pages to ``app`` and check revocation per request."""
    from backend.operator import routes as operator_routes

    if getattr(app.state, "fleet_installed", False):
        return
    app.state.fleet_installed = True
    app.include_router(router)
    app.include_router(operator_routes.router)
    app.dependency_overrides[deps.device] = active_device
