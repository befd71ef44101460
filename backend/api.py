"""The versioned sync API (``/api/v1``): enrolment, tokens, batches, models, rollouts, admin."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from backend import catalogue, ingest, storable, storable_scan
from backend.auth import (
    MAX_CODE_USES,
    AuthError,
    enrol,
    enrolment_key,
    issue_enrol_code,
    sha256_hex,
)
from backend.db import EnrolCode, Enrolment, ModelPackage, SecurityAlert
from backend.deps import (
    ApiError,
    BackendState,
    admin,
    db_session,
    device,
    device_revoked_error,
    limit_by_address,
    state,
)
from backend.downloads import serve
from backend.ops import log
from core.sync.wire import (
    API_PREFIX,
    AuditBatch,
    BatchResponse,
    EnrolRequest,
    EnrolResponse,
    ErrorBody,
    ModelCatalogue,
    ModelEntry,
    RefreshRequest,
    ResultsBatch,
    TokenRequest,
    TokenResponse,
)

ERRORS: dict[int | str, dict[str, Any]] = {
    s: {"model": ErrorBody} for s in (400, 401, 403, 404, 409, 422, 429)
}
router = APIRouter(prefix=API_PREFIX, responses=ERRORS)
Db = Annotated[Session, Depends(db_session)]
State = Annotated[BackendState, Depends(state)]
DeviceId = Annotated[str, Depends(device)]
IdemKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=128)]
# ids in paths: what the catalogue accepts, and what its Integer columns hold; anything else is
# a 422 here, never a value handed to the database (a NUL byte made PostgreSQL answer 500)
ModelIdPath = Annotated[str, Path(pattern=catalogue.ID_PATTERN)]


def _auth_error(exc: AuthError) -> ApiError:
    return ApiError(exc.status, exc.code, exc.message)


def _storable(body: BaseModel, extra: list[dict[str, Any]] | None = None) -> None:
    """422, in the shape of FastAPI's validation errors, for values no column can hold."""
    found = [*storable_scan.problems(body), *(extra or [])]
    if found:
        raise ApiError(
            422,
            "invalid_request",
            "request body or parameters are invalid",
            {"problems": found[:20]},
        )


@router.post("/enrol", tags=["auth"], dependencies=[Depends(limit_by_address)])
def post_enrol(req: EnrolRequest, session: Db, st: State) -> EnrolResponse:
    _storable(req)
    try:
        device_id, secret = enrol(
            session, req.code, req.label, req.nonce, enrolment_key(st.tokens.secret)
        )
    except AuthError as exc:
        raise _auth_error(exc) from exc
    log(logging.INFO, "device enrolled", device=device_id)
    return EnrolResponse(device_id=device_id, device_secret=secret)


class EnrolCodeRequest(BaseModel):
    """An enrolment code for IT: ``uses`` workstations (a machine-wide config), ``days`` valid."""

    model_config = ConfigDict(extra="forbid")
    uses: int = Field(default=1, ge=1, le=MAX_CODE_USES)
    days: float = Field(default=7.0, gt=0, le=365)
    note: str = Field(default="", max_length=128, description="what it is for, shown to admins")


class EnrolCodeIssued(BaseModel):
    code: str = Field(description="shown once; only its hash is stored")
    code_id: str
    uses: int
    expires_at: datetime


def _code_id(code_hash: str) -> str:
    return code_hash[:16]  # names a code in lists and logs without revealing it


@router.post("/admin/enrol-codes", tags=["admin"])
def post_enrol_code(
    req: EnrolCodeRequest, admin_name: Annotated[str, Depends(admin)], session: Db
) -> EnrolCodeIssued:
    _storable(req)
    code = issue_enrol_code(session, ttl_s=int(req.days * 86400), uses=req.uses, note=req.note)
    row = session.get(EnrolCode, sha256_hex(code))
    assert row is not None
    log(
        logging.INFO,
        "enrolment code issued",
        admin=admin_name,
        code_id=_code_id(row.code_hash),
        uses=req.uses,
    )
    return EnrolCodeIssued(
        code=code, code_id=_code_id(row.code_hash), uses=row.max_uses, expires_at=row.expires_at
    )


