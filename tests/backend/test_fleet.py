"""The fleet view (issue 19): device status reports, the admin device list, revocation.

Against live servers on 127.0.0.1: a workstation's real SyncClient reports its status, the admin
list filters/sorts/pages it, and a revoked device's unexpired access token is refused on the very
next request, also by a second backend process on the same PostgreSQL.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from backend import fleet
from backend.app import build_state
from backend.auth import issue_enrol_code
from backend.db import DeviceStatus, SecurityAlert
from core.sync.client import SyncClient
from core.sync.credentials import CredentialStore
from core.sync.errors import AuthFailedError
from core.sync.status_report import STATUS_URL, build_report, send
from core.sync.wire import API_PREFIX
from tests.backend import pg
from tests.backend.conftest import LiveServer, Workstation, base_settings, result_item
from tests.backend.fleet_serve import FleetServer

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FleetServer]:
    srv = FleetServer(base_settings(tmp_path_factory.mktemp("fleet")), with_keys=False)
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture
def ws(live: FleetServer) -> Iterator[Workstation]:
    w = live.workstation()
    yield w
    w.close()


def _status(ws: Workstation, **fields: object) -> httpx.Response:
    body = {"app_version": "1.4.2", "os": "Windows-11", "queue_length": 3, "models": {}}
    return ws.http.post(STATUS_URL.removeprefix(API_PREFIX), json={**body, **fields})


def _devices(srv: LiveServer, **params: Any) -> dict[str, Any]:
    r = httpx.get(f"{srv.api}/admin/devices", params=params, headers=srv.admin_headers())
    assert r.status_code == 200, r.text
    out: dict[str, Any] = r.json()
    return out


def test_the_workstation_sync_client_reports_its_status(live: FleetServer) -> None:
    """The real SyncClient (keyring credentials, token handling) sends core.sync's report."""
    client = SyncClient(live.url, CredentialStore(live.url))
    try:
        creds = client.enrol(live.enrol_code(), "reading-room-3")
        synced = datetime.now(UTC) - timedelta(minutes=5)
        report = build_report(7, {"chest-xray-pneumonia": "1.1.0"}, synced)
        send(client, report)
    finally:
        client.close()
    page = _devices(live, q="reading-room-3")
    assert page["total"] == 1
    row = page["items"][0]
    assert row["device_id"] == creds.device_id
    assert row["app_version"] == report.app_version
    assert row["os"] == report.os
    assert row["os"]
    assert row["queue_length"] == 7
    assert row["models"] == {"chest-xray-pneumonia": "1.1.0"}
    assert datetime.fromisoformat(row["reported_sync_at"]) == synced
    assert datetime.fromisoformat(row["last_sync_at"]) == synced  # no audit batch stored yet
    assert row["server_sync_at"] is None
    seen = datetime.fromisoformat(row["last_seen_at"])
    assert abs((datetime.now(UTC) - seen).total_seconds()) < 60


def test_bad_status_reports_are_refused_with_the_field_named(live: FleetServer) -> None:
    ws = live.workstation("bad-status")
    try:
        for bad, field in (
            ({"queue_length": -1}, "queue_length"),
            ({"unknown": 1}, "unknown"),
            ({"models": {"x y": "1"}}, "models"),
            ({"app_version": ""}, "app_version"),
        ):
            r = _status(ws, **bad)
            assert r.status_code == 422, (bad, r.text)
            assert field in r.text
        # an admin token is not a device token
        r = httpx.post(f"{live.api}/devices/status", json={}, headers=live.admin_headers())
        assert r.status_code in (403, 422)
    finally:
        ws.close()


def test_a_late_older_report_does_not_replace_a_newer_one(live: FleetServer) -> None:
    ws = live.workstation("late-report")
    try:
        now = datetime.now(UTC)
        assert _status(ws, queue_length=1, reported_at=now.isoformat()).status_code == 204
        old = (now - timedelta(minutes=1)).isoformat()
        assert _status(ws, queue_length=99, reported_at=old).status_code == 204
        row = _devices(live, q=ws.device_id)["items"][0]
        assert row["queue_length"] == 1
    finally:
        ws.close()


