"""The operator's web page (issue 19) against a live backend: sign-in with password + TOTP, the
session cookie's flags, CSRF, the Content-Security-Policy, and no page without a session; the
sync, queue and app-version charts count the whole fleet (SQLite and PostgreSQL); the rollouts
list computes reports for open rollouts only, a rollout's own page shows its full report.

The browser walk-through is in test_operator_browser.py; these checks speak HTTP directly.
"""

from __future__ import annotations

import html
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pyotp
import pytest
from sqlalchemy import event

from backend import admins, catalogue, fleet, rollout_assign
from backend.db import Device, DeviceStatus, Rollout, RolloutArm, SecurityAlert, utcnow
from tests.backend import pg
from tests.backend.conftest import base_settings, make_package, result_item
from tests.backend.fleet_serve import FleetServer

PASSWORD = "operator password 0123"
PAGES = (
    "/operator/",
    "/operator/fleet",
    "/operator/sync",
    "/operator/alerts",
    "/operator/rollouts",
)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FleetServer]:
    srv = FleetServer(base_settings(tmp_path_factory.mktemp("operator")), with_keys=False)
    srv.start()
    yield srv
    srv.stop()


def make_admin(live: FleetServer, name: str) -> pyotp.TOTP:
    """A confirmed admin; confirmed with the previous step's code so the current one is free."""
    with live.state.sessions() as s:
        totp = pyotp.parse_uri(admins.create(s, live.state.admin_keys, name, PASSWORD))
        assert isinstance(totp, pyotp.TOTP)
        admins.confirm(s, live.state.admin_keys, name, totp.at(time.time() - 30))
    return totp


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]{64})"', html)
    assert found, "no CSRF token in the form"
    return found.group(1)


def sign_in(live: FleetServer, http: httpx.Client, name: str, code: str) -> httpx.Response:
    form = http.get(f"{live.url}/operator/sign-in")
    assert form.status_code == 200
    body = {"csrf": csrf_of(form.text), "name": name, "password": PASSWORD, "code": code}
    return http.post(f"{live.url}/operator/sign-in", data=body)


def rollout_with_results(live: FleetServer, tmp: Path, model: str = "chest-xr") -> int:
    """A real rollout (two published packages) and 6 results from each of 6 devices of both
    arms (36 in all), the devices' acceptance differing so the interval is a real one."""
    with live.state.sessions() as s:
        for version in ("1.0", "2.0"):
            catalogue.add_model(s, live.state.repo, make_package(tmp, model, version))
        ro = catalogue.create_rollout(s, live.state.repo, model, "1.0", "2.0", 0.5)
        rollout_id = ro.id
    for i in range(6):
        w = live.workstation(f"rollout-ws-{model}-{i}")
        with live.state.sessions() as s:  # what the assignment route serves and stores
            got = rollout_assign.assignments_for(s, w.device_id)
        mine = next(a for a, _arm in got if a.rollout_id == rollout_id)
        items = [
            result_item(
                model=model,
                version=mine.version,
                decision="accepted" if k <= i else "rejected",
                latency=100.0 + 40 * (mine.arm != "baseline") + k,
                rollout_id=rollout_id,
            )
            for k in range(6)
        ]
        assert w.post("/results:batch", {"items": items}).status_code == 200
        w.close()
    return rollout_id


INLINE = re.compile(r"<script|<style|\sstyle\s*=|\son[a-z]+\s*=|javascript:", re.IGNORECASE)


def assert_csp_holds(page: httpx.Response) -> None:
    """Nothing on the page needs what the CSP forbids: no script, no inline style or handler
    (the SVG charts colour with presentation attributes), and the header still says so."""
    assert page.status_code == 200, page.text[:300]
    found = INLINE.search(page.text)
    assert found is None, page.text[max(found.start() - 80, 0) : found.end() + 80]
    csp = page.headers["content-security-policy"]
    directives = {d.split()[0]: d.split()[1:] for d in csp.split(";") if d.strip()}
    assert directives["default-src"] == ["'none'"]
    assert directives["style-src"] == ["'self'"]
    assert "script-src" not in directives


