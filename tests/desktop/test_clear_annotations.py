"""The toolbar's Clear (Del) in the real main window on a real SQLCipher profile (issue 17):
it deletes the signed-in user's stored annotations on the image of the active viewport through
the annotation layer - each an audited delete that Undo brings back - after a confirmation when
more than one would go; other authors' annotations and those on other images stay."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtWidgets import QMessageBox

from core.app.annotations import list_annotations
from core.app.workstation import Workstation
from core.audit.vocabulary import EventType
from core.config import SecuritySettings
from core.security.users import Role
from core.viewer.measure import Measurement
from desktop.annotation_layer import AnnotationLayer, where_acquired
from tests.conftest import DICOM_DATA
from tests.desktop.test_annotation_cells import room  # noqa: F401 - the reformat fixture
from tests.desktop.workstation.helpers import PASSWORD, add_users

CT3_DIR = DICOM_DATA / "QIICR__dcmqi" / "data" / "segmentations" / "ct-3slice"
TIMEOUT_MS = 60_000


@pytest.fixture
def open_window(qtbot: Any) -> Iterator[Callable[[Workstation], Any]]:
    """Main windows on a signed-in profile, as the app makes them; shut down after the test."""
    from desktop.main_window import MainWindow

    if not CT3_DIR.is_dir():
        pytest.skip(f"the shared 3-slice CT is not at '{CT3_DIR}'")
    windows: list[Any] = []

    def make(ws: Workstation) -> Any:
        win = MainWindow(workstation=ws, hang_on_open=False)
        qtbot.addWidget(win)
        win.resize(1280, 860)
        win.show()
        qtbot.waitExposed(win)
        windows.append(win)
        return win

    yield make
    for win in windows:
        assert win.shutdown(10_000)


@pytest.fixture
def profile(tmp_path: Path) -> Path:
    db = tmp_path / "ws.db"
    ws = Workstation.open(db, SecuritySettings(lock_timeout_min=30))
    add_users(ws)
    ws.users.create_user("rad2", PASSWORD, Role.RADIOLOGIST, by="admin")
    ws.close()
    return db


def signed_in(db: Path, user: str) -> Workstation:
    ws = Workstation.open(db, SecuritySettings(lock_timeout_min=30))
    ws.session.login(user, PASSWORD)
    return ws


def open_ct(qtbot: Any, win: Any) -> tuple[AnnotationLayer, str]:
    """Open the 3-slice CT; wait until it is shown, recorded and its annotations read."""
    layer = win.annotations
    win.open_paths([str(CT3_DIR)])
    qtbot.waitUntil(lambda: where_acquired(win.viewport) is not None, timeout=TIMEOUT_MS)
    qtbot.waitUntil(lambda: not win.controller.indexing, timeout=TIMEOUT_MS)
    at = where_acquired(win.viewport)
    assert at is not None
    qtbot.waitUntil(lambda: at.study_uid in layer.loaded, timeout=TIMEOUT_MS)
    return layer, at.study_uid


def go_to(qtbot: Any, win: Any, index: int) -> str:
    """Show slice ``index``; returns its SOP Instance UID."""
    win.state.viewport.slice_index = index
    ref = win.state.current_slice()
    assert ref is not None
    want = ref.instance.sop_instance_uid

    def shown() -> bool:
        at = where_acquired(win.viewport)
        return at is not None and getattr(at.image, "sop_instance_uid", "") == want

    qtbot.waitUntil(shown, timeout=TIMEOUT_MS)
    return str(want)


def draw_length(qtbot: Any, win: Any, row: float) -> None:
    """A Length drawn with the mouse across the image at ``row`` (image pixels)."""
    at = where_acquired(win.viewport)
    assert at is not None
    points = [at.to_screen((row, 150.0)), at.to_screen((row, 350.0))]
    a, b = (QPoint(round(x), round(y)) for x, y in points)
    win.actions_by_name["Length"].trigger()
    qtbot.mousePress(win.viewport, Qt.MouseButton.LeftButton, pos=a)
    qtbot.mouseMove(win.viewport, b)
    qtbot.mouseRelease(win.viewport, Qt.MouseButton.LeftButton, pos=b)


def settle(qtbot: Any, layer: AnnotationLayer) -> None:
    qtbot.waitUntil(lambda: layer.writer.pending == 0, timeout=TIMEOUT_MS)


def stored(ws: Workstation, study: str) -> dict[str, tuple[str, str]]:
    """The study's live annotations in the store: uid -> (author, image)."""
    return {a.uid: (a.author, a.sop_instance_uid) for a in list_annotations(ws, study)}


