"""Decisions with reasons and their history on a real encrypted profile: a rejection's reason
is stored, audited and sent upstream (code only); a re-run of the same model version on the
same images shows what was decided before; accept-then-reject keeps both, in order."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.app.results import SessionResults, StoredResults
from core.app.workstation import Workstation
from core.audit.vocabulary import EventType
from core.results.findings import positive_findings, run_warnings
from core.security.users import Role
from core.store.outbox import StoreOutbox
from core.sync.wire import ResultItem
from tests.app.test_results import PASSWORD, _result


@pytest.fixture
def ws(tmp_path: Path) -> Iterator[Workstation]:
    workstation = Workstation.open(tmp_path / "ws.db")
    workstation.users.create_user("admin", PASSWORD, Role.ADMIN, by="system")
    workstation.users.create_user("dr-a", PASSWORD, Role.RADIOLOGIST, by="admin")
    workstation.users.create_user("dr-b", PASSWORD, Role.RADIOLOGIST, by="admin")
    workstation.session.login("dr-a", PASSWORD)
    yield workstation
    workstation.close()


def _rerun(result: dict) -> dict:
    again = copy.deepcopy(result)
    again["result_id"] = str(uuid.uuid4())
    return again


def test_reject_reason_is_stored_audited_and_sent_as_code_only(ws: Workstation) -> None:
    results, outbox = StoredResults(ws), StoreOutbox(ws.db)
    result = _result()
    rid = result["result_id"]
    results.record(result)
    record = results.decide(rid, "rejected", "the 'opacity' is the scapula", "false-positive")
    assert (record.decision, record.reason, record.sequence, record.user) == (
        "rejected",
        "false-positive",
        1,
        "dr-a",
    )
    stored = ws.results.get(rid).decisions
    assert [(d.decision, d.reason, d.comment) for d in stored] == [
        ("rejected", "false-positive", "the 'opacity' is the scapula")
    ]
    (rejected,) = [e for e in ws.audit.iter_events() if e.event_type == EventType.RESULT_REJECTED]
    assert rejected.details == {
        "comment": "the 'opacity' is the scapula",
        "reason": "false-positive",
    }
    items = [i.payload for i in outbox.fetch_unsent(100) if i.kind == "result"]
    decided = items[-1]
    assert decided["decision"] == "rejected"
    assert decided["summary"]["reason"] == "false-positive"
    assert decided["summary"]["decision_seq"] == 1
    assert "scapula" not in str(decided)  # the free text stays on the workstation
    ResultItem.model_validate(decided)  # still the wire's shape (extra fields are refused)


def test_accept_then_reject_keeps_both_in_sequence_latest_wins(ws: Workstation) -> None:
    results, outbox = StoredResults(ws), StoreOutbox(ws.db)
    result = _result()
    rid = result["result_id"]
    results.record(result)
    results.decide(rid, "accepted")
    results.decide(rid, "comment", "discussed at MDT")
    ws.session.login("dr-b", PASSWORD)
    results.decide(rid, "rejected", "", "wrong-anatomy")
    assert results.latest(rid) == "rejected"
    history = results.history(rid)
    assert [(d.decision, d.user, d.sequence, d.reason) for d in history] == [
        ("accepted", "dr-a", 1, ""),
        ("comment", "dr-a", 0, ""),
        ("rejected", "dr-b", 2, "wrong-anatomy"),
    ]
    assert history[0].created_at < history[2].created_at
    items = [i.payload for i in outbox.fetch_unsent(100) if i.kind == "result"]
    assert [(i["decision"], i["summary"].get("decision_seq")) for i in items] == [
        ("none", None),
        ("accepted", 1),
        ("rejected", 2),
    ]
    assert items[1]["decided_at"] < items[2]["decided_at"]


def test_rerun_on_the_same_images_shows_the_earlier_decision(ws: Workstation) -> None:
    results = StoredResults(ws)
    first = _result()
    results.record(first)
    results.decide(first["result_id"], "rejected", "motion", "artefact")
    again = _rerun(first)
    results.record(again)
    assert results.latest(again["result_id"]) is None  # the new run itself is undecided
    (earlier,) = results.history(again["result_id"])
    assert (earlier.result_id, earlier.decision, earlier.reason, earlier.comment) == (
        first["result_id"],
        "rejected",
        "artefact",
        "motion",
    )
    other_version = _rerun(first)
    other_version["model"] = {"id": "chest-xray-pneumonia", "version": "1.1.0"}
    other_image = _rerun(first)
    other_image["provenance"]["inputs"][0]["sop_instance_uid"] = "1.2.3.9"
    for other in (other_version, other_image):
        results.record(other)
        assert results.history(other["result_id"]) == []


def test_bad_reasons_are_refused_naming_them(ws: Workstation) -> None:
    results = StoredResults(ws)
    result = _result()
    results.record(result)
    rid = result["result_id"]
    head = ws.audit.chain_head()
    with pytest.raises(ValueError, match="unknown reject reason 'bored'"):
        results.decide(rid, "rejected", "", "bored")
    with pytest.raises(ValueError, match="goes with a rejection"):
        results.decide(rid, "accepted", "", "artefact")
    with pytest.raises(ValueError, match="'other' needs a comment"):
        results.decide(rid, "rejected", " ", "other")
    assert ws.audit.chain_head() == head


def test_session_results_history_matches_reruns() -> None:
    results = SessionResults()
    first = _result()
    results.record(first)
    results.decide(first["result_id"], "accepted")
    results.decide(first["result_id"], "rejected", "", "poor-image-quality")
    again = _rerun(first)
    results.record(again)
    assert [(d.decision, d.sequence) for d in results.history(again["result_id"])] == [
        ("accepted", 1),
        ("rejected", 2),
    ]
    assert [d for _r, d, _c in results.decisions] == ["accepted", "rejected"]


def test_findings_are_the_images_over_threshold_with_ood_marks() -> None:
    result = {
        "decisions": ["tumour", "no_tumour", "tumour", "tumour"],
        "scores": [
            {"no_tumour": 0.01, "tumour": 0.99},
            {"no_tumour": 0.9, "tumour": 0.1},
            {"no_tumour": 0.0, "tumour": 1.0},
            {"no_tumour": 0.2, "tumour": 0.8},  # decided positive but below: not listed
        ],
        "thresholds": {"tumour": 0.95},
        "guards": [
            {"kind": "ood", "message": "unlike training data", "images": [2]},
            {"kind": "population", "message": "patient age 64 outside 0-10", "images": None},
        ],
    }
    found = positive_findings(result)
    assert [(f.index, f.label, f.ood) for f in found] == [
        (0, "tumour", ""),
        (2, "tumour", "unlike training data"),
    ]
    assert found[0].score == pytest.approx(0.99)
    assert run_warnings(result) == ["unlike training data", "patient age 64 outside 0-10"]
    # argmax-only models have no thresholds, hence nothing "over threshold"
    assert positive_findings({**result, "thresholds": {}}) == []
