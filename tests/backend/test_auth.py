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
