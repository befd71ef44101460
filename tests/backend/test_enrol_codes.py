"""Enrolment codes IT can use on N machines until an expiry (issue 19, fleet and operations):
issued by an admin, each use a device of its own, the N+1th refused, every use listed."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select, update

from backend.auth import sha256_hex
from backend.db import Device, EnrolCode, Enrolment, utcnow
from tests.backend import pg
from tests.backend.conftest import LiveServer, Workstation
from tests.backend.two_process import Fleet, backend_processes

_pg_reason = pg.unavailable_reason()


def _enrol(api: str, code: str, label: str, nonce: str | None = None) -> httpx.Response:
    body = {"code": code, "label": label, "nonce": nonce or secrets.token_urlsafe(32)}
    return httpx.post(f"{api}/enrol", json=body, timeout=30)


def _issue(server: LiveServer, **body: object) -> httpx.Response:
    return httpx.post(
        f"{server.api}/admin/enrol-codes", json=body, headers=server.admin_headers(), timeout=30
    )


def test_a_code_for_three_machines(server: LiveServer) -> None:
    issued = _issue(server, uses=3, days=2, note="ward 4 machine-wide config")
    assert issued.status_code == 200, issued.text
    code = issued.json()["code"]
    assert issued.json()["uses"] == 3
    nonces = [secrets.token_urlsafe(32) for _ in range(4)]
    made = [_enrol(server.api, code, f"ward4-{i}", nonces[i]) for i in range(2)]
    with server.state.sessions() as s:  # not used up yet: retention must keep it
        row = s.get(EnrolCode, sha256_hex(code))
        assert row is not None
        assert row.uses == 2
        assert row.used_at is None
    made.append(_enrol(server.api, code, "ward4-2", nonces[2]))
    assert [r.status_code for r in made] == [200, 200, 200], [r.text for r in made]
    with server.state.sessions() as s:
        row = s.get(EnrolCode, sha256_hex(code))
        assert row is not None
        assert row.used_at is not None  # used up now
    devices = [r.json()["device_id"] for r in made]
    assert len(set(devices)) == 3
    fourth = _enrol(server.api, code, "ward4-3", nonces[3])
    assert fourth.status_code == 401
    assert fourth.json()["error"]["code"] == "enrol_code_used"
    assert "all 3 workstations" in fourth.json()["error"]["message"]
    # a lost answer of the second machine: its retry still gets its own credentials
    again = _enrol(server.api, code, "ward4-1", nonces[1])
    assert again.status_code == 200, again.text
    assert again.json() == made[1].json()

    listed = httpx.get(f"{server.api}/admin/enrol-codes", headers=server.admin_headers())
    assert listed.status_code == 200, listed.text
    (listed_row,) = [c for c in listed.json() if c["code_id"] == issued.json()["code_id"]]
    assert listed_row["uses"] == 3
    assert listed_row["max_uses"] == 3
    assert listed_row["note"] == "ward 4 machine-wide config"
    assert [d["device_id"] for d in listed_row["devices"]] == devices
    assert code not in listed.text  # only its id, never the code


def test_an_expired_multi_use_code_is_refused(server: LiveServer) -> None:
    code = _issue(server, uses=5, days=1).json()["code"]
    assert _enrol(server.api, code, "early").status_code == 200
    with server.state.sessions() as s:
        s.execute(
            update(EnrolCode)
            .where(EnrolCode.code_hash == sha256_hex(code))
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
        s.commit()
    late = _enrol(server.api, code, "late")
    assert late.status_code == 401
    assert late.json()["error"]["code"] == "enrol_code_expired"


def test_only_admins_issue_codes_and_bad_requests_are_refused(
    server: LiveServer, ws: Workstation
) -> None:
    r = httpx.post(
        f"{server.api}/admin/enrol-codes",
        json={"uses": 2},
        headers={"Authorization": ws.http.headers["Authorization"]},
    )
    assert r.status_code == 403
    assert httpx.post(f"{server.api}/admin/enrol-codes", json={"uses": 2}).status_code == 401
    for bad in ({"uses": 0}, {"uses": 10**9}, {"days": 0}, {"days": 1, "bogus": 1}):
        r = _issue(server, **bad)
        assert r.status_code == 422, (bad, r.text)


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    if _pg_reason is not None:
        pytest.skip(_pg_reason)
    with backend_processes(tmp_path_factory.mktemp("codes")) as f:
        yield f


def test_twenty_machines_racing_for_fifteen_uses_on_two_processes(
    fleet: Fleet, tmp_path: Path
) -> None:
    with fleet.state.sessions() as s:
        from backend.auth import issue_enrol_code

        code = issue_enrol_code(s, uses=15)
    barrier = threading.Barrier(20)
    out: list[httpx.Response] = []
    lock = threading.Lock()

    def go(i: int) -> None:
        barrier.wait()
        r = _enrol(fleet.api(i % 2), code, f"race-{i}")
        with lock:
            out.append(r)

    threads = [threading.Thread(target=go, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    codes = sorted(r.status_code for r in out)
    assert codes == [200] * 15 + [401] * 5, [r.text for r in out if r.status_code != 200]
    with fleet.state.sessions() as s:
        row = s.get(EnrolCode, sha256_hex(code))
        assert row is not None
        assert row.uses == 15
        n_devices = s.scalar(
            select(func.count()).select_from(Device).where(Device.label.like("race-%"))
        )
        n_uses = s.scalar(
            select(func.count()).select_from(Enrolment).where(Enrolment.code_hash == row.code_hash)
        )
    assert n_devices == n_uses == 15
