"""An MPR cell's tools driven by real mouse and key events: zoom/pan, the public mapping
between the widget and patient mm the grid uses (crosshair, reference lines), goto."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QWheelEvent

from core.viewer.layout import Layout
from core.viewer.state import ViewerState
from desktop.mpr_cell import MprCell
from desktop.viewport_grid import ViewportGrid
from desktop.viewport_widget import ViewportWidget
from desktop.workers import ErrorSink, JobRunner
from tests.desktop.test_viewport_grid_mpr import (
    CENTRE,
    COUNT,
    PIXEL,
    SIZE,
    SPACING,
    START,
    bright_box,
    show,
)
from tests.viewer.synthetic import stack


@pytest.fixture
def grid(qtbot):  # type: ignore[no-untyped-def]
    from PySide6.QtWidgets import QMainWindow

    first = ViewerState()
    runner = JobRunner(ErrorSink())
    win = QMainWindow()
    grid = ViewportGrid(Layout(1, 2, first=first), ViewportWidget(first), runner=runner)
    win.setCentralWidget(grid)
    qtbot.addWidget(win)
    win.resize(1000, 600)
    win.show()
    qtbot.waitExposed(win)
    yield grid
    assert runner.shutdown(10_000)


def coronal_cell(qtbot, grid: ViewportGrid, uid: str) -> MprCell:  # type: ignore[no-untyped-def]
    series = stack(uid, COUNT, SPACING, start=START, size=(SIZE, SIZE), pixel_spacing=(PIXEL,) * 2)
    show(grid, 1, series, "coronal")
    cell = grid.mpr[1]
    qtbot.waitUntil(lambda: cell.view is not None, timeout=10_000)
    cell.state.viewport.set_window(500.0, 1000.0)
    cell.repaint()
    return cell


def drag(qtbot, cell: MprCell, button: Qt.MouseButton, a: QPoint, b: QPoint) -> None:  # type: ignore[no-untyped-def]
    """A press, two moves and a release, as a hand would make them."""
    qtbot.mousePress(cell, button, pos=a)
    qtbot.mouseMove(cell, (a + b) / 2)
    qtbot.mouseMove(cell, b)
    qtbot.mouseRelease(cell, button, pos=b)


def test_widget_and_patient_positions_map_both_ways_through_zoom_and_pan(qtbot, grid) -> None:  # type: ignore[no-untyped-def]
    cell = coronal_cell(qtbot, grid, "2.1")
    plane = cell.current_plane()
    assert plane is not None
    r = cell.image_rect
    # the middle of the drawn image is the plane's centre
    middle = cell.widget_to_patient(r.center())
    assert middle is not None
    assert np.allclose(middle, plane.center, atol=1e-6)
    assert cell.widget_to_patient(QPointF(r.left() - 5, r.center().y())) is None  # off the image
    # the sphere's centre maps to the middle of its bright disc on screen
    at = cell.patient_to_widget(CENTRE)
    assert at is not None
    x, y, w, h = bright_box(cell.grab().toImage())
    assert at.x() == pytest.approx(x + w / 2, abs=1.5)
    assert at.y() == pytest.approx(y + h / 2, abs=1.5)

    # right drag upwards zooms in, middle drag pans: both emit view_changed
    zoom = cell.effective_zoom()
    with qtbot.waitSignal(cell.view_changed, timeout=1000):
        drag(qtbot, cell, Qt.MouseButton.RightButton, QPoint(200, 400), QPoint(200, 300))
    assert cell.effective_zoom() == pytest.approx(zoom * np.exp(100 / 200), rel=1e-6)
    with qtbot.waitSignal(cell.view_changed, timeout=1000):
        drag(qtbot, cell, Qt.MouseButton.MiddleButton, QPoint(200, 300), QPoint(240, 270))
    assert cell.state.viewport.pan == (40.0, -30.0)
    cell.repaint()
    # what is painted follows: the disc is larger and where patient_to_widget says
    x2, y2, w2, h2 = bright_box(cell.grab().toImage())
    assert w2 == pytest.approx(w * np.exp(0.5), rel=0.05)
    at = cell.patient_to_widget(CENTRE)
    assert at is not None
    assert at.x() == pytest.approx(x2 + w2 / 2, abs=1.5)
    assert at.y() == pytest.approx(y2 + h2 / 2, abs=1.5)
    # a round trip through any widget position on the image lands where it started
    r = cell.image_rect
    for fx, fy in ((0.2, 0.3), (0.5, 0.5), (0.9, 0.95)):
        pos = QPointF(r.left() + fx * r.width(), r.top() + fy * r.height())
        point = cell.widget_to_patient(pos)
        assert point is not None
        back = cell.patient_to_widget(point)
        assert back is not None
        assert (back.x(), back.y()) == pytest.approx((pos.x(), pos.y()), abs=1e-6)
    # Ctrl+wheel zooms too
    zoom = cell.effective_zoom()
    pos = QPointF(300, 300)
    cell.wheelEvent(
        QWheelEvent(
            pos,
            cell.mapToGlobal(pos),
            QPoint(0, 0),
            QPoint(0, 120),
            Qt.MouseButton.NoButton,
            Qt.KeyboardModifier.ControlModifier,
            Qt.ScrollPhase.NoScrollPhase,
            False,
        )
    )
    assert cell.effective_zoom() == pytest.approx(zoom * 1.15)


def test_goto_moves_the_plane_through_the_point_and_says_so(qtbot, grid) -> None:  # type: ignore[no-untyped-def]
    cell = coronal_cell(qtbot, grid, "2.2")
    view = cell.view
    assert view is not None
    target = np.array([3.0, 11.3, 40.0])
    with qtbot.waitSignal(cell.plane_changed, timeout=1000):
        cell.goto(target)
    plane = cell.current_plane()
    assert plane is not None
    # coronal: the plane's y is the target's within half a step, and the point is on screen
    assert abs(plane.center[1] - target[1]) <= view.reformat.step / 2 + 1e-9
    at = cell.patient_to_widget(target)
    assert at is not None
    back = cell.widget_to_patient(at)
    assert back is not None
    assert back[0] == pytest.approx(target[0])
    assert back[2] == pytest.approx(target[2])
