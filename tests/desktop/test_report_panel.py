"""The report panel in a real window on a real signed-in profile (issue 17): a chest radiograph
is opened, its report drafted from the template, the impression drafted by the real report
drafter (T5, CPU), edited, refused with a wrong password, signed, exported as SR and PDF whose
text is what was signed, made read-only, and given an addendum; the GUI event loop keeps
ticking throughout (drafting and signing run as jobs)."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest
from PySide6.QtCore import QObject, Qt, QTimer

from core.app import reports as app
from core.app.workstation import Workstation
from core.audit.vocabulary import EventType
from core.config import SecuritySettings
from core.dicom_out.report_sr import report_text
from core.reports.model import ReportError, ReportState
from desktop.report_gui import ReportsGui, install_reports
from tests.desktop.workstation.helpers import CR, PASSWORD, add_users

TIMEOUT_MS = 120_000
# The window must never freeze while the drafter loads and drafts or while the password is
# checked (argon2): the longest gap between ticks of a 2 ms timer on the GUI thread. On a
# loaded 2-core machine the OS alone preempts this process for tens of ms now and then.
MAX_STALL_S = 0.100


class StallMeter(QObject):
    """A 2 ms precise timer on the GUI thread; the longest gap between ticks is the worst stall."""

    def __init__(self) -> None:
        super().__init__()
        self.timer = QTimer(self, interval=2)
        self.timer.setTimerType(Qt.TimerType.PreciseTimer)
        self.timer.timeout.connect(self._tick)
        self.last: float | None = None
        self.gaps: list[float] = []

    def _tick(self) -> None:
        now = time.perf_counter()
        if self.last is not None:
            self.gaps.append(now - self.last - 0.002)
        self.last = now

    @property
    def worst(self) -> float:
        return max(self.gaps, default=0.0)

    def start(self) -> None:
        self.last = None
        self.timer.start()

    def stop(self) -> None:
        self.timer.stop()


@pytest.fixture
def ws(tmp_path: Path) -> Iterator[Workstation]:
    w = Workstation.open(tmp_path / "ws.db", SecuritySettings(lock_timeout_min=30))
    add_users(w)
    w.session.login("rad", PASSWORD)
    yield w
    w.close()


@pytest.fixture
def window(qtbot, ws: Workstation):  # type: ignore[no-untyped-def]
    from desktop.main_window import MainWindow

    if not CR.is_file():
        pytest.skip(f"the sample chest radiograph is not at '{CR}'")
    win = MainWindow(workstation=ws, lock_check_ms=60_000)
    qtbot.addWidget(win)
    win.resize(1400, 900)
    win.show()
    qtbot.waitExposed(win)
    yield win
    assert win.shutdown(20_000)


def _open(qtbot, win, gui: ReportsGui, path: Path) -> str:  # type: ignore[no-untyped-def]
    """Open ``path``; wait until it is shown, recorded in the study database, and the report
    panel shows its study (template loaded)."""
    win.open_paths([str(path)])
    qtbot.waitUntil(
        lambda: "series_loaded" in win.controller.timings and not win.controller.indexing,
        timeout=TIMEOUT_MS,
    )
    win.audit_hooks.flush()
    qtbot.waitUntil(lambda: gui.panel.doc is not None and gui.panel.doc.loaded, timeout=TIMEOUT_MS)
    assert gui.panel.doc is not None
    return gui.panel.doc.study_uid


def _stored(ws: Workstation, study_uid: str):  # type: ignore[no-untyped-def]
    return app.get_report(ws, study_uid)


def _words(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def test_draft_edit_sign_export_and_addendum(  # type: ignore[no-untyped-def]
    qtbot, window, ws: Workstation, tmp_path: Path
) -> None:
    gui = install_reports(window)
    assert gui is not None
    panel = gui.panel
    study_uid = _open(qtbot, window, gui, CR)
    # the report is the tab shown beside the AI panel; the key images have a dock of their own
    qtbot.waitUntil(lambda: panel.isVisible() and gui.keys.isVisible(), timeout=TIMEOUT_MS)

    # the chest radiograph's template is chosen by its modality, and nothing is stored yet
    assert panel.template.currentData() == "chest_radiograph"
    template_findings = panel.findings.toPlainText()
    assert template_findings.strip()
    assert _stored(ws, study_uid) is None

    # typing saves the draft by itself (a job, after a pause)
    panel.findings.setFocus()
    panel.findings.selectAll()
    qtbot.keyClicks(panel.findings, "Patchy opacity in the right lower lobe.")
    panel.findings.appendPlainText("No pleural effusion. Heart size normal.")
    qtbot.waitUntil(
        lambda: (
            (r := _stored(ws, study_uid)) is not None
            and "right lower lobe" in r.report.findings
            and "Heart size normal" in r.report.findings
        ),
        timeout=TIMEOUT_MS,
    )
    assert _stored(ws, study_uid).report.state is ReportState.DRAFT
    assert _stored(ws, study_uid).report.template_id == "chest_radiograph"

    # the impression drafted by the real demonstration drafter, in a job, the GUI ticking
    qtbot.waitUntil(lambda: window.ai.manager is not None, timeout=TIMEOUT_MS)
    meter = StallMeter()
    meter.start()
    assert panel.draft_impression()
    assert panel.progress.isVisible()
    qtbot.waitUntil(lambda: not panel.draft_job_running, timeout=TIMEOUT_MS)
    meter.stop()
    drafting_stall = meter.worst
    drafted = panel.impression.toPlainText()
    assert drafted, panel.status.text()
    assert drafted == panel.model_draft
    assert panel.draft_notice.isVisible()
    assert "demonstration model" in panel.draft_notice.text()
    runs = list(ws.audit.iter_events(event_type=EventType.MODEL_RUN))
    assert [r.details.get("action") for r in runs] == ["report-draft-impression"]

    # an unedited model draft is not signed before the radiologist says it was reviewed
    dialog = panel.open_sign_dialog()
    assert dialog is not None
    assert dialog.reviewed.isVisible()
    dialog.password.setText(PASSWORD)
    assert not dialog.submit()
    assert "review" in dialog.message.text()
    dialog.reject()

    # edited by the radiologist; saved
    panel.impression.setFocus()
    panel.impression.moveCursor(panel.impression.textCursor().MoveOperation.End)
    qtbot.keyClicks(panel.impression, " Suggest follow-up radiograph.")
    findings, impression = panel.findings.toPlainText(), panel.impression.toPlainText()
    assert impression != drafted
    qtbot.waitUntil(
        lambda: _stored(ws, study_uid).report.impression == impression, timeout=TIMEOUT_MS
    )

    # a wrong password: refused with a message, the dialog stays, nothing signed
    dialog = panel.open_sign_dialog()
    assert dialog is not None
    assert not dialog.reviewed.isVisible()
    dialog.password.setText("not my password")
    assert dialog.submit()
    qtbot.waitUntil(lambda: not dialog.busy, timeout=TIMEOUT_MS)
    assert dialog.message.text().startswith("Not signed")
    assert dialog.isVisible()
    assert _stored(ws, study_uid).report.state is ReportState.DRAFT
    assert not panel.findings.isReadOnly()

    # the right password: signed in a job while the GUI keeps ticking
    dialog.password.setText(PASSWORD)
    meter = StallMeter()
    meter.start()
    assert dialog.submit()
    doc = panel.doc
    assert doc is not None
    qtbot.waitUntil(lambda: doc.state is ReportState.SIGNED, timeout=TIMEOUT_MS)
    qtbot.waitUntil(lambda: not dialog.isVisible(), timeout=TIMEOUT_MS)
    meter.stop()
    signing_stall = meter.worst
    signed = _stored(ws, study_uid).report
    assert (signed.state, signed.signer) == (ReportState.SIGNED, "rad")
    assert (signed.findings, signed.impression) == (findings, impression)

    # after signing the editors are read-only and the use case refuses an edit
    assert panel.findings.isReadOnly()
    assert panel.impression.isReadOnly()
    assert not panel.sign_button.isEnabled()
    assert not panel.draft_button.isEnabled()
    assert panel.addendum_button.isEnabled()
    assert panel.export_button.isEnabled()
    panel.findings.setFocus()
    qtbot.keyClicks(panel.findings, "changed after signing")
    assert panel.findings.toPlainText() == findings
    with pytest.raises(ReportError, match="signed; add an addendum"):
        app.save_draft(ws, study_uid, findings="changed", impression="")

    # exported to a folder as SR + PDF, whose text is what was signed
    out = tmp_path / "export"
    out.mkdir()
    assert panel.export(out)
    qtbot.waitUntil(lambda: bool(panel.last_export), timeout=TIMEOUT_MS)
    assert {e.kind for e in panel.last_export} == {"SR", "PDF"}
    assert panel.status.text().startswith("Exported")
    (sr_path,) = out.glob("SR_*.dcm")
    sr = pydicom.dcmread(sr_path)
    assert report_text(sr) == {"Findings": [findings], "Impressions": [impression]}
    assert str(sr.VerifyingObserverSequence[0].VerifyingObserverName) == "rad^"
    from pypdf import PdfReader

    (pdf_path,) = out.glob("report_*.pdf")
    pdf_text = _words(" ".join(p.extract_text() for p in PdfReader(pdf_path).pages))
    for line in (*findings.splitlines(), *impression.splitlines()):
        assert _words(line) in pdf_text

    # an addendum, signed with the password again
    dialog = panel.open_addendum_dialog()
    assert dialog is not None
    dialog.text.setPlainText("Compared with the prior: new finding.")
    dialog.password.setText(PASSWORD)
    assert dialog.submit()
    qtbot.waitUntil(lambda: bool(_stored(ws, study_uid).report.addenda), timeout=TIMEOUT_MS)
    qtbot.waitUntil(lambda: panel.addenda.isVisible(), timeout=TIMEOUT_MS)
    later = _stored(ws, study_uid).report
    assert [a.text for a in later.addenda] == ["Compared with the prior: new finding."]
    assert (later.findings, later.impression) == (findings, impression)
    assert "Compared with the prior" in panel.addenda.text()
    qtbot.waitUntil(lambda: window.runner.active == 0, timeout=TIMEOUT_MS)

    print(f"worst GUI stall: drafting {drafting_stall * 1000:.0f} ms, signing "
          f"{signing_stall * 1000:.0f} ms")  # fmt: skip
    assert drafting_stall < MAX_STALL_S, f"GUI stalled {drafting_stall * 1000:.0f} ms drafting"
    assert signing_stall < MAX_STALL_S, f"GUI stalled {signing_stall * 1000:.0f} ms signing"
