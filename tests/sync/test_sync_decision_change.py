"""A changed decision reaches the backend (issue 19, defect 3), end to end: the workstation's
own use cases (core.app.results) and sync pass (core.app.sync) against a live backend.

Accepted, synced, then rejected, synced: the backend holds "rejected" and both decisions in
its history, in order (it once kept "accepted", the second item taken for a duplicate)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from backend.db import Result, ResultDecision
from core.app.results import StoredResults
from core.app.sync import SyncSession
from core.app.workstation import Workstation
from core.config import Settings, SyncSettings
from core.security.users import Role
from core.sync.engine import BackoffPolicy
from tests.backend.conftest import LiveServer, result_item

PASSWORD = "correct horse battery"
FAST = BackoffPolicy(base_s=0.02, cap_s=0.1, max_attempts=2)


@pytest.fixture
def ws(tmp_path: Path) -> Iterator[Workstation]:
    workstation = Workstation.open(tmp_path / "ws.db")
    workstation.users.create_user("admin", PASSWORD, Role.ADMIN, by="test")
    workstation.users.create_user("rad", PASSWORD, Role.RADIOLOGIST, by="admin")
    workstation.session.login("rad", PASSWORD)
    yield workstation
    workstation.close()


def _result() -> dict[str, Any]:
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


def _sync(ws: Workstation, settings: Settings) -> None:
    session = SyncSession(ws, settings, backoff=FAST, model_check_s=3600)
    try:
        outcome = session.run_pass()
    finally:
        session.close()
    assert outcome.report is not None
    assert outcome.report.ok, outcome.report


def _backend_view(server: LiveServer, client_id: str) -> tuple[list[str], list[str]]:
    with server.state.sessions() as s:
        current = list(s.scalars(select(Result.decision).where(Result.client_id == client_id)))
        history = list(
            s.scalars(
                select(ResultDecision.decision)
                .where(ResultDecision.client_id == client_id)
                .order_by(ResultDecision.decided_at, ResultDecision.id)
            )
        )
    return current, history


def test_accepted_synced_then_rejected_synced_ends_rejected(
    ws: Workstation, server: LiveServer
) -> None:
    settings = Settings(
        sync=SyncSettings(server_url=server.url, enrolment_code=server.enrol_code())
    )
    results = StoredResults(ws)
    made = _result()
    rid = made["result_id"]
    results.record(made)
    _sync(ws, settings)
    assert _backend_view(server, rid) == (["none"], [])
    results.decide(rid, "accepted")
    _sync(ws, settings)
    assert _backend_view(server, rid) == (["accepted"], ["accepted"])
    results.decide(rid, "rejected", reason="false-positive")
    _sync(ws, settings)
    assert _backend_view(server, rid) == (["rejected"], ["accepted", "rejected"])
    assert results.latest(rid) == "rejected"  # both ends agree


def test_two_decisions_in_the_same_instant_are_ordered_by_their_sequence(
    server: LiveServer,
) -> None:
    """Two decisions with one decided_at (a coarse clock): the second is not a duplicate,
    and the later in the workstation's sequence is the current one."""
    from tests.backend.conftest import Workstation as WireClient

    wire = WireClient(server, "tie")
    try:
        made = result_item(decision="none")
        when = "2026-12-01T10:05:00+00:00"
        accepted = {**made, "decision": "accepted", "decided_at": when}
        accepted["summary"] = {**made["summary"], "decision_seq": 1}
        rejected = {**made, "decision": "rejected", "decided_at": when}
        rejected["summary"] = {**made["summary"], "decision_seq": 2}
        for item in (made, accepted, rejected):
            r = wire.post("/results:batch", {"items": [item]})
            assert r.status_code == 200, r.text
            assert r.json()["stored"] == [made["client_id"]], (item["decision"], r.json())
        # replays change nothing
        again = wire.post("/results:batch", {"items": [accepted, rejected]})
        assert again.json()["duplicates"] == [made["client_id"]] * 2
        assert _backend_view(server, made["client_id"]) == (
            ["rejected"],
            ["accepted", "rejected"],
        )
    finally:
        wire.close()
    assert httpx.get(f"{server.url}/healthz").status_code == 200
