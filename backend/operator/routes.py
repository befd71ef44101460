"""The operator's web pages (``/operator``): fleet, sync health, security alerts, rollouts.

Server-rendered HTML (Jinja2, autoescaped), no script at all, one stylesheet served from here,
and a Content-Security-Policy that allows nothing else. Every page but sign-in needs an admin
session from password + TOTP (backend.operator.session); without one it redirects to sign-in.
Confirmation before a revoke is a page of its own, so it works without JavaScript.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup
from sqlalchemy import func, select
from starlette.concurrency import run_in_threadpool

from backend import admins, fleet
from backend.auth import aware
from backend.db import Rollout, RolloutArm, utcnow
from backend.deps import BackendState, rate_limit
from backend.operator import charts
from backend.operator import session as sess
from backend.operator.plot import bar_chart, rollout_svg
from backend.ops import log
from backend.rollout_assign import OPEN_STATUSES, arms_of

HERE = Path(__file__).resolve().parent
CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
}
MAX_FORM_BYTES = 8192
PAGE_SIZE = 50
ROLLOUTS_LISTED = 500  # rollouts are made by hand: a few a month
REPORTS_LISTED = 5  # full reports on the list page: the newest open rollouts only
_ID = re.compile(r"[1-9][0-9]{0,17}")  # a rollout id that fits a BIGINT
router = APIRouter(prefix=sess.PATH, include_in_schema=False)


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    s = max(seconds, 0.0)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if s >= size:
            return f"{s / size:.0f} {unit}"
    return f"{s:.0f} s"


def _iso(value: datetime | None) -> str:
    return "—" if value is None else aware(value).strftime("%Y-%m-%d %H:%M:%S UTC")


_env = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)
_env.filters["age"] = _age
_env.filters["iso"] = _iso


def _st(request: Request) -> BackendState:
    st: BackendState = request.app.state.backend
    return st


def _headers(response: Response) -> Response:
    response.headers.update(SECURITY_HEADERS)
    return response


def _render(template: str, status: int = 200, **ctx: Any) -> HTMLResponse:
    html = _env.get_template(template).render(**ctx)
    return _headers(HTMLResponse(html, status_code=status))  # type: ignore[return-value]


def _to_sign_in() -> Response:
    return _headers(RedirectResponse(f"{sess.PATH}/sign-in", status_code=303))


async def _form(request: Request) -> dict[str, str]:
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        return {}
    try:
        fields = parse_qs(body.decode("utf-8", "replace"), max_num_fields=20)
    except ValueError:  # more fields than any of our forms has: not ours
        return {}
    return {k: v[0] for k, v in fields.items() if v}


class _Page:
    """What every signed-in page shows: who, the CSRF token, the current section."""

    def __init__(self, st: BackendState, name: str, binding: str, section: str) -> None:
        self.admin, self.csrf, self.section = name, sess.csrf_for(st, binding), section


# --- sign-in ---------------------------------------------------------------------------------


@router.get("/static/operator.css")
def css() -> Response:
    return _headers(
        Response((HERE / "static" / "operator.css").read_bytes(), media_type="text/css")
    )


@router.get("")
@router.get("/")
def home(request: Request) -> Response:
    if sess.signed_in(_st(request), request) is None:
        return _to_sign_in()
    return _headers(RedirectResponse(f"{sess.PATH}/fleet", status_code=303))


def _sign_in_page(request: Request, error: str = "", status: int = 200) -> Response:
    pre, new = sess.pre_session(request)
    response = _render(
        "sign_in.html", status, csrf=sess.csrf_for(_st(request), pre), error=error, page=None
    )
    if new:
        sess.set_cookie(request, response, sess.PRE_COOKIE, pre, 3600)
    return response


@router.get("/sign-in")
def sign_in_form(request: Request) -> Response:
    return _sign_in_page(request)


@router.post("/sign-in")
async def sign_in(request: Request) -> Response:
    st = _st(request)
    form = await _form(request)
    if not sess.csrf_ok(st, request.cookies.get(sess.PRE_COOKIE), form.get("csrf")):
        return _sign_in_page(request, "The form expired; please sign in again.", 400)
    address = request.client.host if request.client else "?"
    # the bucket is a database row: never wait for it on the event loop
    await run_in_threadpool(rate_limit, st, f"addr:{address}")
    name, password, code = (
        form.get("name", "")[:64],
        form.get("password", "")[:1024],
        form.get("code", "")[:64],
    )

    def check() -> admins.SignIn:
        with st.sessions() as session:
            return admins.sign_in(
                session,
                st.admin_keys,
                name,
                password,
                code,
                max_failures=st.settings.admin_max_failures,
                lockout_s=st.settings.admin_lockout_s,
                address=address,
            )

    out = await run_in_threadpool(check)
    log(
        logging.INFO if out.ok else logging.WARNING,
        "operator sign-in" if out.ok else "operator sign-in failed",
        admin=name,
        reason=out.reason,
        address=address,
    )
    if not out.ok:
        st.metrics.security_alerts.labels("admin_sign_in_failed").inc()
        return _sign_in_page(
            request,
            "Sign-in failed: the name, password or code is wrong, or the account is locked.",
            401,
        )
    ttl = st.settings.admin_session_ttl_s
    token = st.tokens.access(name, role="admin", ttl_s=ttl, amr=["pwd", "otp"])
    response = _headers(RedirectResponse(f"{sess.PATH}/fleet", status_code=303))
    sess.set_cookie(request, response, sess.COOKIE, token, ttl)
    response.delete_cookie(sess.PRE_COOKIE, path=sess.PATH)
    return response


@router.post("/sign-out")
async def sign_out(request: Request) -> Response:
    st = _st(request)
    who = await run_in_threadpool(sess.signed_in, st, request)  # reads BackendAdmin
    form = await _form(request)
    response = _to_sign_in()
    if who is not None and sess.csrf_ok(st, who[1], form.get("csrf")):
        response.delete_cookie(sess.COOKIE, path=sess.PATH)
    return response


# --- pages -----------------------------------------------------------------------------------


@router.get("/fleet")
def fleet_page(
    request: Request,
    q: str = "",
    sort: str = "label",
    order: str = "asc",
    page: int = 1,
    done: str = "",
) -> Response:
    st = _st(request)
    who = sess.signed_in(st, request)
    if who is None:
        return _to_sign_in()
    sort = sort if sort in fleet.SORT_KEYS else "label"
    page = min(max(page, 1), 10**6)
    now = utcnow()
    with st.sessions() as session:
        found = fleet.list_devices(
            session,
            search=q[:64],
            sort=sort,
            descending=order == "desc",
            limit=PAGE_SIZE,
            offset=(page - 1) * PAGE_SIZE,
        )
        versions = charts.app_versions(session)
    pages = max(1, -(-found.total // PAGE_SIZE))
    return _render(
        "fleet.html",
        page=_Page(st, *who, "fleet"),
        devices=found.items,
        total=found.total,
        now=now,
        q=q[:64],
        sort=sort,
        order=order,
        number=page,
        pages=pages,
        done=done[:64],
        stale_s=fleet.STALE_AFTER_S,
        version_chart=Markup(bar_chart(versions, "App versions (active)", "app-versions")),
    )


@router.get("/devices/{device_id}/revoke")
def revoke_confirm(request: Request, device_id: str) -> Response:
    st = _st(request)
    who = sess.signed_in(st, request)
    if who is None:
        return _to_sign_in()
    with st.sessions() as session:
        found = fleet.list_devices(session, search=device_id[:64], limit=5)
    match = [d for d in found.items if d.device_id == device_id]
    if not match:
        return _render(
            "message.html", 404, page=_Page(st, *who, "fleet"), text=f"No device {device_id!r}."
        )
    return _render(
        "revoke.html", page=_Page(st, *who, "fleet"), device=match[0], now=utcnow(), error=""
    )


@router.post("/devices/{device_id}/revoke")
async def revoke(request: Request, device_id: str) -> Response:
    st = _st(request)
    who = await run_in_threadpool(sess.signed_in, st, request)  # reads BackendAdmin
    if who is None:
        return _to_sign_in()
    form = await _form(request)
    if not sess.csrf_ok(st, who[1], form.get("csrf")):
        return _render(
            "message.html",
            403,
            page=_Page(st, *who, "fleet"),
            text="The form's security token is missing or wrong; nothing was revoked.",
        )
    reason = form.get("reason", "").strip()[:500]

    def run() -> None:
        with st.sessions() as session:
            fleet.revoke(session, device_id, who[0], reason)

    try:
        await run_in_threadpool(run)
    except fleet.FleetError as exc:
        return _render("message.html", exc.status, page=_Page(st, *who, "fleet"), text=exc.message)
    log(logging.WARNING, "device revoked", device=device_id, admin=who[0])
    return _headers(RedirectResponse(f"{sess.PATH}/fleet?done={quote(device_id)}", status_code=303))


@router.get("/sync")
def sync_page(request: Request) -> Response:
    st = _st(request)
    who = sess.signed_in(st, request)
    if who is None:
        return _to_sign_in()
    now = utcnow()
    with st.sessions() as session:
        found = fleet.list_devices(
            session, revoked=False, sort="last_sync_at", limit=fleet.MAX_PAGE, now=now
        )
        ages = charts.sync_ages(session, now)
        queues = charts.queue_lengths(session)
    return _render(
        "sync.html",
        page=_Page(st, *who, "sync"),
        devices=found.items,
        total=found.total,
        now=now,
        stale_s=fleet.STALE_AFTER_S,
        age_chart=Markup(bar_chart(ages, "Time since last sync", "sync-ages")),
        queue_chart=Markup(bar_chart(queues, "Results waiting to upload", "queue-lengths")),
    )


@router.get("/alerts")
def alerts_page(request: Request) -> Response:
    st = _st(request)
    who = sess.signed_in(st, request)
    if who is None:
        return _to_sign_in()
    with st.sessions() as session:
        rows = fleet.alerts(session)
    return _render("alerts.html", page=_Page(st, *who, "alerts"), alerts=rows)


def _report(session: Any, rollout_id: int) -> dict[str, Any] | str:
    """The rollout's statistics (backend.rollout_monitor.report, device-level, from SQL).

    Looking at the page is not a look of the sequential test and enforces nothing: only the
    scheduled monitor's looks count, so the error rate it promises holds however often IT
    opens this page. A failure is shown on the page, not raised."""
    from backend.rollout_monitor import report

    try:
        rep: dict[str, Any] = report(session, rollout_id, record_look=False, enforce=False)
    except Exception as exc:  # noqa: BLE001 - one broken report must not take the page down
        session.rollback()
        return f"report unavailable: {type(exc).__name__}: {str(exc)[:200]}"
    return rep


def _arms(rep: dict[str, Any]) -> list[dict[str, Any]]:
    arms = rep.get("arms") or {}
    items = arms.items() if isinstance(arms, dict) else enumerate(arms)
    return [{"name": str(k), **v} for k, v in items if isinstance(v, dict)]


def _comparisons(rep: dict[str, Any]) -> list[dict[str, Any]]:
    """One line per candidate arm: acceptance difference and latency test, Holm-adjusted."""
    found = rep.get("comparisons") or {}
    out = []
    for arm, c in found.items() if isinstance(found, dict) else ():
        if not isinstance(c, dict):
            continue
        acc, lat = c.get("acceptance") or {}, c.get("latency") or {}
        out.append({"arm": arm, "acceptance": acc, "latency": lat})
    return out


@dataclass(frozen=True)
class _RolloutRow:
    """What the pages show of a rollout's row, copied out of the session: a failed report
    rolls the session back, which expires every ORM object it holds."""

    id: int
    model_id: str
    status: str
    shadow: bool
    split: float
    created_at: datetime
    paused_at: datetime | None
    closed_at: datetime | None

    @classmethod
    def of(cls, ro: Rollout) -> _RolloutRow:
        return cls(
            ro.id,
            ro.model_id,
            ro.status,
            ro.shadow,
            ro.split,
            ro.created_at,
            ro.paused_at,
            ro.closed_at,
        )


def _shown(session: Any, ro: _RolloutRow) -> dict[str, Any]:
    """A rollout's full report as the templates show it (one heavy SQL aggregate)."""
    rep = _report(session, ro.id)
    arms = _arms(rep) if isinstance(rep, dict) else []
    return {
        "error": rep if isinstance(rep, str) else "",
        "arms": arms,
        "comparisons": _comparisons(rep) if isinstance(rep, dict) else [],
        "guardrails": rep.get("guardrails") if isinstance(rep, dict) else None,
        "svg": Markup(rollout_svg(arms, f"rollout {ro.id} {ro.model_id}")) if arms else "",
    }


