"""The operator's web page (issue 19) against a live backend: sign-in with password + TOTP, the
session cookie's flags, CSRF, the Content-Security-Policy, and no page without a session.

The browser walk-through is in test_operator_browser.py; these checks speak HTTP directly.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import httpx
import pyotp
import pytest

from backend import admins
from backend.db import Device, SecurityAlert
from tests.backend.conftest import base_settings
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


def test_no_page_without_a_session(live: FleetServer) -> None:
    ws = live.workstation("nosession")
    device_cookie = ws.tokens["access_token"]
    pwd_only = live.state.tokens.access("it", role="admin", amr=["pwd"])
    try:
        for cookie in (None, device_cookie, pwd_only, "garbage"):
            cookies = {"doctorai_operator": cookie} if cookie else None
            with httpx.Client(cookies=cookies) as http:
                for page in PAGES:
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