@router.get("/admin/enrol-codes", tags=["admin"])
def get_enrol_codes(_admin: Annotated[str, Depends(admin)], session: Db) -> list[dict[str, Any]]:
    """Codes newest first with their uses and the workstations each enrolled (the audit)."""
    rows = list(session.scalars(select(EnrolCode).order_by(EnrolCode.created_at.desc()).limit(500)))
    used: dict[str, list[dict[str, str]]] = {r.code_hash: [] for r in rows}
    for e in session.scalars(
        select(Enrolment).where(Enrolment.code_hash.in_(list(used))).order_by(Enrolment.created_at)
    ):
        used[e.code_hash].append(
            {"device_id": e.device_id, "enrolled_at": e.created_at.isoformat()}
        )
    return [
        {
            "code_id": _code_id(r.code_hash),
            "note": r.note,
            "created_at": r.created_at.isoformat(),
            "expires_at": r.expires_at.isoformat(),
            "max_uses": r.max_uses,
            "uses": r.uses,
            "devices": used[r.code_hash],
        }
        for r in rows
    ]


@router.post("/token", tags=["auth"], dependencies=[Depends(limit_by_address)])
def post_token(req: TokenRequest, session: Db, st: State) -> TokenResponse:
    _storable(req)
    try:
        access, refresh = st.tokens.login(session, req.device_id, req.device_secret)
    except AuthError as exc:
        raise _auth_error(exc) from exc
    return TokenResponse(
        access_token=access, refresh_token=refresh, expires_in=st.settings.access_ttl_s
    )


@router.post("/token/refresh", tags=["auth"], dependencies=[Depends(limit_by_address)])
def post_refresh(req: RefreshRequest, session: Db, st: State) -> TokenResponse:
    _storable(req)
    try:
        access, refresh = st.tokens.refresh(session, req.refresh_token)
    except AuthError as exc:
        session.rollback()
        if exc.code == "refresh_token_reused":
            st.metrics.security_alerts.labels(exc.code).inc()
            log(logging.WARNING, "security alert: refresh token reused, family revoked")
        raise _auth_error(exc) from exc
    return TokenResponse(
        access_token=access, refresh_token=refresh, expires_in=st.settings.access_ttl_s
    )


def _idempotent(
    session: Session,
    st: BackendState,
    device_id: str,
    key: str | None,
    endpoint: str,
    batch: BaseModel,
    store: Any,
) -> Response:
    """Run ``store`` once per (device, key); replays and concurrent twins get the first answer."""
    if not key:
        raise ApiError(400, "idempotency_key_required", "the Idempotency-Key header is required")
    body_hash = ingest.request_hash(f"{endpoint}\n{batch.model_dump_json()}".encode())
    for _attempt in range(3):
        try:
            rec = ingest.lookup_replay(session, device_id, key, endpoint, body_hash)
        except ingest.IdempotencyMismatch as exc:
            raise ApiError(422, "idempotency_key_reused", str(exc)) from exc
        if rec is not None:
            return Response(
                rec.body,
                status_code=rec.status_code,
                media_type="application/json",
                headers={"Idempotent-Replayed": "true"},
            )
        try:
            result = store(session, device_id, batch)
        except ingest.DeviceRevokedError as exc:
            session.rollback()
            raise device_revoked_error(
                "this workstation was revoked by an admin: its tokens are refused"
            ) from exc
        except ingest.ChainError as exc:
            session.rollback()
            if not exc.alert:  # a gap: the earlier batch is still on its way
                raise ApiError(
                    409, exc.code, exc.message, exc.data, headers={"Retry-After": "1"}
                ) from exc
            ingest.record_chain_alert(session, device_id, exc)
            st.metrics.security_alerts.labels(exc.code).inc()
            log(
                logging.WARNING,
                "security alert: audit chain refused",
                device=device_id,
                code=exc.code,
                index=exc.data.get("index"),
            )
            raise ApiError(409, exc.code, exc.message, exc.data) from exc
        body = result.model_dump_json().encode()
        ingest.remember(session, device_id, key, endpoint, body_hash, body)
        try:
            session.commit()
        except IntegrityError:
            session.rollback()  # a concurrent request stored some of these first: look again
            continue
        kind = endpoint.split(":")[0]
        st.metrics.items.labels(kind, "stored").inc(len(result.stored))
        st.metrics.items.labels(kind, "duplicate").inc(len(result.duplicates))
        return Response(body, media_type="application/json")
    raise ApiError(
        409,
        "conflict_retry",
        "concurrent writes collided; retry the request",
        headers={"Retry-After": "1"},
    )


