"""The FastAPI application factory: wires settings, database, storage, TUF, metrics and routes."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException

from backend import admin_session, api, tuf_routes
from backend.admins import AdminKeys
from backend.auth import TokenIssuer
from backend.body_limit import BodyLimit
from backend.config import Settings
from backend.db import make_engine, make_sessionmaker
from backend.deps import ApiError, BackendState, metrics_reader
from backend.ops import Metrics, RateLimiter, log
from backend.storage import open_storage
from backend.tuf_repo import TufError, TufRepository

TIMESTAMP_CHECK_S = 3600.0
HTTP_ERROR_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "body_too_large",
    415: "unsupported_media_type",
}
# the method label of the request metrics is a closed set: any other method a client invents
# is counted as "other" instead of minting a new time series
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
MAX_BODY_BYTES = 32 * 2**20  # 1000 items per batch fit easily; anything larger is refused
# counted as the body streams in (backend.body_limit), not taken from Content-Length


def build_state(settings: Settings) -> BackendState:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.effective_db_url)
    storage = open_storage(
        settings.storage_url, settings.data_dir / "artefacts", settings.s3_endpoint_url
    )
    return BackendState(
        settings=settings,
        engine=engine,
        sessions=make_sessionmaker(engine),
        storage=storage,
        repo=TufRepository(settings, storage),
        tokens=TokenIssuer(settings.secret(), settings.access_ttl_s, settings.refresh_ttl_s),
        metrics=Metrics(),
        limiter=RateLimiter(settings.rate_per_s, settings.rate_burst),
        admin_keys=AdminKeys.derive(settings.mfa_key_material()),
    )


class _AsciiJSON(JSONResponse):
    """JSON with every non-ASCII character escaped: an error may quote what the client sent,
    and a lone surrogate (valid as a JSON escape) cannot be encoded as UTF-8 (that was a 500)."""

    def render(self, content: object) -> bytes:
        return json.dumps(content, ensure_ascii=True, separators=(",", ":")).encode("ascii")


def _error(
    status: int,
    code: str,
    message: str,
    data: dict[str, object] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    return _AsciiJSON(
        {"error": {"code": code, "message": message, "data": data or {}}},
        status_code=status,
        headers=headers,
    )


async def _keep_timestamp_fresh(st: BackendState) -> None:
    """timestamp.json expires in a day; re-sign it well before so clients never see it lapse."""
    while True:
        try:
            with st.sessions() as session:
                if st.repo.timestamp_expires_soon(session):
                    st.repo.publish_timestamp(session)
                    session.commit()
                    log(logging.INFO, "re-signed timestamp.json")
        except TufError as exc:
            log(logging.WARNING, "cannot re-sign timestamp.json", reason=str(exc))
        await asyncio.sleep(TIMESTAMP_CHECK_S)


def create_app(settings: Settings, st: BackendState | None = None) -> FastAPI:
    st = st or build_state(settings)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        task = None
        if (settings.keys_dir / "timestamp.key").exists():
            task = asyncio.create_task(_keep_timestamp_fresh(st))
        yield
        if task:
            task.cancel()

    app = FastAPI(
        title="DoctorAI backend",
        version="1",
        lifespan=lifespan,
        description="DoctorAI Workstation central backend: enrolment, sync, signed model updates.",
    )
    app.state.backend = st

    @app.exception_handler(ApiError)
    async def _api_error(_req: Request, exc: ApiError) -> JSONResponse:
        return _error(exc.status, exc.code, exc.message, exc.data, exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_req: Request, exc: StarletteHTTPException) -> JSONResponse:
        """The framework's own refusals (no such route, wrong method, a body that is not JSON)
        in the API's error shape rather than FastAPI's ``{"detail": ...}``."""
        code = HTTP_ERROR_CODES.get(exc.status_code, "http_error")
        return _error(
            exc.status_code,
            code,
            str(exc.detail),
            headers=dict(exc.headers) if exc.headers else None,
        )

    @app.exception_handler(Exception)
    async def _unexpected(_req: Request, exc: Exception) -> JSONResponse:
        """A bug: the error shape without the traceback (uvicorn still logs it)."""
        return _error(500, "internal_error", "internal server error")

    @app.exception_handler(RequestValidationError)
    async def _invalid(_req: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", "")} for e in exc.errors()]
        return _error(
            422,
            "invalid_request",
            "request body or parameters are invalid",
            {"problems": problems[:20]},
        )

    # added before _observe, so it sits inside it: a 413 is counted and logged like any answer
    app.add_middleware(BodyLimit, max_bytes=MAX_BODY_BYTES)

    @app.middleware("http")
    async def _observe(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        start = time.perf_counter()
        status = 500
        try:
            response = await call_next(request)
            status = response.status_code
            return response
        finally:
            route = getattr(request.scope.get("route"), "path", "unmatched")
            elapsed = time.perf_counter() - start
            method = request.method if request.method in METHODS else "other"
            st.metrics.requests.labels(method, route, str(status)).inc()
            st.metrics.latency.labels(route).observe(elapsed)
            log(
                logging.INFO,
                "request",
                method=request.method,
                route=route,
                status=status,
                ms=round(elapsed * 1000, 1),
            )

    @app.get("/healthz", tags=["ops"])
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(
        "/metrics", tags=["ops"], include_in_schema=False, dependencies=[Depends(metrics_reader)]
    )
    def metrics() -> Response:
        return Response(generate_latest(st.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    app.include_router(api.router)
    app.include_router(admin_session.router)
    app.include_router(tuf_routes.router)
    return app