@contextmanager
def signed_in_client(live: FleetServer, name: str) -> Iterator[httpx.Client]:
    """An HTTP client holding an admin session (password + TOTP through the sign-in form)."""
    totp = make_admin(live, name)
    with httpx.Client(timeout=30) as http:
        assert sign_in(live, http, name, totp.now()).status_code == 303
        yield http


def bars(page: str, chart: str) -> list[tuple[str, int, bool]]:
    """(label, count, warning) of each bar of the page's ``svg.bar-chart.<chart>``."""
    svg = re.search(rf'<svg [^>]*class="bar-chart {chart}".*?</svg>', page, re.DOTALL)
    assert svg, f"no {chart} chart on the page"
    return [
        (html.unescape(label), int(count), kind == "bar warn")
        for kind, label, count in re.findall(
            r'<g class="(bar(?: warn)?)" data-label="([^"]*)" data-count="(\d+)">', svg.group(0)
        )
    ]


def test_no_page_without_a_session(live: FleetServer) -> None:
    ws = live.workstation("nosession")
    device_cookie = ws.tokens["access_token"]
    pwd_only = live.state.tokens.access("it", role="admin", amr=["pwd"])
    try:
        for cookie in (None, device_cookie, pwd_only, "garbage"):
            cookies = {"doctorai_operator": cookie} if cookie else None
            with httpx.Client(cookies=cookies) as http:
                for page in (*PAGES, "/operator/rollouts/1", "/operator/rollouts/x"):
                    r = http.get(live.url + page)
                    assert r.status_code == 303, (page, cookie)
                    assert r.headers["location"] == "/operator/sign-in"
                r = http.post(
                    f"{live.url}/operator/devices/{ws.device_id}/revoke",
                    data={"reason": "x", "csrf": "0" * 64},
                )
                assert r.status_code == 303
        with live.state.sessions() as s:
            device = s.get(Device, ws.device_id)
            assert device is not None
            assert not device.revoked
    finally:
        ws.close()


def test_sign_in_sets_a_strict_http_only_cookie_and_pages_carry_a_csp(live: FleetServer) -> None:
    totp = make_admin(live, "cookie-admin")
    with httpx.Client() as http:
        r = sign_in(live, http, "cookie-admin", totp.now())
        assert r.status_code == 303, r.text
        assert r.headers["location"] == "/operator/fleet"
        cookie = r.headers["set-cookie"]
        assert cookie.startswith("doctorai_operator=")
        assert "HttpOnly" in cookie
        assert "SameSite=strict" in cookie
        assert "Path=/operator" in cookie
        assert "Secure" not in cookie  # plain http on loopback
        for page in PAGES[1:]:
            r = http.get(live.url + page)
            assert r.status_code == 200, page
            csp = r.headers["content-security-policy"]
            assert "default-src 'none'" in csp
            assert "script-src" not in csp  # nothing allows a script
            assert "<script" not in r.text
            assert "cookie-admin" in r.text
        css = http.get(f"{live.url}/operator/static/operator.css")
        assert css.status_code == 200
        assert css.headers["content-type"].startswith("text/css")


def test_the_cookie_is_secure_behind_tls(live: FleetServer) -> None:
    """uvicorn takes the scheme from X-Forwarded-Proto of a trusted proxy (127.0.0.1 here)."""
    totp = make_admin(live, "tls-admin")
    with httpx.Client(headers={"X-Forwarded-Proto": "https"}) as http:
        form = http.get(f"{live.url}/operator/sign-in")
        assert "Secure" in form.headers["set-cookie"]
        pre = re.search(r"doctorai_operator_pre=([^;]+)", form.headers["set-cookie"])
        assert pre
        http.cookies.set("doctorai_operator_pre", pre.group(1))
        r = http.post(
            f"{live.url}/operator/sign-in",
            data={
                "csrf": csrf_of(form.text),
                "name": "tls-admin",
                "password": PASSWORD,
                "code": totp.now(),
            },
        )
        assert r.status_code == 303, r.text
        assert "Secure" in r.headers["set-cookie"]


