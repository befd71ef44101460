"""AI results and decisions are stored with their audit events and queued for sync together."""

from __future__ import annotations

import uuid

import pytest

from core.audit.log import AuditLog
from core.audit.vocabulary import EventType
from core.results.store import ResultsStore
from core.store.database import Database
from core.store.outbox import StoreOutbox


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
            "inputs": [{"sop_instance_uid": "1.2.3", "frame": 0, "study_instance_uid": study}],
        },
    }


def test_save_and_decide_are_audited_and_queued(db: Database) -> None:
    log = AuditLog(db)
    store = ResultsStore(log)
    outbox = StoreOutbox(db)
    result = _result()
    rid = store.save(result, user="dr-a", patient_id="PID-1")
    accepted = store.decide(rid, "accepted", user="dr-a")
    store.decide(rid, "comment", user="dr-b", comment="subtle, agree")
    stored = store.get(rid)
    assert stored.payload == result
    assert [d.decision for d in stored.decisions] == ["accepted", "comment"]
    assert stored.latest_decision == "accepted"
    assert store.list_for_study("1.2.840.99.1")[0].id == rid
    events = list(log.iter_events())
    assert [e.event_type for e in events] == [
        EventType.MODEL_RUN,
        EventType.RESULT_ACCEPTED,
        EventType.RESULT_COMMENTED,
    ]
    assert events[stored.audit_index].details["result_id"] == rid
    assert accepted.audit_index == 1
    kinds = sorted(item.kind for item in outbox.fetch_unsent(10))
    assert kinds == ["audit", "audit", "audit", "result"]
    result_item = next(i for i in outbox.fetch_unsent(10) if i.kind == "result")
    assert result_item.payload["decision"] == "accepted"
    assert result_item.payload["latency_ms"] == 15.0
    assert log.verify().ok


def test_unknown_result_and_decision_are_refused(db: Database) -> None:
    store = ResultsStore(AuditLog(db))
    with pytest.raises(KeyError, match="no stored AI result 'nope'"):
        store.decide("nope", "accepted", user="u")
    rid = store.save(_result(), user="u")
    with pytest.raises(ValueError, match="unknown decision"):
        store.decide(rid, "maybe", user="u")  # type: ignore[arg-type]


def test_shadow_result_is_audited_and_queued_never_stored_as_shown(db: Database) -> None:
    log = AuditLog(db)
    store = ResultsStore(log)
    outbox = StoreOutbox(db)
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
    assert store.record_shadow(item, user="dr-a") == item["client_id"]
    with pytest.raises(KeyError):
        store.get(item["client_id"])  # nobody sees it, nobody decides on it
    (event,) = list(log.iter_events())
    assert event.event_type == EventType.MODEL_RUN
    assert event.details == {
        "result_id": item["client_id"], "shadow": True, "rollout_id": 3, "shown_result_id": "r1"
    }
    queued = {i.kind: i for i in outbox.fetch_unsent(10)}
    assert queued["result"].id == item["client_id"]  # the idempotency key is the result id
    assert queued["result"].payload == item
    assert "audit" in queued
    with pytest.raises(ValueError, match="shadow result items only"):
        store.record_shadow({**item, "shadow": False}, user="dr-a")