@router.post("/results:batch", tags=["sync"], response_model=BatchResponse)
def post_results(
    batch: ResultsBatch,
    device_id: DeviceId,
    session: Db,
    st: State,
    idempotency_key: IdemKey = None,
) -> Response:
    _storable(
        batch,
        [
            {"loc": ["body", "items", i, "rollout_id"], "msg": "rollout id out of range"}
            for i, item in enumerate(batch.items)
            if item.rollout_id is not None
            and not storable.INT32_MIN <= item.rollout_id <= storable.INT32_MAX
        ],
    )
    st.metrics.sync_lag.observe(ingest.oldest_age_s([i.created_at for i in batch.items]))
    return _idempotent(
        session, st, device_id, idempotency_key, "results:batch", batch, ingest.store_results
    )


@router.post("/audit-events:batch", tags=["sync"], response_model=BatchResponse)
def post_audit(
    batch: AuditBatch, device_id: DeviceId, session: Db, st: State, idempotency_key: IdemKey = None
) -> Response:
    _storable(batch)
    st.metrics.sync_lag.observe(ingest.oldest_age_s([e.created_at for e in batch.events]))
    return _idempotent(
        session, st, device_id, idempotency_key, "audit-events:batch", batch, ingest.store_audit
    )


def _entry(p: ModelPackage) -> ModelEntry:
    return ModelEntry(
        model_id=p.model_id,
        version=p.version,
        sha256=p.sha256,
        length=p.length,
        target_path=p.target_path,
        manifest=p.manifest,
        created_at=p.created_at,
    )


@router.get("/models", tags=["models"])
def get_models(_device: DeviceId, session: Db) -> ModelCatalogue:
    rows = session.scalars(select(ModelPackage).order_by(ModelPackage.model_id, ModelPackage.id))
    return ModelCatalogue(models=[_entry(p) for p in rows])


@router.get("/models/{model_id}/{version}/file", tags=["models"])
@router.head("/models/{model_id}/{version}/file", include_in_schema=False)
def get_model_file(
    model_id: ModelIdPath,
    version: ModelIdPath,
    request: Request,
    device_id: DeviceId,
    session: Db,
    st: State,
) -> Response:
    pkg = session.scalar(
        select(ModelPackage).where(
            ModelPackage.model_id == model_id, ModelPackage.version == version
        )
    )
    if pkg is None:
        raise ApiError(404, "model_not_found", f"model {model_id!r} version {version!r} not found")
    if request.method == "GET" and not request.headers.get("range"):
        st.metrics.downloads.labels(model_id, version).inc()
    log(
        logging.INFO,
        "model download",
        device=device_id,
        model=model_id,
        version=version,
        range=request.headers.get("range"),
    )
    return serve(request, st.storage, pkg.storage_key, pkg.length, pkg.sha256, "application/gzip")


@router.get("/admin/security-alerts", tags=["admin"])
def get_alerts(_admin: Annotated[str, Depends(admin)], session: Db) -> list[dict[str, Any]]:
    rows = session.scalars(select(SecurityAlert).order_by(SecurityAlert.id.desc()).limit(500))
    return [
        {
            "id": a.id,
            "device_id": a.device_id,
            "code": a.code,
            "detail": a.detail,
            "created_at": a.created_at.isoformat(),
        }
        for a in rows
    ]
