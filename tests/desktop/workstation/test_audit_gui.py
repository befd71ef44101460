"""The audit viewer (list, filter, verify, tamper, export) and the GUI's audit hooks (series
open = DICOM Instances Accessed, view export = Export, AI results and decisions in the results
store), on a real SQLCipher profile and real DICOM."""

from __future__ import annotations

import json
from pathlib import Path

import pydicom
from PySide6.QtCore import Qt
from sqlalchemy import update

from core.app.workstation import Workstation
from core.audit.log import AuditEvent, AuditObject
from core.audit.vocabulary import EventType, Outcome
from core.store.schema import audit_events
from tests.desktop.workstation.helpers import CR, PASSWORD, add_users

TIMEOUT_MS = 120_000


def _trail_with_a_patient(ws: Workstation) -> None:
    add_users(ws)
    ws.session.login("rad", PASSWORD)
    ws.audit.append(
        AuditEvent(
            EventType.INSTANCES_ACCESSED,
            user="rad",
            role="radiologist",
            objects=[AuditObject("patient", "PAT-77", "Doe^Jane"), AuditObject("study", "1.2.3")],
        )
    )
    ws.session.logout()


def _refresh(qtbot, viewer) -> None:
    with qtbot.waitSignal(viewer.loaded, timeout=10_000):
        viewer.refresh()


def test_audit_viewer_lists_filters_verifies_and_finds_tampering(
    qtbot, ws: Workstation, open_window, tmp_path: Path
) -> None:
    _trail_with_a_patient(ws)
    ws.session.login("aud", PASSWORD)
    win = open_window(ws)
    hooks = win.audit_hooks
    assert hooks.audit_action.isEnabled()
    win.open_paths([CR])  # an auditor reads the trail, not images
    assert (
        "Cannot open studies: user 'aud' (auditor) may not load" in win.statusBar().currentMessage()
    )
    assert win.state.slice_count == 0
    assert not win.controller.indexing
    viewer = hooks.viewer
    with qtbot.waitSignal(viewer.loaded, timeout=10_000):
        hooks.show_audit()
    hooks.flush()
    assert hooks.audit_dock.isVisible()
    used = list(ws.audit.iter_events(event_type=EventType.AUDIT_LOG_USED))
    assert [(e.user, e.details["action"]) for e in used] == [("aud", "view")]  # opening audited
    total = len(list(ws.audit.iter_events()))
    _refresh(qtbot, viewer)
    assert viewer.table.rowCount() == len(list(ws.audit.iter_events())) >= total
    indices = [int(viewer.table.item(r, 0).text()) for r in range(viewer.table.rowCount())]
    assert indices == sorted(indices, reverse=True)  # newest first

    viewer.user.setText("rad")
    _refresh(qtbot, viewer)
    assert viewer.table.rowCount() > 0
    assert {viewer.table.item(r, 2).text() for r in range(viewer.table.rowCount())} == {"rad"}
    viewer.user.clear()
    viewer.patient.setText("PAT-77")
    _refresh(qtbot, viewer)
    assert viewer.table.rowCount() == 1
    assert viewer.table.item(0, 4).text() == "DICOM Instances Accessed"
    assert viewer.table.item(0, 6).text() == "patient PAT-77 (Doe^Jane); study 1.2.3"
    viewer.patient.clear()
    viewer.event_type.setCurrentIndex(viewer.event_type.findData(EventType.USER_AUTHENTICATION))
    _refresh(qtbot, viewer)
    auth = list(ws.audit.iter_events(event_type=EventType.USER_AUTHENTICATION))
    assert viewer.table.rowCount() == len(auth)
    viewer.event_type.setCurrentIndex(0)
    viewer.until.setText("2000-01-01")
    _refresh(qtbot, viewer)
    assert viewer.table.rowCount() == 0
    viewer.until.clear()
    viewer.since.setText("yesterday")
    viewer.refresh()
    assert "'yesterday' is not a date" in viewer.status.text()
    viewer.since.clear()

    with qtbot.waitSignal(viewer.verified, timeout=10_000) as ok:
        viewer.verify()
    assert ok.args[0].ok
    index, head = ws.audit.chain_head()
    assert f"Chain OK: {ok.args[0].checked} event(s) verified" in viewer.status.text()
    hooks.flush()
    hooks.refresh_head()  # read in a job, off the GUI thread
    index, head = ws.audit.chain_head()
    qtbot.waitUntil(lambda: hooks.head_label.text() == f"audit #{index} {head[:8]}", timeout=10_000)
    assert hooks.head_label.text() == f"audit #{index} {head[:8]}"

    with ws.db.engine.begin() as conn:  # an insider with the key edits event #2
        conn.execute(update(audit_events).where(audit_events.c.idx == 2).values(user="mallory"))
    _refresh(qtbot, viewer)
    with qtbot.waitSignal(viewer.verified, timeout=10_000) as bad:
        viewer.verify()
    assert not bad.args[0].ok
    assert bad.args[0].first_bad_index == 2
    assert "TAMPERED: the chain breaks at event #2" in viewer.status.text()
    selected = viewer.table.selectionModel().selectedRows()
    assert [viewer.table.item(i.row(), 0).text() for i in selected] == ["2"]
    last = list(ws.audit.iter_events(event_type=EventType.AUDIT_LOG_USED))[-1]
    assert last.details["action"] == "verify"
    assert last.outcome == Outcome.SERIOUS_FAILURE

    out = tmp_path / "trail.json"
    viewer.user.setText("rad")
    with qtbot.waitSignal(viewer.exported, timeout=10_000) as exported:
        viewer.export_to(out, "json")
    assert exported.args == [str(out)]
    rows = json.loads(out.read_text())
    rad_events = list(ws.audit.iter_events(user="rad"))
    assert len(rows) == len(rad_events) > 0
    last = list(ws.audit.iter_events(event_type=EventType.AUDIT_LOG_USED))[-1]
    assert last.details == {"action": "export", "format": "json", "events": len(rad_events)}
    assert {"kind": "file", "id": str(out), "name": ""} in last.objects

    with qtbot.waitSignal(viewer.exported, timeout=10_000) as failed:
        viewer.export_to(tmp_path / "no-such-dir" / "trail.csv", "csv")
    assert failed.args == [""]
    assert "Cannot write" in viewer.status.text()
    assert "no-such-dir" in viewer.status.text()


