"""The results use cases on a real encrypted profile: a run and each decision are stored, audited
and queued for sync in one transaction; the session-only form for a window with no profile."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.app.results import SessionResults, StoredResults
from core.app.workstation import Workstation
from core.audit.vocabulary import EventType
from core.security.users import Role
from core.store.outbox import StoreOutbox

PASSWORD = "correct horse battery"


@pytest.fixture
def ws(tmp_path: Path) -> Iterator[Workstation]:
    workstation = Workstation.open(tmp_path / "ws.db")
    workstation.users.create_user("admin", PASSWORD, Role.ADMIN, by="system")
    workstation.users.create_user("dr-a", PASSWORD, Role.RADIOLOGIST, by="admin")
    workstation.users.create_user("dr-b", PASSWORD, Role.RADIOLOGIST, by="admin")
    workstation.session.login("dr-a", PASSWORD)
    yield workstation
    workstation.close()


def _result(study: str = "1.2.840.99.1") -> dict:
    return {
        "result_id": str(uuid.uuid4()),
        "model": {"id": "chest-xray-pneumonia", "version": "1.0.0"},
        "labels": ["normal", "pneumonia"],
        "decisions": ["pneumonia"],
        "scores": [{"normal": 0.1, "pneumonia": 0.9}],
        "provenance": {
            "created_at": "2026-11-24T10:00:00+00:00",
            "device": "cpu",
            "timings_ms": {"inference": 12.0, "preprocess": 3.0},
            "inputs": [
                {
                    "sop_instance_uid": "1.2.3",
                    "frame": 0,
                    "study_instance_uid": study,
                    "series_instance_uid": "1.2.4",
                    "patient_id": "PID-1",
                }
            ],
        },
    }


def test_save_and_decide_are_audited_and_queued(ws: Workstation) -> None:
    log, store, results = ws.audit, ws.results, StoredResults(ws)
    outbox = StoreOutbox(ws.db)
    result = _result()
    rid = result["result_id"]
    results.record(result, command="test")
    results.decide(rid, "accepted")
    ws.session.login("dr-b", PASSWORD)
    results.decide(rid, "comment", "subtle, agree")
    stored = store.get(rid)
    assert stored.payload == result
    assert [d.decision for d in stored.decisions] == ["accepted", "comment"]
    assert stored.latest_decision == "accepted"
    assert store.list_for_study("1.2.840.99.1")[0].id == rid
    assert [(d.decision, d.user) for d in stored.decisions] == [
        ("accepted", "dr-a"),
        ("comment", "dr-b"),
    ]
    events = [
        e
        for e in log.iter_events()
        if e.event_type
        in (EventType.MODEL_RUN, EventType.RESULT_ACCEPTED, EventType.RESULT_COMMENTED)
    ]
    assert [e.event_type for e in events] == [
        EventType.MODEL_RUN,
        EventType.RESULT_ACCEPTED,
        EventType.RESULT_COMMENTED,
    ]
    run = next(e for e in events if e.index == stored.audit_index)
    assert run.details == {"command": "test"}
    assert [(o["kind"], o["id"]) for o in run.objects] == [
        ("patient", "PID-1"),
        ("study", "1.2.840.99.1"),
        ("series", "1.2.4"),
        ("instance", "1.2.3"),
        ("model", "chest-xray-pneumonia@1.0.0"),
        ("result", rid),
    ]
    assert stored.decisions[0].audit_index == events[1].index
    items = [i for i in outbox.fetch_unsent(100) if i.kind == "result"]
    # sent when made (nobody need decide for it to go up); the accept follows, the comment not
    assert [i.payload["decision"] for i in items] == ["none", "accepted"]
    assert items[0].id == rid
    assert items[1].payload["client_id"] == rid
    assert items[0].payload["latency_ms"] == 15.0
    assert results.latest(rid) == "accepted"
    assert log.verify().ok


def test_unknown_result_and_decision_are_refused(ws: Workstation) -> None:
    results = StoredResults(ws)
    head = ws.audit.chain_head()
    with pytest.raises(KeyError, match="no stored AI result 'nope'"):
        results.decide("nope", "accepted")
    assert ws.audit.chain_head() == head  # nothing half-recorded
    result = _result()
    results.record(result)
    with pytest.raises(ValueError, match="unknown decision"):
        results.decide(result["result_id"], "maybe")  # type: ignore[arg-type]


def test_shadow_result_is_audited_and_queued_never_stored_as_shown(ws: Workstation) -> None:
    log, store, results = ws.audit, ws.results, StoredResults(ws)
    outbox = StoreOutbox(ws.db)
    head = log.chain_head()[0]
    item = {
        "client_id": uuid.uuid4().hex,
        "created_at": "2026-11-24T10:00:00+00:00",
        "model_id": "chest-xray-pneumonia",
        "model_version": "1.1.0",
        "decision": "none",
        "latency_ms": 20.0,
        "shadow": True,
        "rollout_id": 3,
        "summary": {"decisions": ["normal"], "agrees_with_shown": False, "shown_result_id": "r1"},
    }
    results.record_shadow(item)
    with pytest.raises(KeyError):
        store.get(item["client_id"])  # nobody sees it, nobody decides on it
    (event,) = [e for e in log.iter_events() if e.index > head]
    assert event.event_type == EventType.MODEL_RUN
    assert event.details == {
        "result_id": item["client_id"],
        "shadow": True,
        "rollout_id": 3,
        "shown_result_id": "r1",
    }
    queued = {i.kind: i for i in outbox.fetch_unsent(100)}
    assert queued["result"].id == item["client_id"]  # the idempotency key is the result id
    assert queued["result"].payload == item
    assert "audit" in queued
    with pytest.raises(ValueError, match="shadow result items only"):
        results.record_shadow({**item, "shadow": False})


def test_session_results_keep_runs_and_verdicts_for_the_session() -> None:
    results = SessionResults()
    results.record({"result_id": "r1", "model": {"id": "m", "version": "1"}})
    results.decide("r1", "accepted")
    results.decide("r1", "comment", "looks right")
    results.decide("r1", "rejected")
    assert results.latest("r1") == "rejected"
    assert [d for _r, d, _c in results.decisions] == ["accepted", "comment", "rejected"]
    with pytest.raises(KeyError, match="'r2'"):
        results.decide("r2", "accepted")
    with pytest.raises(ValueError, match="'maybe'"):
        results.decide("r1", "maybe")  # type: ignore[arg-type]


def test_a_result_the_backend_would_refuse_is_refused_when_recorded(ws: Workstation) -> None:
    """Checked against the wire schema when queued: the run fails now, with its reason, and
    leaves nothing half-recorded (not a sync error hours later)."""
    from core.store.outbox import OutboxItemError

    results = StoredResults(ws)
    head, unsent = ws.audit.chain_head(), StoreOutbox(ws.db).count_unsent()
    bad = _result()
    bad["model"]["version"] = "1.0 beta / 2"  # not an id the backend takes
    with pytest.raises(OutboxItemError, match="'model_version'"):
        results.record(bad)
    with pytest.raises(KeyError):
        ws.results.get(bad["result_id"])
    assert ws.audit.chain_head() == head
    assert StoreOutbox(ws.db).count_unsent() == unsent


def test_a_rolled_back_record_leaves_no_head_behind(ws: Workstation) -> None:
    """The refused record above appended its Model Run event and rolled back; the head it
    would have moved must not be recorded by the next commit on the same pooled connection
    (an outbox update here), or verify would later call the trail rewritten."""
    from core.store.outbox import OutboxItemError

    bad = _result()
    bad["model"]["version"] = "1.0 beta / 2"
    with pytest.raises(OutboxItemError):
        StoredResults(ws).record(bad)
    outbox = StoreOutbox(ws.db)
    outbox.mark_sent([outbox.fetch_unsent(1)[0].id])  # a commit that appends no event
    StoredResults(ws).record(_result())  # the next event takes the rolled-back index
    assert ws.audit.check().head.ok, ws.audit.check().head.reason