def deletes(ws: Workstation, user: str) -> int:
    return sum(
        1
        for e in ws.audit.iter_events(event_type=EventType.INSTANCES_ACCESSED, user=user)
        if e.details.get("action") == "annotation-delete"
    )


def clear_box(win: Any) -> QMessageBox | None:
    found = [
        b
        for b in win.findChildren(QMessageBox, "clearAnnotationsBox")
        if isinstance(b, QMessageBox) and b.isVisible()
    ]
    return found[0] if found else None


def test_clear_deletes_my_annotations_on_the_image_after_a_confirmation(
    qtbot: Any, open_window: Any, profile: Path
) -> None:
    # another radiologist's Length on slice 1
    ws2 = signed_in(profile, "rad2")
    win2 = open_window(ws2)
    layer2, study = open_ct(qtbot, win2)
    go_to(qtbot, win2, 1)
    draw_length(qtbot, win2, 100.0)
    settle(qtbot, layer2)
    (theirs,) = layer2.shown
    win2.close()
    ws2.close()

    ws = signed_in(profile, "rad")
    win = open_window(ws)
    layer, study_again = open_ct(qtbot, win)
    assert study_again == study
    qtbot.waitUntil(lambda: theirs in layer.shown, timeout=TIMEOUT_MS)
    on_two = go_to(qtbot, win, 2)
    draw_length(qtbot, win, 200.0)  # mine, on another image: stays
    settle(qtbot, layer)
    (elsewhere,) = [u for u, a in layer.shown.items() if a.author == "rad"]
    on_one = go_to(qtbot, win, 1)
    draw_length(qtbot, win, 250.0)
    settle(qtbot, layer)
    layer.selected = None
    draw_length(qtbot, win, 400.0)
    settle(qtbot, layer)
    mine = {u for u, (who, image) in stored(ws, study).items() if who == "rad" and image == on_one}
    assert len(mine) == 2
    assert stored(ws, study)[theirs] == ("rad2", on_one)
    assert stored(ws, study)[elsewhere] == ("rad", on_two)
    win.state.add_measurement(Measurement("length", 1, (1, 1), (9, 1)))  # unsaved, in memory
    before = deletes(ws, "rad")

    # two of mine would go: a confirmation first; Cancel clears nothing
    win.actions_by_name["Clear"].trigger()
    box = clear_box(win)
    assert box is not None
    assert "2 annotations" in box.text()
    assert "Other authors" in box.text()
    qtbot.mouseClick(box.button(QMessageBox.StandardButton.Cancel), Qt.MouseButton.LeftButton)
    assert clear_box(win) is None
    settle(qtbot, layer)
    assert mine <= set(stored(ws, study))
    assert len(win.state.measurements) == 1

    # Yes: mine on this image go, through the layer (stored, audited); the rest stay
    win.actions_by_name["Clear"].trigger()
    box = clear_box(win)
    assert box is not None
    qtbot.mouseClick(box.button(QMessageBox.StandardButton.Yes), Qt.MouseButton.LeftButton)
    assert not mine & set(layer.shown)  # gone from the screen at once
    settle(qtbot, layer)
    assert set(stored(ws, study)) == {theirs, elsewhere}
    assert deletes(ws, "rad") - before == 2
    assert win.state.measurements == []
    win.viewport.repaint()
    assert {a.uid for a in layer.painted_on(win.viewport)} == {theirs}

    # undoable like a Delete: Undo brings the last one back, stored again
    win.actions_by_name["Undo annotation"].trigger()
    settle(qtbot, layer)
    back = set(stored(ws, study)) - {theirs, elsewhere}
    assert len(back) == 1
    assert back <= mine
    qtbot.waitUntil(lambda: back <= set(layer.shown), timeout=TIMEOUT_MS)

    # one of mine on the image: cleared without asking; another author's alone: nothing to do
    layer.selected = None  # Del belongs to Clear when nothing is selected
    win.activateWindow()  # a window shortcut needs its window active
    win.viewport.setFocus()
    qtbot.waitUntil(win.isActiveWindow, timeout=TIMEOUT_MS)
    qtbot.keyClick(win.viewport, Qt.Key.Key_Delete)
    assert clear_box(win) is None
    settle(qtbot, layer)
    assert set(stored(ws, study)) == {theirs, elsewhere}
    win.actions_by_name["Clear"].trigger()
    assert clear_box(win) is None
    settle(qtbot, layer)
    assert set(stored(ws, study)) == {theirs, elsewhere}
    assert deletes(ws, "rad") - before == 3
    ws.close()


