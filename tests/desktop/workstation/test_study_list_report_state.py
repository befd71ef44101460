"""The study list's Report column on a real SQLCipher profile (issue 17): a study without a
report says none, one with a draft says draft; a draft saved and a report signed in the window's
report panel change the row at once, a click on the column's header sorts in the order a read
goes (none, draft, signed), and a window opened again on the profile reads the same states; a
state told while a listing is being read is not overwritten by the older read."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QPoint, Qt

from core.app import reports as app
from core.app.access import series_viewed
from core.app.workstation import Workstation
from core.imaging.index import build_index
from core.reports.model import ReportState
from desktop.study_list import COLUMNS
from tests.desktop.workstation.helpers import PASSWORD, add_users
from tests.studies.helpers import make_study

TIMEOUT_MS = 120_000
REPORT = COLUMNS.index("Report")


def _states(panel) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """What the table shows: study UID -> the Report cell's text."""
    table = panel.table
    return {
        table.item(r, 0).data(Qt.ItemDataRole.UserRole): table.item(r, REPORT).text()
        for r in range(table.rowCount())
    }


def _order(panel) -> list[str]:  # type: ignore[no-untyped-def]
    return [
        panel.table.item(r, 0).data(Qt.ItemDataRole.UserRole) for r in range(panel.table.rowCount())
    ]


def _view(ws: Workstation, folder: Path) -> None:
    for patient, study, series in build_index([str(folder)]).iter_series():
        series_viewed(ws, patient, study, series)


def _shown(panel) -> None:  # type: ignore[no-untyped-def]
    panel.dock.show()
    panel.dock.raise_()


def test_the_report_column_follows_draft_and_signature_and_sorts(  # type: ignore[no-untyped-def]
    qtbot, ws: Workstation, open_window, tmp_path: Path
) -> None:
    uids = {
        name: make_study(tmp_path / name, patient_id=f"P{name}", name=f"{name.upper()}^PAT")
        for name in ("a", "b", "c")
    }
    add_users(ws)
    ws.session.login("rad", PASSWORD)
    for name in ("a", "b", "c"):  # c opened last: first in the list
        _view(ws, tmp_path / name)
    app.save_draft(ws, uids["b"], findings="Stored before the window opened.", impression="")

    win = open_window(ws)
    panel = win.study_list
    assert win.reports is not None
    report = win.reports.panel
    _shown(panel)
    qtbot.waitUntil(lambda: len(_states(panel)) == 3, timeout=TIMEOUT_MS)
    assert _states(panel) == {uids["a"]: "none", uids["b"]: "draft", uids["c"]: "none"}

    # open c from the list: the report panel follows it; a draft saved there shows at once
    panel.open_row(_order(panel).index(uids["c"]))
    qtbot.waitUntil(
        lambda: report.doc is not None and report.doc.study_uid == uids["c"] and report.doc.loaded,
        timeout=TIMEOUT_MS,
    )
    qtbot.waitUntil(lambda: win.runner.active == 0, timeout=TIMEOUT_MS)
    listing = panel.list_job
    report.findings.setPlainText("Small right pleural effusion.")
    report.impression.setPlainText("Effusion.")
    report.save_now()
    qtbot.waitUntil(lambda: _states(panel)[uids["c"]] == "draft", timeout=TIMEOUT_MS)
    assert app.report_states(ws, [uids["c"]]) == {uids["c"]: ReportState.DRAFT}
    assert panel.list_job is listing  # the panel's signal changed the row, not a new listing

    # signed in the window: the row says signed
    dialog = report.open_sign_dialog()
    assert dialog is not None
    dialog.password.setText(PASSWORD)
    assert dialog.submit()
    qtbot.waitUntil(lambda: _states(panel)[uids["c"]] == "signed", timeout=TIMEOUT_MS)
    assert app.report_states(ws, [uids["c"]]) == {uids["c"]: ReportState.SIGNED}
    assert _states(panel) == {uids["a"]: "none", uids["b"]: "draft", uids["c"]: "signed"}

    # the header sorts by the read's order, either way round, not alphabetically
    header = panel.table.horizontalHeader()
    x = header.sectionViewportPosition(REPORT) + header.sectionSize(REPORT) // 2
    qtbot.mouseClick(header.viewport(), Qt.MouseButton.LeftButton, pos=QPoint(x, 5))
    read_order = [uids["a"], uids["b"], uids["c"]]
    order = header.sortIndicatorOrder()
    assert header.sortIndicatorSection() == REPORT
    assert _order(panel) == (
        read_order if order == Qt.SortOrder.AscendingOrder else read_order[::-1]
    )
    qtbot.mouseClick(header.viewport(), Qt.MouseButton.LeftButton, pos=QPoint(x, 5))
    assert header.sortIndicatorOrder() != order
    assert _order(panel) in (read_order, read_order[::-1])
    qtbot.waitUntil(lambda: win.runner.active == 0, timeout=TIMEOUT_MS)

    # the window closed and opened again on the same profile: the states are read again
    win.close()  # its jobs awaited (closeEvent)
    win2 = open_window(ws)
    panel2 = win2.study_list
    _shown(panel2)
    qtbot.waitUntil(lambda: len(_states(panel2)) == 3, timeout=TIMEOUT_MS)
    assert _states(panel2) == {uids["a"]: "none", uids["b"]: "draft", uids["c"]: "signed"}
    qtbot.waitUntil(lambda: win2.runner.active == 0, timeout=TIMEOUT_MS)

    # a save told while a listing reads is newer than what the listing read: it is kept
    job = panel2.refresh()
    assert job is not None
    panel2.set_report_state(uids["a"], "draft")  # before the job's answer can arrive
    qtbot.waitUntil(lambda: job.done, timeout=TIMEOUT_MS)
    qtbot.waitUntil(lambda: len(_states(panel2)) == 3, timeout=TIMEOUT_MS)
    assert _states(panel2)[uids["a"]] == "draft"
    qtbot.waitUntil(lambda: win2.runner.active == 0, timeout=TIMEOUT_MS)
