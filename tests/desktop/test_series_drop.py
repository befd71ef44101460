"""Drag a series from the study browser into a viewport of the grid (real CT and MR, offscreen).

A real drag loop cannot run offscreen, so the drag's two ends are tested apart: the browser's
model makes the payload a real QDrag would carry, and the drag events Qt sends to the widget
under the cursor are sent to the grid's cells (and to the rest of the window) with it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDragLeaveEvent, QDragMoveEvent, QDropEvent
from PySide6.QtWidgets import QApplication, QWidget

from core.viewer.state import ViewerState
from desktop.series_drop import (
    SERIES_MIME,
    SeriesDropError,
    install_series_drop,
    series_mime,
    series_uid_of,
)

CT3_PARTS = ("QIICR__dcmqi", "data", "segmentations", "ct-3slice")
MR_PARTS = ("plotly__dash-vtk", "demos", "data", "mri_brain")
TIMEOUT_MS = 60_000


@pytest.fixture
def ct3(dicom_data: Path) -> Path:
    path = dicom_data.joinpath(*CT3_PARTS)
    if not path.is_dir():
        pytest.skip(f"the shared 3-slice CT is not at '{path}'")
    return path


@pytest.fixture
def mr(dicom_data: Path) -> Path:
    path = dicom_data.joinpath(*MR_PARTS)
    if not path.is_dir():
        pytest.skip(f"the shared brain MR is not at '{path}'")
    return path


def open_and_index(qtbot: Any, win: Any, *paths: Path) -> None:
    win.open_paths(list(paths))
    qtbot.waitUntil(lambda: win.state.series is not None, timeout=TIMEOUT_MS)
    qtbot.waitUntil(lambda: not win.controller.indexing, timeout=TIMEOUT_MS)


def uid_of(win: Any, modality: str) -> str:
    uids = [
        s.series_instance_uid
        for _p, _st, s in win.state.index.iter_series()
        if s.modality == modality
    ]
    return str(uids[0])


def drag_to(widget: QWidget, data: QMimeData, drop: bool = True) -> tuple[bool, bool]:
    """What Qt sends to the widget under the cursor: enter, then drop. (entered, dropped)."""
    at = QPoint(widget.width() // 2, widget.height() // 2)
    actions = Qt.DropAction.CopyAction | Qt.DropAction.MoveAction
    buttons, mods = Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    enter = QDragEnterEvent(at, actions, data, buttons, mods)
    enter.setAccepted(False)
    QApplication.sendEvent(widget, enter)
    if enter.isAccepted():
        assert enter.dropAction() == Qt.DropAction.CopyAction  # never a move
    if not drop:
        return enter.isAccepted(), False
    event = QDropEvent(QPointF(at), actions, data, buttons, mods)
    event.setAccepted(False)
    QApplication.sendEvent(widget, event)
    return enter.isAccepted(), event.isAccepted()


def loaded(state: ViewerState) -> bool:
    return state.slice_count > 0 and state.settled_count >= state.slice_count


def test_browser_drags_a_series_uid_as_a_copy(qtbot: Any, window: Any, ct3: Path, mr: Path) -> None:
    win = window
    open_and_index(qtbot, win, ct3, mr)
    browser, mr_uid = win.browser, uid_of(win, "MR")
    item = browser._series_items[mr_uid]
    assert item.flags() & Qt.ItemFlag.ItemIsDragEnabled
    study, patient = item.parent(), item.parent().parent()
    for row in (study, patient):  # only a series can be dragged
        assert not row.flags() & Qt.ItemFlag.ItemIsDragEnabled
    # what QAbstractItemView.startDrag asks the model for when the row is dragged
    data = browser.model().mimeData([browser.indexFromItem(item)])
    assert data.formats() == [SERIES_MIME]
    assert not data.hasUrls()  # never file paths (the window would open them again)
    assert series_uid_of(data) == mr_uid
    assert browser.model().supportedDragActions() == Qt.DropAction.CopyAction
    assert browser.dragEnabled()


def test_drop_opens_the_series_in_the_cell_under_the_cursor(
    qtbot: Any, window: Any, ct3: Path, mr: Path
) -> None:
    win = window
    open_and_index(qtbot, win, ct3, mr)
    drop = install_series_drop(win)
    ct_uid, mr_uid = uid_of(win, "CT"), uid_of(win, "MR")
    first = win.state.series.series_instance_uid
    second = mr_uid if first == ct_uid else ct_uid
    grid, model = win.grid, win.reading
    model.set_preset("1x2")
    dropped: list[tuple[int, str]] = []
    drop.dropped.connect(lambda i, uid: dropped.append((i, uid)))

    # dragged over viewport 2: outlined where it would land, nothing opened yet
    assert drag_to(grid.widgets[1], series_mime(second), drop=False) == (True, False)
    hint = drop.hint
    assert hint.isVisible()
    assert hint.cell == grid.widgets[1]
    assert hint.geometry() == grid.frames[1].geometry()
    assert (model.active, model.cells[1].series_uid) == (0, None)
    QApplication.sendEvent(grid.widgets[1], QDragLeaveEvent())
    assert not hint.isVisible()
    files = QMimeData()
    files.setUrls([QUrl.fromLocalFile(str(mr))])
    assert drag_to(grid.widgets[1], files, drop=False) == (True, False)  # the window's
    assert not hint.isVisible()

    assert drag_to(grid.widgets[1], series_mime(second)) == (True, True)
    assert not hint.isVisible()
    assert model.active == 1
    assert dropped == [(1, second)]
    assert model.cells[1].series_uid == second
    assert model.cells[0].series_uid == first  # the other viewport keeps its series
    qtbot.waitUntil(lambda: loaded(model.cells[1].state), timeout=TIMEOUT_MS)
    assert model.cells[1].state.loaded_count == model.cells[1].state.slice_count

    # the first series into viewport 2 as well, dropped on the cell's caption: its frames
    # are the ones viewport 1 already decoded (one copy in memory)
    qtbot.waitUntil(lambda: loaded(win.state), timeout=TIMEOUT_MS)
    assert drag_to(grid.captions[1], series_mime(first)) == (True, True)
    assert model.cells[1].series_uid == first
    qtbot.waitUntil(lambda: loaded(model.cells[1].state), timeout=TIMEOUT_MS)
    assert all(a is b for a, b in zip(model.cells[1].state.frames, win.state.frames, strict=True))

    # into viewport 1 (the window's own viewer), which becomes active again
    assert drag_to(grid.widgets[0], series_mime(second)) == (True, True)
    assert model.active == 0
    qtbot.waitUntil(lambda: win.state.series.series_instance_uid == second, timeout=TIMEOUT_MS)
    assert model.cells[1].series_uid == first

    # cells the grid builds later accept drops too
    model.set_preset("2x2")
    # entered before the new grid is laid out: the outline follows the cell on the next move
    assert drag_to(grid.widgets[3], series_mime(second), drop=False) == (True, False)
    qtbot.waitUntil(lambda: grid.frames[3].geometry().top() > grid.height() // 3)
    payload = series_mime(second)  # held: the event does not own it
    move = QDragMoveEvent(
        QPoint(5, 5),
        Qt.DropAction.CopyAction,
        payload,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    QApplication.sendEvent(grid.widgets[3], move)
    assert hint.geometry() == grid.frames[3].geometry()
    assert drag_to(grid.widgets[3], series_mime(second)) == (True, True)
    assert (model.active, model.cells[3].series_uid) == (3, second)
    model.set_preset("3x3")
    assert drag_to(grid.widgets[8], series_mime(first)) == (True, True)
    assert (model.active, model.cells[8].series_uid) == (8, first)
    model.set_active(0)
    model.set_preset("1x1")  # cells 2.. are deleted; the next grid makes new widgets
    model.set_preset("1x3")
    assert drag_to(grid.widgets[2], series_mime(first)) == (True, True)
    assert (model.active, model.cells[2].series_uid) == (2, first)
    assert model.cells[1].series_uid is None  # a new, empty cell
    for i in (0, 2):  # the loads end before the window shuts down
        qtbot.waitUntil(lambda i=i: loaded(model.cells[i].state), timeout=TIMEOUT_MS)


def test_file_drops_still_reach_the_window_and_stray_series_drops_do_nothing(
    qtbot: Any, window: Any, ct3: Path, mr: Path
) -> None:
    win = window
    open_and_index(qtbot, win, ct3)
    drop = install_series_drop(win)
    grid, model = win.grid, win.reading
    model.set_preset("1x2")
    assert [s.modality for _p, _st, s in win.state.index.iter_series()] == ["CT"]

    # a folder dragged from the file manager onto viewport 2: the window opens it
    files = QMimeData()
    files.setUrls([QUrl.fromLocalFile(str(mr))])
    assert drag_to(grid.widgets[1], files) == (True, True)
    qtbot.waitUntil(
        lambda: any(s.modality == "MR" for _p, _st, s in win.state.index.iter_series()),
        timeout=TIMEOUT_MS,
    )
    qtbot.waitUntil(lambda: not win.controller.indexing, timeout=TIMEOUT_MS)
    # opened as File > Open opens (shown in the window's viewer), not put in the cell
    mr_uid = uid_of(win, "MR")
    qtbot.waitUntil(lambda: model.cells[0].series_uid == mr_uid, timeout=TIMEOUT_MS)
    assert model.cells[1].series_uid is None

    # a series dropped outside the grid: refused by the window, nothing changes
    for target in (win, win.browser.viewport(), win.slider):
        assert drag_to(target, series_mime(uid_of(win, "CT"))) == (False, False)
    assert (model.active, model.cells[0].series_uid, model.cells[1].series_uid) == (
        0,
        mr_uid,
        None,
    )

    # a series closed since the drag began, or a payload that is no UID: said, not shown
    refused: list[str] = []
    drop.refused.connect(refused.append)
    assert drag_to(grid.widgets[1], series_mime("1.2.3.999")) == (True, True)
    bad = QMimeData()
    bad.setData(SERIES_MIME, b"../../etc/passwd \x00")
    assert drag_to(grid.widgets[1], bad) == (True, True)
    assert len(refused) == 2
    assert "'1.2.3.999'" in refused[0]
    assert "not in the open studies" in refused[0]
    assert "'../../etc/passwd ?' is not a series UID" in refused[1]
    assert win.statusBar().currentMessage() == refused[1]
    assert (model.active, model.cells[1].series_uid) == (0, None)


def test_series_uid_of_refuses_what_cannot_be_a_uid() -> None:
    assert series_uid_of(QMimeData()) is None
    assert series_uid_of(series_mime(" 1.2.840.1 ")) == "1.2.840.1"
    for payload in (b"", b"a b", b"\xff\xfe", b"1" * 300):
        data = QMimeData()
        data.setData(SERIES_MIME, payload)
        with pytest.raises(SeriesDropError, match="is not a series UID"):
            series_uid_of(data)


def test_cells_a_hanging_stage_builds_accept_drops(qtbot: Any, ct_dir: Path) -> None:
    """A hanging stage lays out its grid before the grid builds the cell widgets (no
    grid_changed after they exist): the drop targets still reach them."""
    from PySide6.QtWidgets import QMainWindow

    from core.imaging.index import build_index
    from core.viewer.hanging import hang, load_protocols
    from core.viewer.layout import Layout
    from desktop.series_drop import SeriesDrop
    from desktop.viewport_grid import ViewportGrid
    from desktop.viewport_widget import ViewportWidget
    from desktop.workers import ErrorSink, JobRunner
    from tests.viewer.test_hanging import prior_of

    first = ViewerState()
    first.add_index(build_index([ct_dir]))
    (patient,) = first.index.patients.values()
    (ct,) = patient.studies.values()
    prior = prior_of(ct, "20100101")
    patient.studies[prior.study_instance_uid] = prior
    layout = Layout(first=first)
    runner = JobRunner(ErrorSink())
    win = QMainWindow()
    grid = ViewportGrid(layout, ViewportWidget(first), runner=runner)
    win.setCentralWidget(grid)
    qtbot.addWidget(win)
    win.resize(900, 700)
    win.show()
    drop = SeriesDrop(grid)
    try:
        grid.show_hanging(hang(ct, [prior], load_protocols()))
        assert len(grid.widgets) == 4
        qtbot.waitUntil(lambda: all(w.acceptDrops() for w in grid.widgets), timeout=5000)
        prior_uid = next(iter(prior.series))
        assert drag_to(grid.widgets[2], series_mime(prior_uid)) == (True, True)
        assert (layout.active, layout.cells[2].series_uid) == (2, prior_uid)
        assert drop.cells.owns(grid.widgets[3])
        # a drop on a reformat covering its cell reaches the cell (Qt offers it to the
        # nearest parent that accepts drops)
        mpr = grid.mpr[1]
        assert mpr.isVisible()
        assert drag_to(mpr, series_mime(prior_uid)) == (True, True)
        assert (layout.active, layout.cells[1].series_uid) == (1, prior_uid)
    finally:
        assert runner.shutdown(10_000)


def test_browser_follows_the_active_viewport(qtbot: Any, window: Any, ct3: Path, mr: Path) -> None:
    win = window
    open_and_index(qtbot, win, ct3, mr)
    install_series_drop(win)
    browser, model = win.browser, win.reading
    first = win.state.series.series_instance_uid
    second = next(uid for uid in browser._series_items if uid != first)
    model.set_preset("1x2")
    assert drag_to(win.grid.widgets[1], series_mime(second)) == (True, True)
    assert browser.currentItem() is browser._series_items[second]  # the active viewport's
    model.set_active(0)
    assert browser.currentItem() is browser._series_items[first]
    # viewport 2 active: a click on the series viewport 1 shows opens it there too
    model.set_active(1)
    item = browser._series_items[first]
    with qtbot.waitSignal(browser.series_activated, timeout=5000) as got:
        browser.itemClicked.emit(item, 0)
    assert got.args == [first]
    assert model.cells[1].series_uid == first
    assert model.cells[0].series_uid == first
    # a click on the series the active viewport already shows reopens nothing
    opened: list[str] = []
    browser.series_activated.connect(opened.append)
    browser.itemClicked.emit(item, 0)
    assert opened == []
    for state in (model.cells[0].state, model.cells[1].state):
        qtbot.waitUntil(lambda state=state: loaded(state), timeout=TIMEOUT_MS)