def test_wrong_code_and_missing_csrf_are_refused(live: FleetServer) -> None:
    totp = make_admin(live, "csrf-admin")
    wrong = next(c for c in ("123456", "654321") if c != totp.now())
    with httpx.Client() as http:
        r = sign_in(live, http, "csrf-admin", wrong)
        assert r.status_code == 401
        assert "Sign-in failed" in r.text
        assert "doctorai_operator=" not in r.headers.get("set-cookie", "")
        # the sign-in form without its pre-session binding
        r = httpx.post(
            f"{live.url}/operator/sign-in",
            data={"csrf": "0" * 64, "name": "csrf-admin", "password": PASSWORD, "code": "1"},
        )
        assert r.status_code == 400
        r = sign_in(live, http, "csrf-admin", totp.now())
        assert r.status_code == 303
        ws = live.workstation("csrf-target")
        try:
            for token in (None, "0" * 64):
                data = {"reason": "forged"} | ({"csrf": token} if token else {})
                r = http.post(f"{live.url}/operator/devices/{ws.device_id}/revoke", data=data)
                assert r.status_code == 403
                assert "nothing was revoked" in r.text
            with live.state.sessions() as s:
                device = s.get(Device, ws.device_id)
                assert device is not None
                assert not device.revoked
            # with the page's own token it works
            page = http.get(f"{live.url}/operator/devices/{ws.device_id}/revoke")
            r = http.post(
                f"{live.url}/operator/devices/{ws.device_id}/revoke",
                data={"reason": "test", "csrf": csrf_of(page.text)},
            )
            assert r.status_code == 303
            with live.state.sessions() as s:
                device = s.get(Device, ws.device_id)
                assert device is not None
                assert device.revoked
        finally:
            ws.close()


def test_a_disabled_admins_session_stops_at_once(live: FleetServer) -> None:
    totp = make_admin(live, "gone-admin")
    with httpx.Client() as http:
        assert sign_in(live, http, "gone-admin", totp.now()).status_code == 303
        assert http.get(f"{live.url}/operator/fleet").status_code == 200
        with live.state.sessions() as s:
            admins.disable(s, "gone-admin")
        r = http.get(f"{live.url}/operator/fleet")
        assert r.status_code == 303


