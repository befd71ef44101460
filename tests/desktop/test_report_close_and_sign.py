"""The report panel's review fixes (issue 17), in real windows on real profiles: a draft whose
save still waits in the job queue when the window closes is saved by the close; a draft the
store refuses at close (another writer, signed elsewhere) is kept in a recovery file, never
lost; the sign dialog signs the study it was opened for or nothing; an untouched template is
signed (its draft saved first)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from core.app import reports as app
from core.reports.model import ReportState
from desktop.report_panel import Doc, SignRequest, sign_job
from desktop.workers import JobContext
from tests.desktop.test_report_workflow import (  # the workflow tests' window fixture
    CT3_DIR,
    TIMEOUT_MS,
    _open,
    make_window,  # noqa: F401
)
from tests.desktop.workstation.helpers import CR, PASSWORD


def _block_queue(panel) -> threading.Event:  # type: ignore[no-untyped-def]
    """Hold the panel's one-at-a-time queue with a job waiting on an event (a slow save or
    signature ahead): what is submitted next waits behind it."""
    release = threading.Event()
    started = threading.Event()

    def wait(_ctx: JobContext) -> None:
        started.set()
        release.wait(10)

    panel.serial.submit("Holding the queue", wait)
    assert started.wait(10)
    return release


def test_a_save_waiting_in_the_queue_is_saved_when_the_window_closes(  # type: ignore[no-untyped-def]
    qtbot,
    make_window,  # noqa: F811
) -> None:
    win, gui = make_window()
    panel = gui.panel
    ws = win.workstation
    uid = _open(qtbot, win, gui, CR)
    release = _block_queue(panel)
    panel.findings.setPlainText("Queued behind a slow job.")
    panel.save_now()  # queued: dirty is cleared, the text waits in the queue
    assert panel.serial.pending == 2
    threading.Timer(1.0, release.set).start()  # the window's shutdown waits for the job
    win.close()
    stored = app.get_report(ws, uid)
    assert stored is not None, "the queued draft was lost at close"
    assert stored.report.findings == "Queued behind a slow job."


def test_a_draft_refused_at_close_is_kept_in_a_recovery_file(qtbot, make_window) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    win, gui = make_window()
    panel = gui.panel
    ws = win.workstation
    uid = _open(qtbot, win, gui, CR)
    panel.findings.setPlainText("Mine, first.")
    panel.save_now()
    qtbot.waitUntil(lambda: "Draft saved" in panel.status.text(), timeout=TIMEOUT_MS)
    app.save_draft(ws, uid, findings="Theirs.", impression="", expected_revision=0)
    panel.findings.setPlainText("Mine, typed and closed at once.")
    win.close()
    assert app.get_report(ws, uid).report.findings == "Theirs."  # type: ignore[union-attr]
    (kept,) = panel.recovered
    assert kept.parent.parent == ws.db.path.parent
    text = kept.read_text(encoding="utf-8")
    assert "Mine, typed and closed at once." in text
    assert uid in text
    assert "changed since it was read" in text
    assert kept.stat().st_mode & 0o077 == 0  # the user's own, like the profile

    # shown again later (a window on the same folder): the panel says where the text is
    win2, gui2 = make_window()
    assert gui2.panel.ws.db.path.parent == ws.db.path.parent
    assert _open(qtbot, win2, gui2, CR) == uid
    qtbot.waitUntil(lambda: str(kept) in gui2.panel.status.text(), timeout=TIMEOUT_MS)
    assert "refused when the window closed" in gui2.panel.status.text()
    qtbot.waitUntil(lambda: win2.runner.active == 0, timeout=TIMEOUT_MS)


def test_the_sign_dialog_signs_the_study_it_was_opened_for(qtbot, make_window) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    if not CT3_DIR.is_dir():
        pytest.skip(f"the shared 3-slice CT is not at '{CT3_DIR}'")
    win, gui = make_window()
    panel = gui.panel
    ws = win.workstation
    cr_uid = _open(qtbot, win, gui, CR)
    panel.findings.setPlainText("Clear lungs.")
    dialog = panel.open_sign_dialog()
    assert dialog is not None
    ct_uid = _open(qtbot, win, gui, CT3_DIR)  # the panel follows: the CT is on screen now
    assert panel.doc is not None
    assert panel.doc.study_uid == ct_uid
    dialog.password.setText(PASSWORD)
    assert dialog.submit()
    qtbot.waitUntil(lambda: not dialog.busy, timeout=TIMEOUT_MS)
    assert "Another study is on screen" in dialog.message.text()
    assert app.get_report(ws, ct_uid) is None
    qtbot.waitUntil(lambda: app.get_report(ws, cr_uid) is not None, timeout=TIMEOUT_MS)
    assert app.get_report(ws, cr_uid).report.state is ReportState.DRAFT  # type: ignore[union-attr]
    dialog.reject()
    qtbot.waitUntil(lambda: win.runner.active == 0, timeout=TIMEOUT_MS)


def test_an_untouched_template_is_signed_from_the_window(qtbot, make_window) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    win, gui = make_window()
    panel = gui.panel
    ws = win.workstation
    uid = _open(qtbot, win, gui, CR)
    template = panel.findings.toPlainText(), panel.impression.toPlainText()
    assert app.get_report(ws, uid) is None  # nothing typed: nothing stored
    dialog = panel.open_sign_dialog()
    assert dialog is not None
    dialog.password.setText(PASSWORD)
    assert dialog.submit()
    qtbot.waitUntil(lambda: panel.findings.isReadOnly(), timeout=TIMEOUT_MS)
    signed = app.get_report(ws, uid)
    assert signed is not None
    assert signed.report.state is ReportState.SIGNED
    assert (signed.report.findings, signed.report.impression) == template
    assert signed.report.template_id == "chest_radiograph"
    qtbot.waitUntil(lambda: win.runner.active == 0, timeout=TIMEOUT_MS)


def test_sign_job_refuses_an_unedited_model_draft_without_review(tmp_path: Path) -> None:
    """The job passes the panel's knowledge of the drafter's words to core's rule."""
    from core.app.access import series_viewed
    from core.app.workstation import Workstation
    from core.imaging.index import build_index
    from tests.reports.conftest import add_users

    if not CT3_DIR.is_dir():
        pytest.skip(f"the shared 3-slice CT is not at '{CT3_DIR}'")
    ws = Workstation.open(tmp_path / "ws.db")
    try:
        add_users(ws)
        ws.session.login("dr-a", "correct horse battery")
        ((patient, st, series),) = list(build_index([str(CT3_DIR)]).iter_series())
        series_viewed(ws, patient, st, series)
        doc = Doc(st.study_instance_uid)
        shown = ("Liver lesion.", "Hepatic lesion.")
        ctx = JobContext(threading.Event(), lambda _v: None)
        with pytest.raises(app.UnreviewedDraft):
            sign_job(ctx, ws, doc, PASSWORD, None, SignRequest(shown, "", True, False))
        stored = sign_job(ctx, ws, doc, PASSWORD, None, SignRequest(shown, "", True, True))
        assert stored.report.state is ReportState.SIGNED
    finally:
        ws.close()


def test_a_first_draft_does_not_overwrite_one_created_elsewhere(qtbot, make_window) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    win, gui = make_window()
    panel = gui.panel
    ws = win.workstation
    uid = _open(qtbot, win, gui, CR)  # read: no report yet
    app.save_draft(ws, uid, findings="Another window's draft.", impression="")
    panel.findings.setPlainText("Mine.")
    panel.save_now()
    qtbot.waitUntil(lambda: "not saved" in panel.status.text(), timeout=TIMEOUT_MS)
    assert "changed since it was read (none, now 0)" in panel.status.text()
    assert app.get_report(ws, uid).report.findings == "Another window's draft."  # type: ignore[union-attr]
    qtbot.waitUntil(lambda: win.runner.active == 0, timeout=TIMEOUT_MS)
