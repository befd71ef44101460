"""The sync pass use case, headless, against a live backend on 127.0.0.1: it enrols with IT's
code on the first pass, sends a recorded run and its decision, keeps the last success in the
encrypted store, stops on request, and a pass never raises."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.app.results import StoredResults
from core.app.sync import SyncSession, load_last_success
from core.app.workstation import Workstation
from core.config import Settings, SyncSettings
from core.security.users import Role
from core.store.outbox import StoreOutbox
from core.sync.engine import BackoffPolicy
from tests.backend.conftest import LiveServer, base_settings

PASSWORD = "correct horse battery"
FAST = BackoffPolicy(base_s=0.02, cap_s=0.1, max_attempts=2)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    live = LiveServer(base_settings(tmp_path_factory.mktemp("backend"))).start()
    yield live
    live.stop()


@pytest.fixture
def ws(tmp_path: Path) -> Iterator[Workstation]:
    workstation = Workstation.open(tmp_path / "ws.db")
    workstation.users.create_user("admin", PASSWORD, Role.ADMIN, by="test")
    workstation.users.create_user("rad", PASSWORD, Role.RADIOLOGIST, by="admin")
    workstation.session.login("rad", PASSWORD)
    yield workstation
    workstation.close()


def _result() -> dict:
    return {
        "result_id": str(uuid.uuid4()),
        "model": {"id": "chest-xray-pneumonia", "version": "1.0.0"},
        "labels": ["normal", "pneumonia"],
        "decisions": ["pneumonia"],
        "provenance": {
            "created_at": "2026-12-01T10:00:00+00:00",
            "timings_ms": {"x": 5.0},
            "inputs": [
                {
                    "sop_instance_uid": "1.2.3",
                    "study_instance_uid": "1.2",
                    "series_instance_uid": "1.2.4",
                    "patient_id": "P1",
                }
            ],
        },
    }


def test_a_pass_enrols_sends_and_keeps_the_last_success(
    ws: Workstation, server: LiveServer
) -> None:
    results = StoredResults(ws)
    made = _result()
    results.record(made)
    results.decide(made["result_id"], "rejected")
    settings = Settings(
        sync=SyncSettings(server_url=server.url, enrolment_code=server.enrol_code())
    )
    session = SyncSession(ws, settings, backoff=FAST, model_check_s=3600)
    try:
        outcome = session.run_pass()
    finally:
        session.close()
    assert outcome.report is not None
    assert outcome.report.ok
    assert StoreOutbox(ws.db).count_unsent() == 0
    assert load_last_success(ws) == session.status.snapshot.last_success is not None
    from backend.db import Result

    with server.state.sessions() as s:
        row = s.query(Result).filter_by(client_id=made["result_id"]).one()
    assert row.decision == "rejected"  # made, then the decision followed under the same id
    assert session.passes == 1
    # the first pass also told IT's fleet view what this workstation runs
    from backend.db import DeviceStatus
    from core.app.sync import installed_model_versions

    with server.state.sessions() as s:
        (status,) = s.query(DeviceStatus).filter(DeviceStatus.reported_at.is_not(None)).all()
    assert status.app_version
    assert status.queue_length == 0
    assert status.models == installed_model_versions()
    assert status.models["chest-xray-pneumonia"]


def test_a_pass_never_raises_and_stops_on_request(ws: Workstation) -> None:
    with socket.socket() as s:  # nobody listens: the server is down
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    StoredResults(ws).record(_result())
    queued = StoreOutbox(ws.db).count_unsent()
    session = SyncSession(
        ws,
        Settings(sync=SyncSettings(server_url=dead, enrolment_code="XXXX-XXXX")),
        backoff=FAST,
        model_check_s=3600,
    )
    try:
        outcome = session.run_pass()  # enrolment cannot reach the server: said, not raised
        assert outcome.report is None
        assert session.status.snapshot.state == "error"
        assert "sync failed" in (session.status.snapshot.last_error or "")
        session.request_stop()
        assert session.run_pass().stopped
    finally:
        session.close()
    assert StoreOutbox(ws.db).count_unsent() == queued  # nothing lost
