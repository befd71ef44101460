"""The report panel around the read (issue 17), in real windows on real profiles: the draft is
saved when the radiologist moves to another study and when the window closes; the template
follows the modality and never throws typed text away; signing asks the second factor where
IT requires one; an accepted AI result is inserted as a line; a technologist reads only."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pyotp
import pytest
from PySide6.QtCore import Qt

from core.app import reports as app
from core.app.workstation import Workstation
from core.config import SecuritySettings
from core.reports.model import ReportState
from core.reports.store import StoredReport
from desktop.report_gui import ReportsGui, install_reports
from tests.conftest import DICOM_DATA
from tests.desktop.helpers import open_for_ai
from tests.desktop.workstation.helpers import CR, PASSWORD, add_users

CT3_DIR = DICOM_DATA / "QIICR__dcmqi" / "data" / "segmentations" / "ct-3slice"
TIMEOUT_MS = 120_000


@pytest.fixture
def make_window(qtbot, tmp_path: Path) -> Iterator[Callable[..., tuple[object, ReportsGui]]]:  # type: ignore[no-untyped-def]
    """A window on a fresh profile signed in as ``user`` (the second factor enrolled where
    ``mfa`` is set), with the report docks installed."""
    from desktop.main_window import MainWindow

    if not CR.is_file():
        pytest.skip(f"the sample chest radiograph is not at '{CR}'")
    opened: list[tuple[Workstation, MainWindow]] = []

    def make(user: str = "rad", mfa: bool = False) -> tuple[object, ReportsGui]:
        ws = Workstation.open(
            tmp_path / f"ws-{len(opened)}.db",
            SecuritySettings(
                lock_timeout_min=30, mfa_required_roles=["radiologist"] if mfa else []
            ),
        )
        add_users(ws)
        if mfa:
            enrolment = ws.users.mfa.begin(user)
            ws.session.login(user, PASSWORD, pyotp.TOTP(enrolment.secret).now())
            ws.test_recovery_codes = list(enrolment.recovery_codes)  # type: ignore[attr-defined]
        else:
            ws.session.login(user, PASSWORD)
        win = MainWindow(workstation=ws, lock_check_ms=60_000)
        qtbot.addWidget(win)
        win.resize(1400, 900)
        win.show()
        qtbot.waitExposed(win)
        opened.append((ws, win))
        gui = install_reports(win)
        assert gui is not None
        return win, gui

    yield make
    for ws, win in opened:
        assert win.shutdown(20_000)
        ws.close()


def _report(ws: Workstation, study_uid: str) -> StoredReport:
    stored = app.get_report(ws, study_uid)
    assert stored is not None, f"study {study_uid} has no stored report"
    return stored


def _open(qtbot, win, gui: ReportsGui, path: Path) -> str:  # type: ignore[no-untyped-def]
    before = gui.panel.doc.study_uid if gui.panel.doc is not None else ""
    win.open_paths([str(path)])
    qtbot.waitUntil(
        lambda: "series_loaded" in win.controller.timings and not win.controller.indexing,
        timeout=TIMEOUT_MS,
    )
    win.audit_hooks.flush()
    qtbot.waitUntil(
        lambda: (
            gui.panel.doc is not None and gui.panel.doc.study_uid != before and gui.panel.doc.loaded
        ),
        timeout=TIMEOUT_MS,
    )
    assert gui.panel.doc is not None
    return gui.panel.doc.study_uid


def test_moving_to_another_study_and_closing_save_the_draft(qtbot, make_window) -> None:  # type: ignore[no-untyped-def]
    if not CT3_DIR.is_dir():
        pytest.skip(f"the shared 3-slice CT is not at '{CT3_DIR}'")
    win, gui = make_window()
    panel = gui.panel
    ws = win.workstation
    cr_uid = _open(qtbot, win, gui, CR)
    assert panel.template.currentData() == "chest_radiograph"
    # another template while the text is the template's own: its text replaces it
    mr = panel.template.findData("mr_brain")
    panel.template.setCurrentIndex(mr)
    panel.template.activated.emit(mr)
    assert panel.findings.toPlainText() == panel.templates["mr_brain"].findings
    panel.template.setCurrentIndex(panel.template.findData("chest_radiograph"))
    panel.template.activated.emit(panel.template.currentIndex())
    panel.findings.setPlainText("Typed: left apical pneumothorax.")
    # typed text is never replaced by another template's
    panel.template.setCurrentIndex(mr)
    panel.template.activated.emit(mr)
    assert panel.findings.toPlainText() == "Typed: left apical pneumothorax."
    panel.template.setCurrentIndex(panel.template.findData("chest_radiograph"))
    panel.template.activated.emit(panel.template.currentIndex())
    assert app.get_report(ws, cr_uid) is None  # the pause before the save has not passed

    # showing another study saves the draft of the one left, at once
    ct_uid = _open(qtbot, win, gui, CT3_DIR)
    assert ct_uid != cr_uid
    qtbot.waitUntil(lambda: app.get_report(ws, cr_uid) is not None, timeout=TIMEOUT_MS)
    stored = _report(ws, cr_uid)
    assert stored.report.findings == "Typed: left apical pneumothorax."
    assert stored.report.template_id == "chest_radiograph"
    assert panel.template.currentData() == "ct_abdomen"  # the CT's own template
    assert app.report_states(ws, [cr_uid, ct_uid]) == {
        cr_uid: ReportState.DRAFT,
        ct_uid: ReportState.NONE,
    }

    # back on the radiograph: its stored text
    win.browser.series_activated.emit(_series_of(win, cr_uid))
    qtbot.waitUntil(
        lambda: panel.doc is not None and panel.doc.study_uid == cr_uid, timeout=TIMEOUT_MS
    )
    qtbot.waitUntil(
        lambda: panel.findings.toPlainText() == "Typed: left apical pneumothorax.",
        timeout=TIMEOUT_MS,
    )

    # typed and closed at once: the window saves it as it closes
    panel.findings.appendPlainText("Closed before the pause.")
    win.close()
    stored = _report(ws, cr_uid)
    assert stored.report.findings.endswith("Closed before the pause.")
    assert stored.revision == 1


def _series_of(win, study_uid: str) -> str:  # type: ignore[no-untyped-def]
    for _p, st, series in win.state.index.iter_series():
        if st.study_instance_uid == study_uid:
            return str(series.series_instance_uid)
    raise AssertionError(f"study {study_uid} is not open")


def test_signing_asks_the_second_factor_where_it_is_required(qtbot, make_window) -> None:  # type: ignore[no-untyped-def]
    win, gui = make_window(mfa=True)
    panel = gui.panel
    ws = win.workstation
    uid = _open(qtbot, win, gui, CR)
    panel.findings.setPlainText("Clear lungs.")
    panel.impression.setPlainText("Normal chest.")
    dialog = panel.open_sign_dialog()
    assert dialog is not None
    assert not dialog.code.isVisible()
    dialog.password.setText(PASSWORD)
    assert dialog.submit()
    qtbot.waitUntil(lambda: dialog.code.isVisible(), timeout=TIMEOUT_MS)
    assert "code" in dialog.message.text()
    assert _report(ws, uid).report.state is ReportState.DRAFT
    dialog.code.setText("000000")
    assert dialog.submit()
    qtbot.waitUntil(lambda: not dialog.busy, timeout=TIMEOUT_MS)
    assert dialog.message.text().startswith("Not signed")
    assert _report(ws, uid).report.state is ReportState.DRAFT
    dialog.password.setText(PASSWORD)
    dialog.code.setText(ws.test_recovery_codes[0])
    assert dialog.submit()
    qtbot.waitUntil(lambda: panel.findings.isReadOnly(), timeout=TIMEOUT_MS)
    signed = _report(ws, uid).report
    assert (signed.state, signed.findings, signed.impression) == (
        ReportState.SIGNED,
        "Clear lungs.",
        "Normal chest.",
    )
    qtbot.waitUntil(lambda: win.runner.active == 0, timeout=TIMEOUT_MS)


def test_an_accepted_ai_result_is_inserted_as_a_line(qtbot, make_window) -> None:  # type: ignore[no-untyped-def]
    win, gui = make_window()
    open_for_ai(qtbot, win, CR)
    win.audit_hooks.flush()
    qtbot.waitUntil(lambda: gui.panel.doc is not None and gui.panel.doc.loaded, timeout=TIMEOUT_MS)
    ai = win.ai
    row = ai.run_current_image()
    assert row is not None
    qtbot.waitUntil(lambda: row.state == "done", timeout=TIMEOUT_MS)
    result, k = ai.current_result()
    # not accepted yet: nothing to insert
    gui.panel.findings.setPlainText("")
    gui.panel.insert_ai_lines()
    qtbot.waitUntil(
        lambda: "No accepted AI findings" in gui.panel.status.text(), timeout=TIMEOUT_MS
    )
    with qtbot.waitSignal(ai.decided, timeout=TIMEOUT_MS):
        ai.decide("accepted")
    gui.panel.insert_ai_lines()
    qtbot.waitUntil(lambda: "AI (" in gui.panel.findings.toPlainText(), timeout=TIMEOUT_MS)
    decision = result.decisions[k]
    score = result.scores(k)[decision]
    version = result.provenance.model_version
    assert gui.panel.findings.toPlainText().strip() == (
        f"AI (chest-xray-pneumonia {version}, accepted): {decision} (score {score:.2f})"
    )
    qtbot.waitUntil(lambda: win.runner.active == 0, timeout=TIMEOUT_MS)


def test_a_technologist_reads_the_report_only(qtbot, make_window) -> None:  # type: ignore[no-untyped-def]
    win, gui = make_window(user="tech")
    panel = gui.panel
    _open(qtbot, win, gui, CR)
    assert panel.findings.isReadOnly()
    assert panel.impression.isReadOnly()
    for button in (panel.sign_button, panel.draft_button, panel.insert_measurements):
        assert not button.isEnabled()
    assert gui.keys.toggle_mark()  # started: the use case says who may
    qtbot.waitUntil(lambda: "Not marked" in gui.keys.status.text(), timeout=TIMEOUT_MS)
    assert "may not" in gui.keys.status.text()
    qtbot.waitUntil(lambda: win.runner.active == 0, timeout=TIMEOUT_MS)


def test_a_report_changed_elsewhere_is_neither_overwritten_nor_signed_unseen(  # type: ignore[no-untyped-def]
    qtbot, make_window
) -> None:
    """Another window saves the report between two saves of this one: this panel's save is
    refused, signing what is on screen is refused (the stored text differs), and Reload shows
    the other text, which can then be signed."""
    win, gui = make_window()
    panel = gui.panel
    ws = win.workstation
    uid = _open(qtbot, win, gui, CR)
    panel.findings.setPlainText("Mine, first.")
    panel.save_now()
    qtbot.waitUntil(lambda: "Draft saved" in panel.status.text(), timeout=TIMEOUT_MS)
    app.save_draft(ws, uid, findings="Theirs.", impression="", expected_revision=0)

    panel.findings.setPlainText("Mine, second.")
    panel.save_now()
    qtbot.waitUntil(lambda: "not saved" in panel.status.text(), timeout=TIMEOUT_MS)
    assert "changed since it was read" in panel.status.text()
    assert panel.reload_button.isVisible()
    assert _report(ws, uid).report.findings == "Theirs."

    dialog = panel.open_sign_dialog()
    assert dialog is not None
    dialog.password.setText(PASSWORD)
    assert dialog.submit()
    qtbot.waitUntil(lambda: not dialog.busy, timeout=TIMEOUT_MS)
    assert dialog.message.text().startswith("Not signed: The text on screen is not the stored")
    assert _report(ws, uid).report.state is ReportState.DRAFT
    dialog.reject()

    qtbot.mouseClick(panel.reload_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: panel.findings.toPlainText() == "Theirs.", timeout=TIMEOUT_MS)
    assert not panel.reload_button.isVisible()
    dialog = panel.open_sign_dialog()
    assert dialog is not None
    dialog.password.setText(PASSWORD)
    assert dialog.submit()
    qtbot.waitUntil(lambda: panel.findings.isReadOnly(), timeout=TIMEOUT_MS)
    assert _report(ws, uid).report.state is ReportState.SIGNED
    assert _report(ws, uid).report.findings == "Theirs."
    qtbot.waitUntil(lambda: win.runner.active == 0, timeout=TIMEOUT_MS)


def test_the_panel_follows_the_active_viewport(qtbot, make_window) -> None:  # type: ignore[no-untyped-def]
    if not CT3_DIR.is_dir():
        pytest.skip(f"the shared 3-slice CT is not at '{CT3_DIR}'")
    win, gui = make_window()
    panel = gui.panel
    cr_uid = _open(qtbot, win, gui, CR)
    ct_uid = _open(qtbot, win, gui, CT3_DIR)
    reading = win.reading
    reading.set_grid(1, 2)
    reading.set_active(0)
    win.grid.open_series(_series_of(win, cr_uid))
    reading.set_active(1)
    win.grid.open_series(_series_of(win, ct_uid))
    qtbot.waitUntil(
        lambda: panel.doc is not None and panel.doc.study_uid == ct_uid and panel.doc.loaded,
        timeout=TIMEOUT_MS,
    )
    assert panel.template.currentData() == "ct_abdomen"
    assert gui.keys.study_uid == ct_uid
    reading.set_active(0)
    qtbot.waitUntil(
        lambda: panel.doc is not None and panel.doc.study_uid == cr_uid and panel.doc.loaded,
        timeout=TIMEOUT_MS,
    )
    assert panel.template.currentData() == "chest_radiograph"
    assert gui.keys.study_uid == cr_uid
    qtbot.waitUntil(lambda: win.runner.active == 0, timeout=TIMEOUT_MS)