def test_malformed_forms_are_refused_not_crashed(live: FleetServer) -> None:
    many = "&".join(f"f{i}=1" for i in range(50))
    for body in (many, "%ff%fe=\x00", "x" * 20000):
        r = httpx.post(
            f"{live.url}/operator/sign-in",
            content=body,
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert r.status_code == 400, body[:20]
        assert "sign in again" in r.text


HOSTILE = "<script>alert(1)</script>"
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"


def test_hostile_values_are_escaped_and_no_inline_script_is_allowed(live: FleetServer) -> None:
    """A device label (enrolment), an OS string (status report) and a security alert's detail
    come from workstations: each holding a script tag appears escaped on the pages, and the
    Content-Security-Policy would refuse an inline script that slipped through."""
    ws = live.workstation(f"ward-{HOSTILE}")
    try:
        report = {"app_version": "1.4.2", "os": f"Windows-{HOSTILE}", "queue_length": 0}
        r = ws.http.post("/devices/status", json=report)
        assert r.status_code == 204, r.text
        with live.state.sessions() as s:
            s.add(SecurityAlert(device_id=ws.device_id, code="audit_fork", detail={"why": HOSTILE}))
            s.commit()
        totp = make_admin(live, "escape-admin")
        with httpx.Client() as http:
            assert sign_in(live, http, "escape-admin", totp.now()).status_code == 303
            fleet_page = http.get(f"{live.url}/operator/fleet", params={"q": ws.device_id})
            alerts_page = http.get(f"{live.url}/operator/alerts")
        assert f"ward-{ESCAPED}" in fleet_page.text  # the label
        assert f"Windows-{ESCAPED}" in fleet_page.text  # the OS
        assert ESCAPED in alerts_page.text  # the alert's detail
        for page in (fleet_page, alerts_page):
            assert page.status_code == 200
            assert "<script" not in page.text.lower()
            csp = page.headers["content-security-policy"]
            directives = {d.split()[0]: d.split()[1:] for d in csp.split(";") if d.strip()}
            assert directives["default-src"] == ["'none'"]
            for name in ("script-src", "script-src-elem", "script-src-attr"):
                assert "'unsafe-inline'" not in directives.get(name, [])
    finally:
        ws.close()


# --- charts ----------------------------------------------------------------------------------

MIN, HOUR, DAY = 60, 3600, 86400
BULK_NEVER = fleet.MAX_PAGE  # with these the fleet outgrows the sync table: charts count all
# device id: (revoked, server's last batch, workstation's reported sync, queue, app version);
# ages in seconds; None = never / no value; a version of None = no status row at all
SEEDED: dict[str, tuple[bool, int | None, int | None, int | None, str | None]] = {
    "a0": (False, 5 * MIN, None, 0, "1.9.3"),
    "a1": (False, 5 * MIN, None, 0, "1.9.3"),
    "a2": (False, None, 5 * MIN, 5, "1.9.3"),
    "b0": (False, 30 * MIN, None, 50, "1.9.3"),
    "b1": (False, None, 30 * MIN, 500, "1.9.2"),
    "c0": (False, 3 * HOUR, 10 * DAY, 5000, "1.9.2"),  # the later of the two counts
    "d0": (False, 10 * DAY, 12 * HOUR, None, HOSTILE),
    "e0": (False, 3 * DAY, None, None, HOSTILE),
    "e1": (False, 2 * DAY, None, None, "2.0.0"),
    "f0": (False, 30 * DAY, None, None, "2.0.1"),
    "g0": (False, None, None, None, "2.0.2"),
    "g1": (False, None, None, None, "2.0.3"),
    "g2": (False, None, None, None, "2.0.4"),
    "h0": (False, None, None, None, "2.0.5"),
    "h1": (False, None, None, None, "2.0.6"),
    **{f"r{i}": (True, 5 * MIN, None, 0, "9.9.9") for i in range(4)},  # revoked: not counted
    **{f"n{i:03}": (False, None, None, None, None) for i in range(BULK_NEVER)},
}
ACTIVE = sum(not spec[0] for spec in SEEDED.values())
SYNC_EXPECTED = [
    ("< 15 min", 3, False),
    ("15 min – 1 h", 2, False),
    ("1 – 6 h", 1, False),
    ("6 – 24 h", 1, False),
    ("1 – 7 days", 2, True),
    ("> 7 days", 1, True),
    ("never", 5 + BULK_NEVER, True),
]
QUEUE_EXPECTED = [
    ("0", 2, False),
    ("1 – 10", 1, False),
    ("11 – 100", 1, False),
    ("101 – 1000", 1, False),
    ("> 1000", 1, False),
    ("unknown", 9 + BULK_NEVER, False),
]
VERSIONS_EXPECTED = [  # top 8 by count (ties by name), the other 2 together, then no report
    ("1.9.3", 4, False),
    ("1.9.2", 2, False),
    (HOSTILE, 2, False),  # escaped on the page (asserted below), read back unescaped
    *[(f"2.0.{i}", 1, False) for i in range(5)],
    ("(other)", 2, False),
    ("(not reported)", BULK_NEVER, False),
]


def _seed_fleet(live: FleetServer) -> None:
    now = utcnow()

    def ago(seconds: int | None) -> Any:
        return None if seconds is None else now - timedelta(seconds=seconds)

    with live.state.sessions() as s:
        for device_id, (revoked, server, *_status) in SEEDED.items():
            s.add(
                Device(
                    device_id=device_id,
                    secret_hash="0" * 64,
                    label=f"chart-{device_id}",
                    revoked=revoked,
                    last_sync_at=ago(server),
                )
            )
        s.flush()
        for device_id, (_r, _s, reported, queue, version) in SEEDED.items():
            if version is not None:
                s.add(
                    DeviceStatus(
                        device_id=device_id,
                        app_version=version,
                        reported_sync_at=ago(reported),
                        queue_length=queue,
                        last_seen_at=now,
                    )
                )
        s.commit()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def fleet_live(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FleetServer]:
    """A backend of its own holding only the seeded fleet, so every count is known exactly;
    on SQLite and on PostgreSQL (the production database: its GROUP BY rules are stricter)."""
    data = tmp_path_factory.mktemp(f"operator-charts-{request.param}")
    if request.param == "sqlite":
        srv = FleetServer(base_settings(data), with_keys=False)
        srv.start()
        _seed_fleet(srv)
        yield srv
        srv.stop()
        return
    reason = pg.unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    with pg.postgres_server() as url:
        srv = FleetServer(base_settings(data, db_url=url), with_keys=False)
        srv.start()
        try:
            _seed_fleet(srv)
            yield srv
        finally:
            srv.stop()


def test_sync_chart_counts_every_active_device_by_the_age_of_its_last_sync(
    fleet_live: FleetServer,
) -> None:
    with signed_in_client(fleet_live, "chart-admin") as http:
        page = http.get(f"{fleet_live.url}/operator/sync")
    assert_csp_holds(page)
    assert bars(page.text, "sync-ages") == SYNC_EXPECTED
    assert bars(page.text, "queue-lengths") == QUEUE_EXPECTED
    assert sum(n for _l, n, _w in SYNC_EXPECTED) == ACTIVE
    # the table stops at fleet.MAX_PAGE rows; the charts above counted past it
    assert f"{ACTIVE} active workstations" in page.text
    assert len(re.findall(r"<tr [^>]*data-device=", page.text)) == fleet.MAX_PAGE < ACTIVE
    assert "9.9.9" not in page.text  # revoked devices are in neither


def test_fleet_page_charts_app_versions_top_8_and_other(fleet_live: FleetServer) -> None:
    with signed_in_client(fleet_live, "version-admin") as http:
        page = http.get(f"{fleet_live.url}/operator/fleet", params={"q": "a0"})
    assert_csp_holds(page)
    # the chart counts the whole active fleet, whatever the table's filter
    assert bars(page.text, "app-versions") == VERSIONS_EXPECTED
    assert len(re.findall(r"<tr [^>]*data-device=", page.text)) == 1
    assert HOSTILE not in page.text  # a workstation's version string, escaped in the SVG
    assert "9.9.9" not in page.text


# --- rollouts --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rollout_live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FleetServer]:
    """A backend of its own (with signing keys, for the catalogue): these tests count the
    rollouts and the statements the pages run."""
    srv = FleetServer(base_settings(tmp_path_factory.mktemp("operator-rollouts")))
    srv.start()
    yield srv
    srv.stop()


class Statements:
    """The SQL statements the live server runs while in the ``with`` block (a real engine
    event on the server's own engine: the server runs in a thread of this process)."""

    def __init__(self, live: FleetServer) -> None:
        self.engine, self.seen = live.state.engine, list[str]()

    def _record(self, _conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        self.seen.append(statement)

    def __enter__(self) -> Statements:
        event.listen(self.engine, "before_cursor_execute", self._record)
        return self

    def __exit__(self, *_exc: object) -> None:
        event.remove(self.engine, "before_cursor_execute", self._record)

    def reading(self, table: str) -> list[str]:
        return [s for s in self.seen if re.search(rf"\b{table}\b", s)]


def _results_shown(html: str) -> int:
    return sum(int(n) for n in re.findall(r'<td class="num n-results">(\d+)</td>', html))


def test_list_page_computes_no_report_for_a_closed_rollout(
    rollout_live: FleetServer, tmp_path: Path
) -> None:
    rollout_id = rollout_with_results(rollout_live, tmp_path)
    with rollout_live.state.sessions() as s:
        catalogue.close_rollout(s, rollout_live.state.repo, rollout_id, "candidate", "it")
    with signed_in_client(rollout_live, "closed-admin") as http:
        with Statements(rollout_live) as listed:
            page = http.get(f"{rollout_live.url}/operator/rollouts")
        with Statements(rollout_live) as detailed:
            detail = http.get(f"{rollout_live.url}/operator/rollouts/{rollout_id}")
    assert_csp_holds(page)
    # listed: its row, its arms and its times, a link to its page; no report
    row = re.search(rf'<tr data-rollout="{rollout_id}" class="promoted">.*?</tr>', page.text, re.S)
    assert row, page.text
    assert f'href="/operator/rollouts/{rollout_id}"' in row.group(0)
    assert "baseline 1.0" in row.group(0)
    assert "candidate 2.0" in row.group(0)
    assert row.group(0).count(" UTC") == 2  # created and closed; never paused
    assert f'id="rollout-{rollout_id}"' not in page.text
    assert _results_shown(page.text) == 0
    assert "rollout-plot" not in page.text
    assert listed.reading("results") == []  # the report's aggregate never ran
    # its own page: the full report of all 36 results
    assert_csp_holds(detail)
    assert f'id="rollout-{rollout_id}"' in detail.text
    assert _results_shown(detail.text) == 36
    assert "svg" in detail.text
    assert 'class="rollout-plot"' in detail.text
    assert "candidate vs baseline" in detail.text
    assert detailed.reading("results") != []
    # viewing is not a look of the sequential test
    assert not any("rollout_events" in s and "INSERT" in s for s in detailed.seen)


def test_list_page_reports_only_the_5_newest_open_rollouts(rollout_live: FleetServer) -> None:
    with rollout_live.state.sessions() as s:
        made = [
            Rollout(
                model_id=f"open-model-{i}",
                baseline_version="1.0",
                candidate_version="2.0",
                split=0.5,
                status="paused" if i % 2 else "active",
                paused_at=utcnow() if i % 2 else None,
            )
            for i in range(6)
        ]
        s.add_all(made)
        s.flush()
        for ro in made:
            s.add(
                RolloutArm(rollout_id=ro.id, name="baseline", version="1.0", weight=0.5, position=0)
            )
            s.add(
                RolloutArm(
                    rollout_id=ro.id, name="candidate", version="2.0", weight=0.5, position=1
                )
            )
        s.commit()
        ids = [ro.id for ro in made]
    with signed_in_client(rollout_live, "open-admin") as http:
        page = http.get(f"{rollout_live.url}/operator/rollouts")
        oldest = http.get(f"{rollout_live.url}/operator/rollouts/{ids[0]}")
    assert_csp_holds(page)
    reported = [
        int(i) for i in re.findall(r'<section class="rollout" id="rollout-(\d+)"', page.text)
    ]
    assert reported == ids[:0:-1]  # newest first, the oldest open one left to its own page
    for rollout_id in ids:
        assert f'<tr data-rollout="{rollout_id}"' in page.text
    assert_csp_holds(oldest)
    assert f'id="rollout-{ids[0]}"' in oldest.text
    assert 'class="report"' in oldest.text
    assert "report unavailable" not in page.text + oldest.text


def test_unknown_rollout_is_a_404_page(rollout_live: FleetServer) -> None:
    with signed_in_client(rollout_live, "missing-admin") as http:
        for rollout_id in ("987654", "0", "-1", "x", "1e3", "9" * 40):
            r = http.get(f"{rollout_live.url}/operator/rollouts/{rollout_id}")
            assert r.status_code == 404, (rollout_id, r.text[:200])
            assert "No rollout" in r.text
            assert r.headers["content-security-policy"].startswith("default-src 'none'")
