"""Enrolment, tokens and role checks against a live server."""

from __future__ import annotations

import threading

import httpx

from backend.db import Result
from tests.backend.conftest import LiveServer, Workstation, result_item


def test_enrolment_code_works_once(server: LiveServer) -> None:
    code = server.enrol_code()
    first = httpx.post(f"{server.api}/enrol", json={"code": code, "label": "a"})
    assert first.status_code == 200
    assert first.json()["device_id"]
    assert len(first.json()["device_secret"]) >= 32
    again = httpx.post(f"{server.api}/enrol", json={"code": code, "label": "b"})
    assert again.status_code == 401
    assert again.json()["error"]["code"] == "enrol_code_used"
    bogus = httpx.post(f"{server.api}/enrol", json={"code": "NOPE-NOPE", "label": "c"})
    assert bogus.json()["error"]["code"] == "enrol_code_invalid"


def test_wrong_secret_refused(server: LiveServer, ws: Workstation) -> None:
    r = httpx.post(
        f"{server.api}/token", json={"device_id": ws.device_id, "device_secret": "x" * 40}
    )
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "credentials_invalid"


def test_expired_access_token_refused_then_refresh_rotates(
    server: LiveServer, ws: Workstation
) -> None:
    expired = server.state.tokens.access(ws.device_id, ttl_s=-30)
    r = ws.http.get("/models", headers={"Authorization": f"Bearer {expired}"})
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "token_expired"
    assert r.headers["WWW-Authenticate"] == "Bearer"

    old_refresh = ws.tokens["refresh_token"]
    r = ws.http.post("/token/refresh", json={"refresh_token": old_refresh})
    assert r.status_code == 200
    fresh = r.json()
    assert fresh["access_token"] != ws.tokens["access_token"]
    ok = ws.http.get("/models", headers={"Authorization": f"Bearer {fresh['access_token']}"})
    assert ok.status_code == 200
    # rotation: the used refresh token is dead, and an access token is no refresh token
    assert ws.http.post("/token/refresh", json={"refresh_token": old_refresh}).status_code == 401
    r = ws.http.post("/token/refresh", json={"refresh_token": fresh["access_token"]})
    assert r.status_code == 401


def test_no_token_and_tampered_token(server: LiveServer, ws: Workstation) -> None:
    assert httpx.get(f"{server.api}/models").json()["error"]["code"] == "auth_required"
    bad = ws.tokens["access_token"][:-4] + "AAAA"
    r = httpx.get(f"{server.api}/models", headers={"Authorization": f"Bearer {bad}"})
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "token_invalid"


def test_roles_device_vs_admin(server: LiveServer, ws: Workstation) -> None:
    assert ws.http.get("/admin/security-alerts").status_code == 403
    r = httpx.get(f"{server.api}/admin/security-alerts", headers=server.admin_headers())
    assert r.status_code == 200
    # an admin token is not a workstation: it cannot post results as one
    r = httpx.post(
        f"{server.api}/results:batch",
        json={"items": [result_item()]},
        headers={**server.admin_headers(), "Idempotency-Key": "k1"},
    )
    assert r.status_code == 403


def test_device_writes_only_its_own_rows(server: LiveServer) -> None:
    a, b = server.workstation("a"), server.workstation("b")
    item = result_item()
    assert a.post("/results:batch", {"items": [item]}).json()["stored"] == [item["client_id"]]
    # the same client id from another workstation is that workstation's own row, not a duplicate
    assert b.post("/results:batch", {"items": [item]}).json()["stored"] == [item["client_id"]]
    with server.state.sessions() as s:
        owners = {r.device_id for r in s.query(Result).filter_by(client_id=item["client_id"])}
    assert owners == {a.device_id, b.device_id}


def test_racing_enrolments_consume_code_once(server: LiveServer) -> None:
    code = server.enrol_code()
    codes: list[int] = []

    def go() -> None:
        codes.append(httpx.post(f"{server.api}/enrol", json={"code": code}).status_code)

    threads = [threading.Thread(target=go) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(codes) == [200] + [401] * 5


def test_a_reused_refresh_token_revokes_its_whole_family(server: LiveServer) -> None:
    """Issue 15, hole 9: rotate A -> B, present A again: refused, and B (which a thief holding A
    may have got first) is refused too; a new login starts a new family that works."""
    ws = server.workstation("family")
    a = ws.tokens["refresh_token"]
    r = httpx.post(f"{server.api}/token/refresh", json={"refresh_token": a})
    assert r.status_code == 200
    b = r.json()["refresh_token"]

    reused = httpx.post(f"{server.api}/token/refresh", json={"refresh_token": a})
    assert reused.status_code == 401  # 401: the workstation client falls back to a login
    assert reused.json()["error"]["code"] == "refresh_token_reused"
    after = httpx.post(f"{server.api}/token/refresh", json={"refresh_token": b})
    assert after.status_code == 401
    assert after.json()["error"]["code"] == "refresh_token_revoked"

    # the reuse is a Security Alert an admin sees
    alerts = httpx.get(f"{server.api}/admin/security-alerts", headers=server.admin_headers())
    assert any(
        x["device_id"] == ws.device_id and x["code"] == "refresh_token_reused"
        for x in alerts.json()
    )
    # the device itself is not locked out: a login with its secret starts a new family
    ws.login()
    c = ws.tokens["refresh_token"]
    r = httpx.post(f"{server.api}/token/refresh", json={"refresh_token": c})
    assert r.status_code == 200
    d = r.json()["refresh_token"]
    assert httpx.post(f"{server.api}/token/refresh", json={"refresh_token": d}).status_code == 200
    ws.close()


def test_reuse_revokes_only_its_own_family(server: LiveServer) -> None:
    """Two logins of one device are two families: a reuse in one leaves the other working."""
    ws = server.workstation("two-families")
    first = ws.tokens["refresh_token"]
    ws.login()
    other = ws.tokens["refresh_token"]
    nxt = httpx.post(f"{server.api}/token/refresh", json={"refresh_token": first})
    assert nxt.status_code == 200
    assert (
        httpx.post(f"{server.api}/token/refresh", json={"refresh_token": first}).status_code == 401
    )
    r = httpx.post(f"{server.api}/token/refresh", json={"refresh_token": other})
    assert r.status_code == 200
    ws.close()