def test_list_filters_sorts_and_pages(live: FleetServer) -> None:
    tag = uuid.uuid4().hex[:6]
    made = []
    for i, queue in enumerate((5, 50, 0, 12)):
        ws = live.workstation(f"list-{tag}-{i}")
        assert _status(ws, queue_length=queue, app_version=f"2.{i % 2}").status_code == 204
        made.append((ws.device_id, queue))
        ws.close()
    by_queue = _devices(live, q=f"list-{tag}", sort="queue_length", order="desc")
    assert by_queue["total"] == 4
    assert [d["queue_length"] for d in by_queue["items"]] == [50, 12, 5, 0]
    first = _devices(live, q=f"list-{tag}", sort="label", limit=3, offset=0)
    rest = _devices(live, q=f"list-{tag}", sort="label", limit=3, offset=3)
    labels = [d["label"] for d in [*first["items"], *rest["items"]]]
    assert labels == [f"list-{tag}-{i}" for i in range(4)]
    assert first["total"] == rest["total"] == 4
    assert _devices(live, q=f"list-{tag}", app_version="2.1")["total"] == 2
    # stale: make one not seen for two days
    with live.state.sessions() as s:
        s.execute(
            update(DeviceStatus)
            .where(DeviceStatus.device_id == made[0][0])
            .values(last_seen_at=datetime.now(UTC) - timedelta(days=2))
        )
        s.commit()
    stale = _devices(live, q=f"list-{tag}", stale_after_s=86400)
    assert [d["device_id"] for d in stale["items"]] == [made[0][0]]
    r = httpx.get(
        f"{live.api}/admin/devices", params={"sort": "secret_hash"}, headers=live.admin_headers()
    )
    assert r.status_code == 422
    assert "secret_hash" in r.json()["error"]["message"]


def test_last_sync_is_the_later_of_server_and_report_and_sorts_so(live: FleetServer) -> None:
    tag = uuid.uuid4().hex[:6]
    now = datetime.now(UTC)
    a, b, c = (live.workstation(f"sync-{tag}-{n}") for n in "abc")
    try:
        hour_ago = (now - timedelta(hours=1)).isoformat()
        assert _status(a, last_sync_at=hour_ago).status_code == 204
        old = (now - timedelta(hours=3)).isoformat()
        assert _status(b, last_sync_at=old).status_code == 204
        assert b.post("/audit-events:batch", {"events": b.make_events(2)}).status_code == 200
        desc = _devices(live, q=f"sync-{tag}", sort="last_sync_at", order="desc")["items"]
        assert [d["label"][-1] for d in desc] == ["b", "a", "c"]
        asc = _devices(live, q=f"sync-{tag}", sort="last_sync_at", order="asc")["items"]
        assert [d["label"][-1] for d in asc] == ["c", "a", "b"]
        b_row = desc[0]
        assert b_row["server_sync_at"] is not None
        assert b_row["last_sync_at"] == b_row["server_sync_at"]
        assert datetime.fromisoformat(desc[1]["last_sync_at"]) == now - timedelta(hours=1)
        assert desc[2]["last_sync_at"] is None
    finally:
        for w in (a, b, c):
            w.close()


def test_the_device_list_needs_an_admin_with_a_second_factor(
    live: FleetServer, ws: Workstation
) -> None:
    assert httpx.get(f"{live.api}/admin/devices").status_code == 401
    r = ws.http.get("/admin/devices")
    assert r.status_code == 403
    pwd_only = live.state.tokens.access("it", role="admin", amr=["pwd"])
    r = httpx.get(f"{live.api}/admin/devices", headers={"Authorization": f"Bearer {pwd_only}"})
    assert r.status_code == 403


def test_revoke_refuses_the_unexpired_access_token_at_once_and_is_audited(
    live: FleetServer,
) -> None:
    ws = live.workstation("to-revoke")
    try:
        assert ws.post("/results:batch", {"items": [result_item()]}).status_code == 200
        r = httpx.post(
            f"{live.api}/admin/devices/{ws.device_id}/revoke",
            json={"reason": "stolen laptop"},
            headers=live.admin_headers(),
        )
        assert r.status_code == 200, r.text
        assert r.json()["revoked"] is True
        # the same, unexpired access token: refused on the very next request
        r = ws.post("/results:batch", {"items": [result_item()]})
        assert r.status_code == 401, r.text
        assert r.json()["error"]["code"] == "device_revoked"
        assert ws.http.get("/models").status_code == 401
        assert _status(ws).status_code == 401
        # and no new tokens: login and refresh say revoked
        login = ws.http.post("/token", json={"device_id": ws.device_id, "device_secret": ws.secret})
        assert login.json()["error"]["code"] == "device_revoked"
        refresh = ws.http.post("/token/refresh", json={"refresh_token": ws.tokens["refresh_token"]})
        assert refresh.json()["error"]["code"] == "device_revoked"
        # audited: which admin, when, why
        with live.state.sessions() as s:
            alert = s.scalars(
                select(SecurityAlert).where(
                    SecurityAlert.device_id == ws.device_id, SecurityAlert.code == "device_revoked"
                )
            ).one()
        assert alert.detail["admin"] == "test-admin"
        assert alert.detail["reason"] == "stolen laptop"
        assert alert.created_at is not None
        again = httpx.post(
            f"{live.api}/admin/devices/{ws.device_id}/revoke",
            json={"reason": "again"},
            headers=live.admin_headers(),
        )
        assert again.status_code == 409
    finally:
        ws.close()