def test_roles_without_the_audit_permission_cannot_read_it(
    qtbot, ws: Workstation, open_window
) -> None:
    add_users(ws)
    ws.session.login("tech", PASSWORD)
    win = open_window(ws)
    assert not win.audit_hooks.audit_action.isEnabled()
    win.audit_hooks.viewer.open_trail()
    assert "Not allowed" in win.audit_hooks.viewer.status.text()
    assert "may not read-audit" in win.audit_hooks.viewer.status.text()
    assert list(ws.audit.iter_events(event_type=EventType.AUDIT_LOG_USED)) == []
    # and a technologist cannot run AI models: the buttons say why
    assert not win.ai.run_image_button.isEnabled()
    assert win.ai.run_image_button.toolTip() == "The technologist role may not run AI models."


def test_opening_a_series_is_one_instances_accessed_event(
    qtbot, ws: Workstation, open_window, ct_dir: Path, tmp_path: Path
) -> None:
    add_users(ws)
    ws.session.login("rad", PASSWORD)
    win = open_window(ws)
    win.open_paths([ct_dir])
    qtbot.waitUntil(
        lambda: "series_loaded" in win.controller.timings and not win.controller.indexing,
        timeout=TIMEOUT_MS,
    )
    for _ in range(5):  # scrolling shows other slices of the same series: no new access event
        win.state.step_slice(1)
    qtbot.wait(50)
    win.audit_hooks.flush()
    events = list(ws.audit.iter_events(event_type=EventType.INSTANCES_ACCESSED))
    assert len(events) == 1
    ds = pydicom.dcmread(next(iter(sorted(ct_dir.iterdir()))), stop_before_pixels=True)
    objects = {o["kind"]: o for o in events[0].objects}
    assert objects["patient"]["id"] == str(ds.PatientID)
    assert objects["patient"]["name"] == str(ds.PatientName)
    assert objects["study"]["id"] == str(ds.StudyInstanceUID)
    assert objects["series"]["id"] == str(ds.SeriesInstanceUID)
    assert (events[0].user, events[0].role) == ("rad", "radiologist")
    assert events[0].details == {"action": "view", "modality": "CT"}
    assert win.state.slice_count == 134

    png = tmp_path / "view.png"
    assert win.audit_hooks.export_view(png)
    win.audit_hooks.flush()
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    (export,) = list(ws.audit.iter_events(event_type=EventType.EXPORT))
    kinds = {o["kind"]: o["id"] for o in export.objects}
    assert kinds["file"] == str(png)
    assert kinds["instance"] == win.state.current_slice().instance.sop_instance_uid
    assert kinds["series"] == str(ds.SeriesInstanceUID)


def test_ai_result_and_decision_are_stored_in_the_results_store(
    qtbot, ws: Workstation, open_window
) -> None:
    add_users(ws)
    ws.session.login("rad", PASSWORD)
    win = open_window(ws)
    panel = win.ai
    win.open_paths([CR])
    qtbot.waitUntil(
        lambda: (
            win.state.slice_count > 0 and panel.manager is not None and not win.controller.indexing
        ),
        timeout=TIMEOUT_MS,
    )
    qtbot.waitUntil(lambda: panel.run_image_button.isEnabled(), timeout=TIMEOUT_MS)
    qtbot.mouseClick(panel.run_image_button, Qt.MouseButton.LeftButton)
    row = panel.queue.rows[-1]
    qtbot.waitUntil(lambda: row.state == "done", timeout=TIMEOUT_MS)
    result, _k = panel.current_result()
    stored = ws.results.get(result.result_id)
    assert stored.decisions == []
    with qtbot.waitSignal(panel.decided, timeout=TIMEOUT_MS):  # stored by a job, off the GUI
        qtbot.mouseClick(panel.accept_button, Qt.MouseButton.LeftButton)
    assert "accepted" in panel.verdict.text()
    stored = ws.results.get(result.result_id)
    assert [(d.decision, d.user) for d in stored.decisions] == [("accepted", "rad")]
    runs = list(ws.audit.iter_events(event_type=EventType.MODEL_RUN))
    accepted = list(ws.audit.iter_events(event_type=EventType.RESULT_ACCEPTED))
    assert len(runs) == 1
    assert len(accepted) == 1
    assert accepted[0].user == "rad"

    ws.session.lock()  # a locked session may not decide: said in plain words, nothing stored
    qtbot.mouseClick(panel.reject_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "Could not record" in panel.verdict.text(), timeout=TIMEOUT_MS)
    assert "Could not record the decision: sign in (or unlock) first" in panel.verdict.text()
    assert [d.decision for d in ws.results.get(result.result_id).decisions] == ["accepted"]
