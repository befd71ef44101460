"""The annotation layer over the reading room's cells: a reformatted plane is annotated in mm
by mouse and the annotation is drawn only where that plane is shown; a grid cell removed leaves
a state that can no longer reach its deleted widget (nor the layer)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import shiboken6
from PySide6.QtCore import QCoreApplication, QEvent, QPoint, Qt
from PySide6.QtWidgets import QMainWindow

from core.annotations.model import Kind, PlaneImage
from core.viewer.layout import Layout
from core.viewer.state import ViewerState
from desktop.annotation_layer import AnnotationLayer, where_reformat
from desktop.grid_cells import GridCells
from desktop.viewport_grid import ViewportGrid
from desktop.viewport_widget import ViewportWidget
from desktop.workers import ErrorSink, JobRunner
from tests.desktop.test_viewport_grid_mpr import COUNT, PIXEL, SIZE, SPACING, START, show
from tests.viewer.synthetic import stack


@pytest.fixture
def room(qtbot: Any) -> Iterator[tuple[ViewportGrid, AnnotationLayer]]:
    first = ViewerState()
    runner = JobRunner(ErrorSink())
    win = QMainWindow()
    grid = ViewportGrid(Layout(1, 2, first=first), ViewportWidget(first), runner=runner)
    win.setCentralWidget(grid)
    qtbot.addWidget(win)
    win.resize(1000, 600)
    win.show()
    qtbot.waitExposed(win)
    layer = AnnotationLayer(runner, None, win)  # session-only: no profile
    layer.grid = grid
    cells = GridCells(grid)
    cells.added.connect(layer.attach)
    cells.start()
    yield grid, layer
    assert runner.shutdown(10_000)


def test_a_reformat_is_annotated_in_its_plane_and_shown_only_there(qtbot: Any, room: Any) -> None:
    grid, layer = room
    series = stack(
        "2.1", COUNT, SPACING, start=START, size=(SIZE, SIZE), pixel_spacing=(PIXEL,) * 2
    )
    show(grid, 1, series, "coronal")
    cell = grid.mpr[1]
    qtbot.waitUntil(lambda: cell.view is not None, timeout=10_000)
    qtbot.waitUntil(lambda: any(w is cell for w in layer.widgets), timeout=5_000)
    cell.state.viewport.set_window(500.0, 1000.0)
    grid.widgets[1].tool = "length"
    at = where_reformat(cell)
    assert at is not None
    assert isinstance(at.image, PlaneImage)

    def s(row: float, col: float) -> QPoint:
        x, y = at.to_screen((row, col))
        return QPoint(round(x), round(y))

    qtbot.mousePress(cell, Qt.MouseButton.LeftButton, pos=s(20, 10))
    qtbot.mouseMove(cell, s(30, 10))
    qtbot.mouseMove(cell, s(60, 10))
    qtbot.mouseRelease(cell, Qt.MouseButton.LeftButton, pos=s(60, 10))
    qtbot.waitUntil(lambda: layer.writer.pending == 0, timeout=5_000)
    (a,) = layer.shown.values()
    assert a.kind is Kind.LENGTH
    assert isinstance(a.image, PlaneImage)
    assert a.image.shows(at.image)
    # 40 rows of the plane's square pixels, in mm: the length is told in mm
    (line,) = layer.lines(a, None)
    mm = abs(a.points[1][0] - a.points[0][0]) * cell.view.plane().pixel_size
    assert line == f"{mm:.1f} mm"
    cell.repaint()
    assert layer.painted_on(cell) == [a]
    assert cell.view is not None
    cell.view.step(3)  # another coronal plane: not drawn there
    cell.repaint()
    assert layer.painted_on(cell) == []
    cell.view.step(-3)
    cell.repaint()
    assert [x.uid for x in layer.painted_on(cell)] == [a.uid]
    # moved by its body in the plane's grid
    grid.widgets[1].tool = "window"
    qtbot.mousePress(cell, Qt.MouseButton.LeftButton, pos=s(40, 10))
    qtbot.mouseMove(cell, s(40, 15))
    qtbot.mouseMove(cell, s(40, 20))
    qtbot.mouseRelease(cell, Qt.MouseButton.LeftButton, pos=s(40, 20))
    qtbot.waitUntil(lambda: layer.writer.pending == 0, timeout=5_000)
    moved = layer.shown[a.uid]
    assert moved.points[0][1] - a.points[0][1] == pytest.approx(10, abs=0.5)
    assert moved.points[1][0] - moved.points[0][0] == pytest.approx(a.points[1][0] - a.points[0][0])


def test_a_removed_cell_leaves_a_state_that_no_longer_calls_its_widget(
    qtbot: Any, room: Any
) -> None:
    grid, layer = room
    second = grid.model.cells[1].state
    widget = grid.widgets[1]
    assert any(w is widget for w in layer.widgets)
    grid.model.set_grid(1, 1)
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete.value)
    qtbot.waitUntil(lambda: not shiboken6.isValid(widget), timeout=5_000)
    # before the fix: RuntimeError 'Internal C++ object already deleted' from clear_heatmaps
    second.series_changed.emit(None)
    second.frame_loaded.emit(0)
    second.measurements_changed.emit()
    second.hide_phi_changed.emit(True)
    second.viewport.set_window(40.0, 400.0)
    assert not any(w is widget for w in layer.widgets)


def test_a_crowded_image_labels_at_most_max_labels_never_overlapping_the_selected_first(
    qtbot: Any, room: Any
) -> None:
    from core.annotations.model import AcquiredImage, Annotation
    from desktop.annotation_layer import MAX_LABELS, where_acquired
    from tests.desktop.test_viewport_grid import fill

    grid, layer = room
    fill(grid.model, 0, stack("3.1", 3, 2.5, size=(256, 256)))
    w = grid.widgets[0]
    qtbot.waitUntil(lambda: where_acquired(w) is not None, timeout=5_000)
    at = where_acquired(w)
    assert at is not None
    assert isinstance(at.image, AcquiredImage)
    crowd = [
        Annotation(
            Kind.RECTANGLE,
            ((10 + (k % 10) * 24, 10 + (k // 10) * 24), (30 + (k % 10) * 24, 30 + (k // 10) * 24)),
            at.image,
            at.study_uid,
            at.series_uid,
            author=layer.author,
        )
        for k in range(MAX_LABELS + 40)
    ]
    for a in crowd:
        layer.shown[a.uid] = a
    layer.selected = crowd[-1].uid  # bottom right: labelled because it is selected
    w.repaint()
    drawn = layer.painted_items(w)
    assert len(drawn) == len(crowd)
    rects = [r for _, _, r in drawn if r.width > 0]
    assert len(rects) == MAX_LABELS
    assert not any(x.intersects(y) for i, x in enumerate(rects) for y in rects[i + 1 :])
    labelled = {a.uid for a, _, r in drawn if r.width > 0}
    assert crowd[-1].uid in labelled
    assert crowd[0].uid in labelled  # the top-left most next


def test_an_angle_half_clicked_is_dropped_when_the_tool_changes(qtbot: Any, room: Any) -> None:
    from desktop.annotation_layer import where_acquired
    from tests.desktop.test_viewport_grid import fill

    grid, layer = room
    fill(grid.model, 0, stack("4.1", 3, 2.5, size=(256, 256)))
    w = grid.widgets[0]
    qtbot.waitUntil(lambda: where_acquired(w) is not None, timeout=5_000)
    at = where_acquired(w)
    assert at is not None

    def s(row: float, col: float) -> QPoint:
        x, y = at.to_screen((row, col))
        return QPoint(round(x), round(y))

    w.tool = "angle"
    qtbot.mouseClick(w, Qt.MouseButton.LeftButton, pos=s(50, 50))
    qtbot.mouseClick(w, Qt.MouseButton.LeftButton, pos=s(100, 50))
    assert layer.drawing is not None
    w.tool = "length"
    qtbot.mousePress(w, Qt.MouseButton.LeftButton, pos=s(150, 150))
    qtbot.mouseMove(w, s(150, 180))
    qtbot.mouseMove(w, s(150, 200))
    qtbot.mouseRelease(w, Qt.MouseButton.LeftButton, pos=s(150, 200))
    qtbot.waitUntil(lambda: layer.writer.pending == 0, timeout=5_000)
    assert layer.drawing is None
    assert [a.kind for a in layer.shown.values()] == [Kind.LENGTH]


def test_the_context_menu_deletes_the_annotation_under_the_mouse(qtbot: Any, room: Any) -> None:
    from PySide6.QtGui import QContextMenuEvent
    from PySide6.QtWidgets import QApplication, QMenu

    from desktop.annotation_layer import where_acquired
    from tests.desktop.test_viewport_grid import fill

    grid, layer = room
    fill(grid.model, 0, stack("5.1", 3, 2.5, size=(256, 256)))
    w = grid.widgets[0]
    qtbot.waitUntil(lambda: where_acquired(w) is not None, timeout=5_000)
    at = where_acquired(w)
    assert at is not None

    def s(row: float, col: float) -> QPoint:
        x, y = at.to_screen((row, col))
        return QPoint(round(x), round(y))

    w.tool = "ellipse"
    for a, b in (((40, 40), (90, 120)), ((150, 150), (200, 220))):
        qtbot.mousePress(w, Qt.MouseButton.LeftButton, pos=s(*a))
        qtbot.mouseMove(w, s(*b))
        qtbot.mouseRelease(w, Qt.MouseButton.LeftButton, pos=s(*b))
    qtbot.waitUntil(lambda: layer.writer.pending == 0, timeout=5_000)
    first, second = layer.shown.values()
    w.tool = "window"
    w.repaint()
    spot = s(65, 80)  # inside the first ellipse
    QApplication.sendEvent(
        w, QContextMenuEvent(QContextMenuEvent.Reason.Mouse, spot, w.mapToGlobal(spot))
    )
    menus = [m for m in w.findChildren(QMenu) if m.isVisible()]
    assert len(menus) == 1
    (delete,) = [a for a in menus[0].actions() if a.text() == "Delete annotation"]
    delete.trigger()
    menus[0].close()
    qtbot.waitUntil(lambda: layer.writer.pending == 0, timeout=5_000)
    assert list(layer.shown) == [second.uid]
    assert first.uid not in {a.uid for a in layer.sessions[at.study_uid].all()}
