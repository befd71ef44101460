"""``POST /api/v1/admin/session``: a backend admin signs in with password and second factor.

The answer is a short-lived admin access token whose ``amr`` is ``["pwd", "otp"]``, the only
kind the admin endpoints accept while ``DOCTORAI_BACKEND_ADMIN_MFA`` is on. Every failure
answers the same 401; the reason goes to the security alerts and the log, never a secret.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from backend import admins, storable
from backend.deps import ApiError, BackendState, db_session, limit_by_address, state
from backend.ops import log
from core.sync.wire import API_PREFIX, ErrorBody

FAILED_MESSAGE = (
    "admin sign-in failed: the name, password or code is wrong, or the account is locked, "
    "disabled or not confirmed yet"
)
router = APIRouter(
    prefix=API_PREFIX,
    responses={s: {"model": ErrorBody} for s in (401, 422, 429)},
)


class AdminSessionRequest(BaseModel):
    """``code`` is the authenticator's 6 digits or one unused recovery code (XXXXX-XXXXX)."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)
    code: str = Field(default="", max_length=64)


class AdminSessionResponse(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int
    amr: list[str]


@router.post("/admin/session", tags=["admin"], dependencies=[Depends(limit_by_address)])
def post_admin_session(
    req: AdminSessionRequest,
    request: Request,
    session: Annotated[Session, Depends(db_session)],
    st: Annotated[BackendState, Depends(state)],
) -> AdminSessionResponse:
    found: list[dict[str, Any]] = storable.problems(req)
    if found:
        raise ApiError(
            422, "invalid_request", "request body or parameters are invalid", {"problems": found}
        )
    address = request.client.host if request.client else "?"
    s = st.settings
    out = admins.sign_in(
        session,
        st.admin_keys,
        req.name,
        req.password,
        req.code,
        max_failures=s.admin_max_failures,
        lockout_s=s.admin_lockout_s,
        address=address,
    )
    log(
        logging.INFO if out.ok else logging.WARNING,
        "admin sign-in" if out.ok else "admin sign-in failed",
        admin=req.name[:64],
        reason=out.reason,
        method=out.method,
        address=address,
        locked_now=out.locked_now,
    )
    if not out.ok:
        st.metrics.security_alerts.labels("admin_sign_in_failed").inc()
        raise ApiError(401, "admin_sign_in_failed", FAILED_MESSAGE)
    amr = ["pwd", "otp"]
    token = st.tokens.access(req.name, role="admin", ttl_s=s.admin_session_ttl_s, amr=amr)
    return AdminSessionResponse(access_token=token, expires_in=s.admin_session_ttl_s, amr=amr)
