"""The Workstation context on a real encrypted database: who the trail names, and the results
use cases (permission checks, stored + audited + queued for sync exactly once)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest

from core.app.results import StoredResults
from core.app.workstation import Workstation
from core.audit.events import SYSTEM_USER
from core.audit.vocabulary import EventType
from core.config import SecuritySettings
from core.inference.result import InferenceResult, InputRef, Provenance
from core.security.users import PermissionDenied, Role
from core.store.outbox import StoreOutbox

PASSWORD = "correct horse battery"


@pytest.fixture
def ws(tmp_path: Path) -> Workstation:
    workstation = Workstation.open(tmp_path / "ws.db", SecuritySettings(lock_timeout_min=1))
    workstation.users.create_user("admin", PASSWORD, Role.ADMIN, by=SYSTEM_USER)
    workstation.users.create_user("rad", PASSWORD, Role.RADIOLOGIST, by="admin")
    workstation.users.create_user("tech", PASSWORD, Role.TECHNOLOGIST, by="admin")
    yield workstation
    workstation.close()


def _result(dicom_data: Path) -> dict:
    """A real InferenceResult for a real CT slice, in the form the AI panel hands over."""
    path = dicom_data / "pyvista__vtk-data" / "Data" / "DICOM_Stack" / "1-001.dcm"
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    result = InferenceResult(
        labels=["normal", "nodule"],
        probabilities=np.array([[0.3, 0.7]], dtype=np.float32),
        decisions=["nodule"],
        thresholds={"nodule": 0.5},
        provenance=Provenance(
            model_id="ct-nodule",
            model_version="1.2.0",
            package_hash="0" * 64,
            framework="onnx",
            device="cpu",
            inputs=[
                InputRef(
                    ds.SOPInstanceUID,
                    0,
                    ds.StudyInstanceUID,
                    ds.SeriesInstanceUID,
                    str(ds.PatientID),
                )
            ],
            timings_ms={"preprocess": 4.0, "inference": 20.0},
        ),
    )
    return result.to_json()


def test_open_creates_an_encrypted_database_and_reopens_it(tmp_path: Path) -> None:
    path = tmp_path / "fresh.db"
    ws = Workstation.open(path)
    try:
        event = ws.record(EventType.APPLICATION_ACTIVITY, action="start")
    finally:
        ws.close()
    assert not path.read_bytes().startswith(b"SQLite format 3")
    again = Workstation.open(path)
    try:
        assert again.audit.chain_head() == (event.index, event.hash)
        assert again.audit.verify().ok
        assert again.db.workstation_id == event.workstation
    finally:
        again.close()


def test_record_names_system_before_sign_in_then_the_signed_in_user(ws: Workstation) -> None:
    before = ws.record(EventType.APPLICATION_ACTIVITY, action="start")
    assert (before.user, before.role) == (SYSTEM_USER, "")
    ws.session.login("rad", PASSWORD)
    opened = ws.record(EventType.INSTANCES_ACCESSED, study="1.2.3")
    assert (opened.user, opened.role) == ("rad", "radiologist")
    assert opened.details == {"study": "1.2.3"}
    ws.session.logout()
    after = ws.record(EventType.APPLICATION_ACTIVITY, action="stop")
    assert after.user == SYSTEM_USER
    stored = {e.index: (e.user, e.role) for e in ws.audit.iter_events()}
    assert stored[before.index] == (SYSTEM_USER, "")
    assert stored[opened.index] == ("rad", "radiologist")
    assert ws.audit.verify().ok


def test_technologist_cannot_run_ai_or_decide(ws: Workstation, dicom_data: Path) -> None:
    sink = StoredResults(ws)
    result = _result(dicom_data)
    ws.session.login("rad", PASSWORD)
    sink.record(result)
    ws.session.login("tech", PASSWORD)
    head = ws.audit.chain_head()
    outbox_before = StoreOutbox(ws.db).count_unsent()
    with pytest.raises(PermissionDenied, match="'tech' \\(technologist\\) may not decide"):
        sink.decide(result["result_id"], "accepted")
    with pytest.raises(PermissionDenied, match="may not run-ai"):
        sink.record(_result(dicom_data))
    assert ws.results.get(result["result_id"]).decisions == []
    assert ws.audit.chain_head() == head  # a refused action leaves no decision behind
    assert StoreOutbox(ws.db).count_unsent() == outbox_before
    assert sink.latest(result["result_id"]) is None


def test_radiologists_accept_is_stored_audited_and_queued_once(
    ws: Workstation, dicom_data: Path
) -> None:
    sink = StoredResults(ws)
    result = _result(dicom_data)
    rid = result["result_id"]
    ws.session.login("rad", PASSWORD)
    sink.record(result)
    sink.decide(rid, "accepted", "agree with the finding")
    sink.decide(rid, "comment", "follow up in 6 months")

    stored = ws.results.get(rid)
    assert stored.payload["provenance"]["inputs"][0]["study_instance_uid"] == stored.study_uid
    assert [(d.decision, d.user) for d in stored.decisions] == [
        ("accepted", "rad"),
        ("comment", "rad"),
    ]
    assert sink.latest(rid) == "accepted"
    assert sink.latest("no-such-result") is None

    events = {e.index: e for e in ws.audit.iter_events()}
    accepted = events[stored.decisions[0].audit_index]
    assert accepted.event_type is EventType.RESULT_ACCEPTED
    assert (accepted.user, accepted.role) == ("rad", "radiologist")
    assert {"kind": "result", "id": rid, "name": ""} in accepted.objects
    run = events[stored.audit_index]
    assert run.event_type is EventType.MODEL_RUN
    patient = result["provenance"]["inputs"][0]["patient_id"]
    assert patient  # the run names the patient, study, series and instance the model read
    assert [o["kind"] for o in run.objects] == [
        "patient",
        "study",
        "series",
        "instance",
        "model",
        "result",
    ]
    assert {"kind": "patient", "id": patient, "name": ""} in run.objects
    assert [o["kind"] for o in accepted.objects][:4] == ["patient", "study", "series", "instance"]

    # the result went up when it was made, the accept follows with its time (comments stay)
    queued = [i for i in StoreOutbox(ws.db).fetch_unsent(1000) if i.kind == "result"]
    assert [(i.payload["client_id"], i.payload["decision"]) for i in queued] == [
        (rid, "none"),
        (rid, "accepted"),
    ]
    assert "decided_at" not in queued[0].payload
    assert queued[1].payload["decided_at"]
    assert ws.audit.verify().ok


def test_locked_session_cannot_decide(ws: Workstation, dicom_data: Path) -> None:
    sink = StoredResults(ws)
    result = _result(dicom_data)
    ws.session.login("rad", PASSWORD)
    sink.record(result)
    ws.session.lock()
    with pytest.raises(PermissionDenied, match="sign in"):
        sink.decide(result["result_id"], "rejected")
    assert ws.results.get(result["result_id"]).decisions == []
