"""Shared state of one backend app and the FastAPI dependencies built on it."""

from __future__ import annotations

import hmac
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from backend.admins import AdminKeys
from backend.auth import AuthError, Principal, TokenIssuer
from backend.config import Settings
from backend.db import BackendAdmin
from backend.ops import Metrics, RateLimiter, log, retry_after_header
from backend.storage import Storage
from backend.tuf_repo import TufRepository


class ApiError(Exception):
    """Rendered as ``{"error": {"code", "message", "data"}}`` with the given status."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        data: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.data, self.headers = data or {}, headers or {}


def device_revoked_error(message: str) -> ApiError:
    """The 401 every route gives a revoked workstation (its token is refused, as invalid)."""
    return ApiError(
        401, "device_revoked", message, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'}
    )


@dataclass
class BackendState:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    storage: Storage
    repo: TufRepository
    tokens: TokenIssuer
    metrics: Metrics
    limiter: RateLimiter
    admin_keys: AdminKeys


def state(request: Request) -> BackendState:
    st: BackendState = request.app.state.backend
    return st


def db_session(st: BackendState = Depends(state)) -> Iterator[Session]:  # noqa: B008
    with st.sessions() as session:
        yield session


def rate_limit(st: BackendState, key: str) -> None:
    """One budget per key for the whole deployment (the bucket is a row in the database)."""
    wait = st.limiter.check(key, st.engine)
    if wait > 0:
        st.metrics.rate_limited.inc()
        raise ApiError(
            429,
            "rate_limited",
            "too many requests; retry later",
            {"retry_after_s": wait},
            {"Retry-After": retry_after_header(wait)},
        )


def limit_by_address(request: Request, st: BackendState = Depends(state)) -> None:  # noqa: B008
    """Before sign-in, the client's address: uvicorn puts the X-Forwarded-For client there
    only when the peer is a trusted proxy (``DOCTORAI_BACKEND_FORWARDED_ALLOW_IPS``), so a
    forged header from anyone else is ignored and the peer's own address is limited."""
    rate_limit(st, f"addr:{request.client.host if request.client else '?'}")


_bearer = HTTPBearer(auto_error=False)


def _require_bearer(creds: HTTPAuthorizationCredentials | None) -> HTTPAuthorizationCredentials:
    if creds is None:
        raise ApiError(
            401,
            "auth_required",
            "a bearer access token is required",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return creds


def principal(
    creds: HTTPAuthorizationCredentials | None = Depends(_bearer),  # noqa: B008
    st: BackendState = Depends(state),  # noqa: B008
) -> Principal:
    creds = _require_bearer(creds)
    try:
        return st.tokens.principal(creds.credentials)
    except AuthError as exc:
        raise ApiError(
            exc.status, exc.code, exc.message, headers={"WWW-Authenticate": "Bearer"}
        ) from exc


def device(
    p: Principal = Depends(principal),  # noqa: B008
    st: BackendState = Depends(state),  # noqa: B008
) -> str:
    """The calling workstation's id; only device tokens pass, each rate-limited on its own."""
    if p.role != "device":
        raise ApiError(403, "forbidden", "this endpoint is for enrolled workstations")
    rate_limit(st, f"device:{p.subject}")
    return p.subject


def admin(
    p: Principal = Depends(principal),  # noqa: B008
    st: BackendState = Depends(state),  # noqa: B008
) -> str:
    """An admin token; with ``admin_mfa`` (the default) only one from a sign-in with a second
    factor (``amr`` holds "otp"), or a break-glass token while IT allows those."""
    if p.role != "admin":
        raise ApiError(403, "forbidden", "this endpoint needs an admin token")
    if "otp" in p.amr:
        with st.sessions() as session:  # a disabled admin's tokens stop at once
            row = session.get(BackendAdmin, p.subject)
        if row is not None and row.disabled:
            raise ApiError(403, "admin_disabled", f"backend admin {p.subject!r} is disabled")
        return p.subject
    if not st.settings.admin_mfa:
        return p.subject
    if st.settings.admin_break_glass and "break-glass" in p.amr:
        log(logging.WARNING, "admin request with a break-glass token", admin=p.subject)
        return p.subject
    raise ApiError(
        403,
        "admin_mfa_required",
        "this endpoint needs an admin token from a sign-in with a second factor "
        "(POST /api/v1/admin/session with name, password and TOTP code)",
    )


def metrics_reader(
    creds: HTTPAuthorizationCredentials | None = Depends(_bearer),  # noqa: B008
    st: BackendState = Depends(state),  # noqa: B008
) -> str:
    """``/metrics``: the static scrape token (``DOCTORAI_BACKEND_METRICS_TOKEN``, for Prometheus,
    which sends a fixed bearer) or an admin's access token; a workstation's token is refused."""
    creds = _require_bearer(creds)
    scrape = st.settings.metrics_token
    if scrape and hmac.compare_digest(creds.credentials.encode(), scrape.encode()):
        return "metrics-scraper"
    return admin(principal(creds, st), st)