def test_clear_finds_the_annotations_of_the_reformat_the_active_viewport_shows(
    qtbot: Any,
    room: Any,  # noqa: F811
) -> None:
    """In a reformatted viewport the image Clear acts on is the plane shown (not the acquired
    slice under it); another viewport active: that one's image."""
    from core.annotations.model import PlaneImage
    from desktop.annotation_layer import where_reformat
    from tests.desktop.test_viewport_grid_mpr import COUNT, PIXEL, SIZE, SPACING, START, show
    from tests.viewer.synthetic import stack

    grid, layer = room
    series = stack(
        "2.1", COUNT, SPACING, start=START, size=(SIZE, SIZE), pixel_spacing=(PIXEL,) * 2
    )
    show(grid, 1, series, "coronal")
    cell = grid.mpr[1]
    qtbot.waitUntil(lambda: cell.view is not None, timeout=10_000)
    qtbot.waitUntil(lambda: any(w is cell for w in layer.widgets), timeout=5_000)
    grid.widgets[1].tool = "length"
    at = where_reformat(cell)
    assert at is not None

    def s(row: float, col: float) -> QPoint:
        x, y = at.to_screen((row, col))
        return QPoint(round(x), round(y))

    qtbot.mousePress(cell, Qt.MouseButton.LeftButton, pos=s(20, 10))
    qtbot.mouseMove(cell, s(40, 10))
    qtbot.mouseRelease(cell, Qt.MouseButton.LeftButton, pos=s(60, 10))
    qtbot.waitUntil(lambda: layer.writer.pending == 0, timeout=5_000)
    (a,) = layer.shown.values()
    grid.model.set_active(1)
    where = layer.active_where()
    assert where is not None
    assert isinstance(where.image, PlaneImage)
    assert [x.uid for x in layer.mine_on(where.image)] == [a.uid]
    assert cell.view is not None
    cell.view.step(3)  # another coronal plane: nothing of mine there
    where = layer.active_where()
    assert where is not None
    assert layer.mine_on(where.image) == []
    cell.view.step(-3)
    grid.model.set_active(0)  # the other viewport (nothing shown there)
    assert layer.active_where() is None
    grid.model.set_active(1)
    where = layer.active_where()
    assert where is not None
    assert layer.delete_each([x.uid for x in layer.mine_on(where.image)]) == 1
    qtbot.waitUntil(lambda: layer.writer.pending == 0, timeout=5_000)
    assert layer.shown == {}