def test_revoke_refusals_name_the_reason(live: FleetServer, ws: Workstation) -> None:
    h = live.admin_headers()
    r = httpx.post(f"{live.api}/admin/devices/nope/revoke", json={"reason": "x"}, headers=h)
    assert r.status_code == 404
    assert "nope" in r.json()["error"]["message"]
    r = httpx.post(f"{live.api}/admin/devices/{ws.device_id}/revoke", json={}, headers=h)
    assert r.status_code == 422
    r = httpx.post(
        f"{live.api}/admin/devices/{ws.device_id}/revoke", json={"reason": "  "}, headers=h
    )
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "reason_required"
    assert ws.post("/results:batch", {"items": [result_item()]}).status_code == 200


def test_the_sync_client_is_told_to_re_enrol_after_revoke(live: FleetServer) -> None:
    client = SyncClient(live.url, CredentialStore(live.url))
    try:
        creds = client.enrol(live.enrol_code(), "client-revoked")
        send(client, build_report(0, {}, None))
        with live.state.sessions() as s:
            fleet.revoke(s, creds.device_id, "it", "decommissioned")
        with pytest.raises(AuthFailedError, match="re-enrol"):
            send(client, build_report(0, {}, None))
    finally:
        client.close()


def test_last_seen_is_written_at_most_once_per_resolution(live: FleetServer) -> None:
    ws = live.workstation("seen")
    try:
        assert ws.http.get("/models").status_code == 200
        with live.state.sessions() as s:
            first = s.get(DeviceStatus, ws.device_id)
            assert first is not None
            assert first.last_seen_at is not None
            t1 = first.last_seen_at
        assert ws.http.get("/models").status_code == 200
        with live.state.sessions() as s:
            row = s.get(DeviceStatus, ws.device_id)
            assert row is not None
            assert row.last_seen_at == t1
            row.last_seen_at = t1 - timedelta(seconds=fleet.SEEN_RESOLUTION_S + 1)
            s.commit()
        assert ws.http.get("/models").status_code == 200
        with live.state.sessions() as s:
            row = s.get(DeviceStatus, ws.device_id)
            assert row is not None
            assert row.last_seen_at is not None
            assert row.last_seen_at > t1 - timedelta(seconds=1)
    finally:
        ws.close()


# --- two processes on one PostgreSQL ---------------------------------------------------------

_pg_reason = pg.unavailable_reason()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.skipif(_pg_reason is not None, reason=_pg_reason or "")
def test_revoke_on_one_process_is_refused_by_the_other_at_once(tmp_path: Path) -> None:
    secret = "fleet-two-" + uuid.uuid4().hex
    with pg.postgres_server() as db_url:
        env = {
            **os.environ,
            "DOCTORAI_BACKEND_JWT_SECRET": secret,
            "DOCTORAI_BACKEND_RATE_PER_S": "10000",
            "DOCTORAI_BACKEND_RATE_BURST": "10000",
        }
        view = build_state(base_settings(tmp_path / "view", db_url=db_url, jwt_secret=secret))
        ports = [_free_port(), _free_port()]
        procs = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "tests.backend.fleet_serve",
                    str(tmp_path / f"p{i}"),
                    db_url,
                    str(port),
                ],
                cwd=ROOT,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for i, port in enumerate(ports)
        ]
        try:
            urls = [f"http://127.0.0.1:{p}" for p in ports]
            for url, proc in zip(urls, procs, strict=True):
                deadline = time.monotonic() + 60
                while True:
                    try:
                        if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                            break
                    except httpx.TransportError:
                        pass
                    assert proc.poll() is None, f"backend process on {url} exited"
                    assert time.monotonic() < deadline, f"backend process on {url} did not start"
                    time.sleep(0.1)
            with view.sessions() as s:
                code = issue_enrol_code(s)
            a, b = (httpx.Client(base_url=u + API_PREFIX, timeout=30) for u in urls)
            enrolled = a.post("/enrol", json={"code": code, "label": "two"}).json()
            tokens = a.post("/token", json=enrolled).json()
            auth = {"Authorization": f"Bearer {tokens['access_token']}"}
            for c in (a, b):  # both processes know the device as active (and any cache warm)
                assert c.get("/models", headers=auth).status_code == 200
            admin = view.tokens.access("it-admin", role="admin", amr=["pwd", "otp"])
            r = a.post(
                f"/admin/devices/{enrolled['device_id']}/revoke",
                json={"reason": "left the hospital"},
                headers={"Authorization": f"Bearer {admin}"},
            )
            assert r.status_code == 200, r.text
            for c in (b, a):
                r = c.post(
                    "/results:batch",
                    json={"items": [result_item()]},
                    headers={**auth, "Idempotency-Key": uuid.uuid4().hex},
                )
                assert r.status_code == 401, r.text
                assert r.json()["error"]["code"] == "device_revoked"
            a.close()
            b.close()
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
            view.engine.dispose()
