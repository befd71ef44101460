"""The annotation tools in the real main window on a real SQLCipher profile: each tool drawn
with mouse events, one edited by its handle, a label dragged, one deleted with the Delete key,
undo and redo by their keys; the window closed, a new one opened on the same profile finds
every annotation as it was left, on its image. Also: a grid cell removed leaves its state
unable to reach the deleted widget."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QAction

from core.annotations.model import Kind
from core.app.annotations import list_annotations
from core.app.workstation import Workstation
from core.config import SecuritySettings
from core.security.users import Role
from desktop.annotation_layer import AnnotationLayer, install_annotations, where_acquired
from tests.desktop.workstation.helpers import PASSWORD, add_users

CR = Path(__file__).resolve().parents[2] / "resources" / "sample" / "chest_cr" / "RG1_J2KI.dcm"
TIMEOUT_MS = 60_000


@pytest.fixture
def open_window(qtbot: Any) -> Iterator[Callable[[Workstation], Any]]:
    """Main windows on a signed-in profile, as the app makes them; shut down after the test."""
    from PySide6.QtWidgets import QApplication

    from desktop.main_window import MainWindow
    from desktop.theme import apply_dark_theme

    apply_dark_theme(QApplication.instance())  # type: ignore[arg-type]
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
    ws.close()
    return db


def signed_in(db: Path, user: str = "rad") -> Workstation:
    ws = Workstation.open(db, SecuritySettings(lock_timeout_min=30))
    ws.session.login(user, PASSWORD)
    return ws


def open_study(qtbot: Any, win: Any, layer: AnnotationLayer) -> str:
    """Open the CR and wait until it is shown, recorded and its annotations read."""
    win.open_paths([CR])
    qtbot.waitUntil(lambda: where_acquired(win.viewport) is not None, timeout=TIMEOUT_MS)
    qtbot.waitUntil(lambda: not win.controller.indexing, timeout=TIMEOUT_MS)
    at = where_acquired(win.viewport)
    assert at is not None
    qtbot.waitUntil(lambda: at.study_uid in layer.loaded, timeout=TIMEOUT_MS)
    return at.study_uid


def screen(win: Any, row: float, col: float) -> QPoint:
    at = where_acquired(win.viewport)
    assert at is not None
    x, y = at.to_screen((row, col))
    return QPoint(round(x), round(y))


def drag(qtbot: Any, w: Any, points: list[QPoint]) -> None:
    qtbot.mousePress(w, Qt.MouseButton.LeftButton, pos=points[0])
    for p in points[1:]:
        qtbot.mouseMove(w, p)
    qtbot.mouseRelease(w, Qt.MouseButton.LeftButton, pos=points[-1])


def click(qtbot: Any, w: Any, p: QPoint) -> None:
    qtbot.mouseMove(w, p)
    qtbot.mousePress(w, Qt.MouseButton.LeftButton, pos=p)
    qtbot.mouseRelease(w, Qt.MouseButton.LeftButton, pos=p)


def quick_second_click(qtbot: Any, w: Any, p: QPoint) -> None:
    """The second click of a double-click as Qt 6 delivers it: press, double-click, release."""
    from PySide6.QtCore import QEvent, QPointF
    from PySide6.QtGui import QMouseEvent
    from PySide6.QtWidgets import QApplication

    qtbot.mousePress(w, Qt.MouseButton.LeftButton, pos=p)
    event = QMouseEvent(
        QEvent.Type.MouseButtonDblClick,
        QPointF(p),
        QPointF(w.mapToGlobal(p)),
        Qt.MouseButton.LeftButton,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    QApplication.sendEvent(w, event)
    qtbot.mouseRelease(w, Qt.MouseButton.LeftButton, pos=p)


def use(win: Any, label: str) -> None:
    win.actions_by_name[label].trigger()


def settle(qtbot: Any, layer: AnnotationLayer) -> None:
    qtbot.waitUntil(lambda: layer.writer.pending == 0, timeout=TIMEOUT_MS)


def state_of(layer: AnnotationLayer) -> dict[str, tuple[Any, ...]]:
    return {a.uid: (a.kind, a.points, a.text, a.label_pos, a.author) for a in layer.shown.values()}


def stored(ws: Workstation, study: str) -> dict[str, tuple[Any, ...]]:
    return {
        a.uid: (a.kind, a.points, a.text, a.label_pos, a.author)
        for a in list_annotations(ws, study)
    }


def draw_every_tool(qtbot: Any, win: Any, layer: AnnotationLayer) -> None:
    vp = win.viewport

    def s(row: float, col: float) -> QPoint:
        return screen(win, row, col)

    use(win, "Length")
    drag(qtbot, vp, [s(300, 300), s(300, 450), s(300, 600)])
    use(win, "Angle")
    for p in (s(600, 300), s(700, 300), s(700, 450)):
        click(qtbot, vp, p)
    use(win, "Cobb")  # clicked quickly: the second click of each pair is a double-click
    for a, b in ((s(900, 250), s(880, 500)), (s(1100, 250), s(1150, 500))):
        click(qtbot, vp, a)
        quick_second_click(qtbot, vp, b)
    use(win, "Ellipse")
    drag(qtbot, vp, [s(300, 1000), s(400, 1100), s(450, 1200)])
    use(win, "Freehand")
    drag(qtbot, vp, [s(700, 1000), s(700, 1150), s(800, 1200), s(850, 1050), s(760, 980)])
    use(win, "ROI")
    drag(qtbot, vp, [s(1000, 1000), s(1100, 1100), s(1150, 1250)])
    use(win, "Probe")
    click(qtbot, vp, s(1400, 400))
    use(win, "Arrow")
    drag(qtbot, vp, [s(1400, 900), s(1450, 1000), s(1500, 1100)])
    use(win, "Text")
    click(qtbot, vp, s(1600, 1400))
    qtbot.waitUntil(lambda: layer.text_dialog is not None, timeout=5_000)
    assert layer.text_dialog is not None
    layer.text_dialog.setTextValue("left apex nodule")
    layer.text_dialog.accept()
    win.activateWindow()  # as the window manager does when a dialog closes
    qtbot.waitUntil(win.isActiveWindow, timeout=5_000)


def test_every_tool_drawn_edited_deleted_undone_and_found_after_a_restart(
    qtbot: Any, open_window: Any, profile: Path
) -> None:
    ws = signed_in(profile)
    win = open_window(ws)
    layer = install_annotations(win)
    assert win.annotations is layer
    assert install_annotations(win) is layer  # once only, whoever calls it again
    keys = [
        k.toString()
        for a in win.findChildren(QAction)
        for k in a.shortcuts()
        if not k.isEmpty() and a.isEnabled()
    ]
    assert len(keys) == len(set(keys)), "two actions share a key: neither would fire"
    tools_menu = [a.text() for a in win.menus.tools.actions()]
    for name in (
        "Angle",
        "Cobb",
        "Ellipse",
        "Freehand",
        "Probe",
        "Arrow",
        "Text",
        "Undo annotation",
    ):
        assert name in tools_menu
    study = open_study(qtbot, win, layer)
    draw_every_tool(qtbot, win, layer)
    settle(qtbot, layer)

    kinds = sorted(a.kind.value for a in layer.shown.values())
    assert kinds == sorted(k.value for k in Kind)
    assert all(a.author == "rad" for a in layer.shown.values())
    assert stored(ws, study) == state_of(layer)
    by_kind = {a.kind: a for a in layer.shown.values()}
    assert by_kind[Kind.TEXT].text == "left apex nodule"
    assert len(by_kind[Kind.FREEHAND].points) >= 4
    cobb = [screen(win, *p) for p in by_kind[Kind.COBB].points]
    wanted = [screen(win, *p) for p in ((900, 250), (880, 500), (1100, 250), (1150, 500))]
    assert [(q.x(), q.y()) for q in cobb] == [(q.x(), q.y()) for q in wanted]
    assert win.grid.model.maximised is None
    win.viewport.repaint()
    assert len(layer.painted_on(win.viewport)) == 9
    rects = [r for _, _, r in layer.painted_items(win.viewport) if r.width > 0]
    assert len(rects) == 8  # every tool but the arrow says something
    assert not any(a.intersects(b) for a, b in itertools.combinations(rects, 2))

    # edit: the length's far end dragged by its handle (W/L tool: selecting needs no tool)
    use(win, "W/L")
    length = by_kind[Kind.LENGTH]
    drag(qtbot, win.viewport, [screen(win, 300, 600), screen(win, 350, 650), screen(win, 400, 700)])
    settle(qtbot, layer)
    edited = layer.shown[length.uid]
    assert edited.points[0] == length.points[0]
    assert edited.points[1] == pytest.approx((400, 700), abs=2.0)
    assert list_annotations(ws, study)
    assert stored(ws, study)[length.uid][1] == edited.points

    # a label dragged stays where it was put
    win.viewport.repaint()
    rect = layer.label_rect(win.viewport, by_kind[Kind.ELLIPSE].uid)
    assert rect is not None
    grab = QPoint(round(rect.left + 5), round(rect.top + 5))
    drag(qtbot, win.viewport, [grab, grab + QPoint(30, 40), grab + QPoint(60, 80)])
    settle(qtbot, layer)
    win.viewport.repaint()
    moved = layer.label_rect(win.viewport, by_kind[Kind.ELLIPSE].uid)
    assert moved is not None
    assert layer.shown[by_kind[Kind.ELLIPSE].uid].label_pos is not None
    assert (moved.left - rect.left, moved.top - rect.top) == pytest.approx((60, 80), abs=1.5)

    # a text label's text edited: double-click on it
    text = by_kind[Kind.TEXT]
    win.viewport.repaint()
    box = layer.label_rect(win.viewport, text.uid)
    assert box is not None
    spot = QPoint(round((box.left + box.right) / 2), round((box.top + box.bottom) / 2))
    layer.text_dialog = None
    qtbot.mouseDClick(win.viewport, Qt.MouseButton.LeftButton, pos=spot)
    qtbot.waitUntil(lambda: layer.text_dialog is not None, timeout=5_000)
    assert layer.text_dialog is not None
    assert layer.text_dialog.textValue() == "left apex nodule"
    layer.text_dialog.setTextValue("left apex nodule, 8 mm")
    layer.text_dialog.accept()
    win.activateWindow()
    qtbot.waitUntil(win.isActiveWindow, timeout=5_000)
    settle(qtbot, layer)
    assert stored(ws, study)[text.uid][2] == "left apex nodule, 8 mm"
    assert win.grid.model.maximised is None  # the double-click was the label's, not the grid's

    # delete: the arrow selected by a click on its shaft, then the Delete key
    arrow = by_kind[Kind.ARROW]
    click(qtbot, win.viewport, screen(win, 1450, 1000))
    assert layer.selected == arrow.uid
    qtbot.keyClick(win.viewport, Qt.Key.Key_Delete)
    settle(qtbot, layer)
    assert arrow.uid not in layer.shown
    assert arrow.uid not in stored(ws, study)
    assert layer.shown, "Delete took one annotation, not the viewport's all"
    qtbot.waitUntil(
        lambda: win.actions_by_name["Undo annotation"].statusTip() == "Undo delete", timeout=5_000
    )

    # undo brings the arrow back (same UID), redo deletes it again
    qtbot.keyClick(win.viewport, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    settle(qtbot, layer)
    qtbot.waitUntil(lambda: arrow.uid in layer.shown, timeout=5_000)
    assert arrow.uid in stored(ws, study)
    qtbot.keyClick(win.viewport, Qt.Key.Key_Y, Qt.KeyboardModifier.ControlModifier)
    settle(qtbot, layer)
    qtbot.waitUntil(lambda: arrow.uid not in layer.shown, timeout=5_000)
    # and undo/redo once more with Ctrl+Shift+Z
    qtbot.keyClick(win.viewport, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    settle(qtbot, layer)
    qtbot.waitUntil(lambda: arrow.uid in layer.shown, timeout=5_000)
    qtbot.keyClick(
        win.viewport,
        Qt.Key.Key_Z,
        Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier,
    )
    settle(qtbot, layer)
    qtbot.waitUntil(lambda: arrow.uid not in layer.shown, timeout=5_000)

    left = state_of(layer)
    assert len(left) == 8
    assert stored(ws, study) == left
    win.close()

    # the window restarted on the same profile: every annotation back on its image
    ws2 = signed_in(profile)
    win2 = open_window(ws2)
    layer2 = install_annotations(win2)
    open_study(qtbot, win2, layer2)
    assert state_of(layer2) == left
    win2.viewport.repaint()
    assert {a.uid for a in layer2.painted_on(win2.viewport)} == set(left)
    ws.close()


def test_another_authors_annotations_are_shown_read_only(
    qtbot: Any, open_window: Any, profile: Path
) -> None:
    ws = signed_in(profile)
    win = open_window(ws)
    layer = install_annotations(win)
    study = open_study(qtbot, win, layer)
    use(win, "Length")
    drag(qtbot, win.viewport, [screen(win, 300, 300), screen(win, 300, 600)])
    settle(qtbot, layer)
    (mine,) = layer.shown.values()
    win.close()

    ws.users.create_user("rad2", PASSWORD, Role.RADIOLOGIST, by="admin")
    ws2 = signed_in(profile, "rad2")
    win2 = open_window(ws2)
    layer2 = install_annotations(win2)
    open_study(qtbot, win2, layer2)
    assert layer2.shown[mine.uid].author == "rad"
    use(win2, "W/L")
    drag(qtbot, win2.viewport, [screen(win2, 300, 600), screen(win2, 400, 700)])
    click(qtbot, win2.viewport, screen(win2, 300, 450))
    assert layer2.selected == mine.uid
    qtbot.keyClick(win2.viewport, Qt.Key.Key_Delete)
    settle(qtbot, layer2)
    assert stored(ws2, study)[mine.uid][1] == mine.points  # neither moved nor deleted
    assert layer2.shown[mine.uid].points == mine.points
    ws.close()


def test_a_role_that_may_not_annotate_gets_the_tools_disabled_and_measures_unsaved(
    qtbot: Any, open_window: Any, profile: Path
) -> None:
    ws = signed_in(profile, "tech")
    win = open_window(ws)
    layer = install_annotations(win)
    study = open_study(qtbot, win, layer)
    assert not layer.may_write
    angle = win.actions_by_name["Angle"]
    assert not angle.isEnabled()
    assert "radiologist" in angle.text().lower() or "(" in angle.text()
    use(win, "Length")  # the viewport's own measurement: on screen, never stored
    drag(qtbot, win.viewport, [screen(win, 300, 300), screen(win, 300, 450), screen(win, 300, 600)])
    settle(qtbot, layer)
    assert len(win.state.measurements) == 1
    assert layer.shown == {}
    ws.close()
    rad = signed_in(profile)
    assert stored(rad, study) == {}
    rad.close()