def _arm_versions(session: Any, rollouts: list[Rollout]) -> dict[int, list[tuple[str, str]]]:
    """Each rollout's arms (name, version), baseline first: one query for the whole list."""
    found: dict[int, list[tuple[str, str]]] = {ro.id: [] for ro in rollouts}
    rows = session.scalars(
        select(RolloutArm)
        .where(RolloutArm.rollout_id.in_(list(found)))
        .order_by(RolloutArm.rollout_id, RolloutArm.position)
    )
    for arm in rows:
        found[arm.rollout_id].append((arm.name, arm.version))
    for ro in rollouts:  # a rollout without arm rows: arms_of's two-arm fallback
        if not found[ro.id]:
            found[ro.id] = [(a.name, a.version) for a in arms_of(session, ro)]
    return found


@router.get("/rollouts")
def rollouts_page(request: Request) -> Response:
    """Every rollout (newest ``ROLLOUTS_LISTED``) as a table row linking to its detail page;
    the full report only for the newest ``REPORTS_LISTED`` open ones (active or paused).

    A report is a heavy aggregate over the rollout's results (about 0.7 s at 2M results), and
    a closed rollout's numbers no longer change: computing them all made the page take tens of
    seconds. A closed rollout's report is one click away, on its own page."""
    st = _st(request)
    who = sess.signed_in(st, request)
    if who is None:
        return _to_sign_in()
    with st.sessions() as session:
        total = session.scalar(select(func.count()).select_from(Rollout)) or 0
        listed = list(
            session.scalars(select(Rollout).order_by(Rollout.id.desc()).limit(ROLLOUTS_LISTED))
        )
        arms = _arm_versions(session, listed)
        rows = [{"ro": _RolloutRow.of(ro), "arms": arms[ro.id]} for ro in listed]
        open_ones = [
            _RolloutRow.of(ro)
            for ro in session.scalars(
                select(Rollout)
                .where(Rollout.status.in_(OPEN_STATUSES))
                .order_by(Rollout.id.desc())
                .limit(REPORTS_LISTED)
            )
        ]
        reports = [{"ro": ro, **_shown(session, ro)} for ro in open_ones]
    return _render(
        "rollouts.html",
        page=_Page(st, *who, "rollouts"),
        rollouts=rows,
        total=total,
        reports=reports,
        reports_max=REPORTS_LISTED,
    )


@router.get("/rollouts/{rollout_id}")
def rollout_page(request: Request, rollout_id: str) -> Response:
    """One rollout's full report, whatever its status (viewing is not a look: see _report)."""
    st = _st(request)
    who = sess.signed_in(st, request)
    if who is None:
        return _to_sign_in()
    page = _Page(st, *who, "rollouts")
    with st.sessions() as session:
        ro = session.get(Rollout, int(rollout_id)) if _ID.fullmatch(rollout_id) else None
        if ro is None:
            return _render("message.html", 404, page=page, text=f"No rollout {rollout_id[:64]!r}.")
        arms = _arm_versions(session, [ro])[ro.id]
        row = _RolloutRow.of(ro)
        shown = {"ro": row, **_shown(session, row)}
    return _render("rollout.html", page=page, r=shown, arms=arms)
