"""The study list on a real SQLCipher profile: sorting by a column (and opening the row that is
shown, not the one that was there before sorting), forgetting a study after a confirmation
(audited, files kept), the PACS node a study came from, and PACS answers about priors reused
per patient until "Refresh"."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtWidgets import QMessageBox

from core.app.access import series_viewed
from core.app.workstation import Workstation
from core.audit.vocabulary import EventType
from core.config import PacsNode, Settings, pin_settings
from core.imaging.index import build_index
from tests.desktop.workstation.helpers import PASSWORD, add_users
from tests.pacs.orthanc import OrthancServer, orthanc_server, unavailable_reason
from tests.studies.helpers import make_study

TIMEOUT_MS = 60_000


def _listed(panel) -> list[str]:  # type: ignore[no-untyped-def]
    return [
        panel.table.item(r, 0).data(Qt.ItemDataRole.UserRole) for r in range(panel.table.rowCount())
    ]


def _view(ws: Workstation, folder: Path) -> None:
    for patient, study, series in build_index([str(folder)]).iter_series():
        series_viewed(ws, patient, study, series)


def _click_header(qtbot, panel, column: str) -> None:  # type: ignore[no-untyped-def]
    from desktop.study_list import COLUMNS

    header = panel.table.horizontalHeader()
    section = COLUMNS.index(column)
    x = header.sectionViewportPosition(section) + header.sectionSize(section) // 2
    qtbot.mouseClick(header.viewport(), Qt.MouseButton.LeftButton, pos=QPoint(x, 5))


def _study_on_screen(win) -> str:  # type: ignore[no-untyped-def]
    ctx = win.state.context()
    return ctx[1].study_instance_uid if ctx is not None else ""


def test_sort_by_a_column_open_the_row_shown_and_forget_a_study(  # type: ignore[no-untyped-def]
    qtbot, ws: Workstation, open_window, tmp_path: Path
) -> None:
    uids = {
        name: make_study(tmp_path / name, patient_id=pid, name=pname, date=date)
        for name, pid, pname, date in (
            ("b", "P2", "BROWN^ANN", "20230101"),
            ("a", "P1", "adams^zoe", "20190101"),
            ("c", "P3", "CLARK^BOB", "20210101"),
        )
    }
    add_users(ws)
    ws.session.login("rad", PASSWORD)
    for name in ("b", "a", "c"):  # c opened last
        _view(ws, tmp_path / name)
    win = open_window(ws)
    panel = win.study_list
    panel.dock.show()
    panel.dock.raise_()
    qtbot.waitUntil(lambda: len(_listed(panel)) == 3, timeout=TIMEOUT_MS)
    assert _listed(panel)[0] == uids["c"]  # recent first

    _click_header(qtbot, panel, "Date")
    by_date = [uids["a"], uids["c"], uids["b"]]
    order = panel.table.horizontalHeader().sortIndicatorOrder()
    assert _listed(panel) == (by_date if order == Qt.SortOrder.AscendingOrder else by_date[::-1])
    _click_header(qtbot, panel, "Date")  # the other way round
    assert _listed(panel) in (by_date, by_date[::-1])
    assert panel.table.horizontalHeader().sortIndicatorOrder() != order
    _click_header(qtbot, panel, "Name")  # case does not decide the order
    names = [panel.table.item(r, 0).text() for r in range(3)]
    assert names in (
        ["adams zoe", "BROWN ANN", "CLARK BOB"],
        ["CLARK BOB", "BROWN ANN", "adams zoe"],
    )
    # a double click opens the study in the row shown after sorting
    first = _listed(panel)[0]
    rect = panel.table.visualItemRect(panel.table.item(0, 0))
    qtbot.mouseClick(panel.table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    qtbot.mouseDClick(panel.table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    qtbot.waitUntil(lambda: _study_on_screen(win) == first, timeout=TIMEOUT_MS)
    qtbot.waitUntil(lambda: win.runner.active == 0, timeout=TIMEOUT_MS)

    # forget the study of "B": Cancel keeps it, Yes removes it from the list (files kept)
    row = _listed(panel).index(uids["b"])
    panel.table.selectRow(row)
    assert panel.forget_button.isEnabled()
    qtbot.mouseClick(panel.forget_button, Qt.MouseButton.LeftButton)
    box = panel.forget_box
    assert box is not None
    assert box.isVisible()
    assert "BROWN ANN" in box.text()
    assert "not deleted" in box.text()
    qtbot.mouseClick(box.button(QMessageBox.StandardButton.Cancel), Qt.MouseButton.LeftButton)
    assert panel.forget_box is None
    assert panel.forget_job is None
    assert uids["b"] in _listed(panel)
    panel.ask_forget(_listed(panel).index(uids["b"]))
    box = panel.forget_box
    assert box is not None
    qtbot.mouseClick(box.button(QMessageBox.StandardButton.Yes), Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: uids["b"] not in _listed(panel), timeout=TIMEOUT_MS)
    assert sorted(_listed(panel)) == sorted([uids["a"], uids["c"]])
    assert len(list((tmp_path / "b").glob("*.dcm"))) == 3
    forgot = [
        e
        for e in ws.audit.iter_events(event_type=EventType.INSTANCES_ACCESSED, user="rad")
        if e.details.get("action") == "forget"
    ]
    assert [[o["id"] for o in e.objects if o["kind"] == "study"] for e in forgot] == [[uids["b"]]]
    qtbot.waitUntil(lambda: win.runner.active == 0, timeout=TIMEOUT_MS)


@pytest.fixture(scope="module")
def orthanc() -> Iterator[OrthancServer]:
    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)
    with orthanc_server() as server:
        yield server


def _pacs_queries(ws: Workstation) -> int:
    return sum(
        1
        for e in ws.audit.iter_events(event_type=EventType.QUERY)
        if e.details.get("node") == "orthanc" and e.details.get("level") == "STUDY"
    )


def test_a_study_retrieved_through_search_pacs_names_its_node_and_priors_are_cached(  # type: ignore[no-untyped-def]
    qtbot, ws: Workstation, open_window, tmp_path: Path, orthanc: OrthancServer
) -> None:
    from desktop.pacs_panel import install_pacs

    current = make_study(tmp_path / "now", patient_id="Q5", issuer="H", date="20240505")
    other = make_study(tmp_path / "other", patient_id="Q5", issuer="H", date="20230303")
    on_pacs = make_study(tmp_path / "pacs", patient_id="Q5", issuer="H", date="20200202")
    orthanc.upload(sorted((tmp_path / "pacs").glob("*.dcm")))
    add_users(ws)
    ws.session.login("rad", PASSWORD)
    settings = Settings(pacs=[PacsNode(name="orthanc", url=orthanc.dicomweb)])
    pin_settings(settings)
    try:
        win = open_window(ws)
        install_pacs(win, ws, settings)
        panel = win.study_list
        # File > Search PACS: search by Patient ID, retrieve the study, it opens
        search = win.pacs.dialog.panel
        search.patient_id.setText("Q5")
        search.run_search()
        qtbot.waitUntil(lambda: search.results.topLevelItemCount() == 1, timeout=TIMEOUT_MS)
        search.results.setCurrentItem(search.results.topLevelItem(0))
        search.run_retrieve()
        qtbot.waitUntil(lambda: _study_on_screen(win) == on_pacs, timeout=TIMEOUT_MS)
        qtbot.waitUntil(lambda: on_pacs in _listed(panel), timeout=TIMEOUT_MS)
        qtbot.waitUntil(
            lambda: panel.table.item(_listed(panel).index(on_pacs), 6).text() == "pacs:orthanc",
            timeout=TIMEOUT_MS,
        )
        qtbot.waitUntil(lambda: win.runner.active == 0, timeout=TIMEOUT_MS)

        # the retrieved study's priors were asked of the PACS when it came on screen: the
        # patient's two local studies are shown without asking it again
        before = _pacs_queries(ws)
        for folder, uid in (("now", current), ("other", other)):
            win.open_paths([str(tmp_path / folder)])
            qtbot.waitUntil(lambda u=uid: _study_on_screen(win) == u, timeout=TIMEOUT_MS)
            qtbot.waitUntil(
                lambda u=uid: panel.priors_for == u and panel.priors_job.done, timeout=TIMEOUT_MS
            )
            qtbot.waitUntil(lambda: win.runner.active == 0, timeout=TIMEOUT_MS)
        listed = [p.study_uid for p in panel.priors]
        assert current in listed
        assert on_pacs in listed
        assert _pacs_queries(ws) - before == 0
        assert win.priors_cache.queries == 1
        # "Refresh" asks again
        qtbot.mouseClick(panel.refresh_priors_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: panel.priors_job.done, timeout=TIMEOUT_MS)
        qtbot.waitUntil(lambda: win.runner.active == 0, timeout=TIMEOUT_MS)
        assert _pacs_queries(ws) - before == 1
        assert on_pacs in [p.study_uid for p in panel.priors]
    finally:
        pin_settings(None)
