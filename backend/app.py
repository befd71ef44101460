"""The FastAPI application factory: wires settings, database, storage, TUF, metrics and routes."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException

from backend import admin_session, api, fleet_api, rollout_routes, tuf_routes
from backend.admins import AdminKeys
from backend.auth import TokenIssuer
from backend.body_limit import BodyLimit
from backend.config import Settings
from backend.db import make_engine, make_sessionmaker
from backend.deps import ApiError, BackendState, metrics_reader
from backend.ops import Metrics, RateLimiter, log
from backend.storage import open_storage
from backend.tuf_repo import TufRepository

TIMESTAMP_CHECK_S = 600.0  # how often each process checks whether timestamp.json is due
TIMESTAMP_RETRY_S = 5.0  # the first retry after a failed check; doubles up to the check interval
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


def _resign_if_due(st: BackendState) -> int | None:
    with st.sessions() as session:
        return st.repo.resign_timestamp_if_due(session)


async def _keep_timestamp_fresh(st: BackendState) -> None:
    """timestamp.json expires in a day; re-sign it well before so clients never see it lapse.

    Every process runs this; the signing lock (TufRepository.lock_signing) lets one re-sign and
    the others find it fresh. No failure ends the loop (a database fail-over, a lost
    connection, a missing key): it is logged and retried with a doubling delay, and /readyz
    turns red if the timestamp gets close to expiry all the same."""
    failures = 0
    while True:
        try:
            version = await asyncio.to_thread(_resign_if_due, st)
        except Exception as exc:  # noqa: BLE001 - any failure is retried, never the end
            failures += 1
            log(
                logging.ERROR,
                "cannot re-sign timestamp.json; retrying",
                error=type(exc).__name__,
                reason=str(exc).splitlines()[0][:300] if str(exc) else "",
                failures=failures,
            )
        else:
            failures = 0
            if version is not None:
                log(logging.INFO, "re-signed timestamp.json", version=version)
        delay = TIMESTAMP_CHECK_S
        if failures:
            delay = min(TIMESTAMP_CHECK_S, TIMESTAMP_RETRY_S * 2 ** min(failures - 1, 16))
        await asyncio.sleep(delay)


def health_problems(st: BackendState) -> list[str]:
    """Why the service is not ready (/readyz); empty when ready. timestamp.json closer to
    expiry than the margin means re-signing has failed for hours: every workstation stops
    taking model updates when it lapses, so monitors must see it. These are fleet-wide
    conditions, so they never feed liveness (/healthz)."""
    margin_s = st.settings.timestamp_health_margin_s
    if margin_s is None:
        margin_s = st.settings.timestamp_expiry_s / 4
    try:
        with st.sessions() as session:
            expires = TufRepository.timestamp_expiry(session)
    except SQLAlchemyError as exc:
        return [f"database unreachable ({type(exc).__name__})"]
    except ValueError as exc:  # unreadable metadata row
        return [f"timestamp.json cannot be read ({exc})"]
    if expires is None:
        return []
    left = (expires - datetime.now(UTC)).total_seconds()
    if left < margin_s:
        return [
            f"timestamp.json expires in {max(left, 0.0):.0f} s (margin {margin_s:.0f} s): "
            "re-signing is failing"
        ]
    return []


class TimestampExpiryCollector:
    """``doctorai_tuf_timestamp_expiry_timestamp_seconds``: when the timestamp.json being served
    expires (Unix time), read from the database at scrape time, so every process reports the
    shared value and the expiry alerts (deploy/prometheus) fire even if no process re-signs."""

    NAME = "doctorai_tuf_timestamp_expiry_timestamp_seconds"
    HELP = "Unix time at which the timestamp.json being served expires"

    def __init__(self, st: BackendState) -> None:
        self.st = st

    def describe(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(self.NAME, self.HELP)

    def collect(self) -> Iterator[Metric]:
        try:
            with self.st.sessions() as session:
                expires = TufRepository.timestamp_expiry(session)
        except (SQLAlchemyError, ValueError) as exc:  # no sample this scrape; /readyz says why
            log(logging.WARNING, "timestamp expiry not readable for /metrics", error=str(exc)[:200])
            return
        if expires is not None:
            yield GaugeMetricFamily(self.NAME, self.HELP, value=expires.timestamp())


def create_app(settings: Settings, st: BackendState | None = None) -> FastAPI:
    st = st or build_state(settings)
    with contextlib.suppress(ValueError):  # already registered: a second app over one state
        st.metrics.registry.register(TimestampExpiryCollector(st))

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
    async def healthz() -> JSONResponse:
        """Liveness: 200 while this process serves. Nothing shared (database, timestamp.json)
        is checked here: ECS replaces tasks that fail it, and a fleet-wide condition such as an
        RDS fail-over would otherwise make every task fail at once and be replaced in a loop."""
        return JSONResponse({"status": "ok"})

    @app.get("/readyz", tags=["ops"])
    def readyz() -> JSONResponse:
        """Readiness: the database answers and timestamp.json is not close to expiry (503 with
        the reasons otherwise). For operators and monitors; not the ECS/ALB health check."""
        problems = health_problems(st)
        if problems:
            return JSONResponse({"status": "unready", "reasons": problems}, status_code=503)
        return JSONResponse({"status": "ok"})

    @app.get(
        "/metrics", tags=["ops"], include_in_schema=False, dependencies=[Depends(metrics_reader)]
    )
    def metrics() -> Response:
        return Response(generate_latest(st.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    app.include_router(rollout_routes.router)  # assignment, rollouts, reports (backend.rollout_*)
    app.include_router(api.router)
    # IT's device list and revocation, the operator pages, and the per-request revoked check of
    # every device token (backend.fleet_api)
    fleet_api.install(app)
    app.include_router(admin_session.router)
    app.include_router(tuf_routes.router)
    return app
