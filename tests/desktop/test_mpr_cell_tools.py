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
    # shown as sagittal now: the plane goes through the crosshair, not the old plane's centre
    cell.set_plane("sagittal")
    plane = cell.current_plane()
    assert plane is not None
    assert abs(plane.to_pixel(target)[2]) <= view.reformat.step / 2 + 1e-9


def test_a_length_drawn_across_the_sphere_measures_its_diameter_in_mm(qtbot, grid) -> None:  # type: ignore[no-untyped-def]
    cell = coronal_cell(qtbot, grid, "2.3")
    # zoomed in 1.5x and panned: the measurement is in the plane's mm, not screen pixels
    drag(qtbot, cell, Qt.MouseButton.RightButton, QPoint(200, 400), QPoint(200, 319))
    drag(qtbot, cell, Qt.MouseButton.MiddleButton, QPoint(200, 300), QPoint(190, 310))
    cell.repaint()
    x, y, w, h = bright_box(cell.grab().toImage())  # the disc's edges, as the eye sees them
    grid.set_tool("length")
    row = y + h // 2
    drag(qtbot, cell, Qt.MouseButton.LeftButton, QPoint(x, row), QPoint(x + w, row))
    (m,) = cell.state.measurements
    assert m.kind == "length"
    assert m.plane is not None
    assert m.plane.name == "coronal"
    plane = cell.current_plane()
    assert plane is not None
    assert m.plane.shows(plane)
    from core.viewer.measure import length

    measured = length(m.p0, m.p1, plane)
    assert measured.unit == "mm"
    # the disc drawn is 30 mm across (values above ~500): within a screen pixel's worth of mm
    assert measured.value == pytest.approx(30.0, abs=1.0 + plane.pixel_size / cell.effective_zoom())
    # its end points in patient mm lie on the sphere's equator, 15 mm either side of the centre
    for p in (m.p0, m.p1):
        d = np.linalg.norm(m.plane.to_patient(p) - CENTRE)
        assert d == pytest.approx(15.0, abs=1.0)
    cell.repaint()
    assert cell.measurements_drawn == 1
    qtbot.keyClick(cell, Qt.Key.Key_Down)  # the next plane: not drawn there
    cell.repaint()
    assert cell.measurements_drawn == 0
    qtbot.keyClick(cell, Qt.Key.Key_Up)
    cell.repaint()
    assert cell.measurements_drawn == 1


@pytest.fixture
def ct_cell(qtbot, grid, ct_dir):  # type: ignore[no-untyped-def]
    """The shared 134-slice CT loaded (for real, by the grid's loader) in a coronal cell."""
    from core.imaging.index import build_index

    layout = grid.model
    state = layout.cells[0].state
    state.add_index(build_index([ct_dir]))
    (patient,) = state.index.patients.values()
    (study,) = patient.studies.values()
    (series,) = study.series.values()
    layout.assign(1, series, "coronal")
    grid.load_missing()
    cell = grid.mpr[1]
    qtbot.waitUntil(lambda: cell.view is not None, timeout=60_000)
    cell.repaint()
    return cell


def test_thick_slabs_by_key_and_menu_on_the_shared_ct(qtbot, ct_cell) -> None:  # type: ignore[no-untyped-def]
    from core.viewer.reformat import Slab

    cell = ct_cell
    view = cell.view
    assert view is not None
    thin = cell.current_frame()
    assert thin is not None  # a thin coronal plane is sampled in the paint
    thin_values = thin.values.copy()
    assert cell.slab_button.text() == "Thin"
    qtbot.keyClick(cell, Qt.Key.Key_S)
    assert view.slab == Slab("mip", 10.0)
    assert cell.current_frame() is None  # a slab renders in a job, never in the paint
    qtbot.waitUntil(lambda: cell.current_frame() is not None, timeout=10_000)
    mip = cell.current_frame()
    assert mip is not None
    # a MIP is at least as bright as the plane at its middle, everywhere, and brighter somewhere
    assert np.all(mip.values >= thin_values - 1e-3)
    assert float((mip.values - thin_values).max()) > 50.0
    assert cell.slab_button.text() == "MIP 10 mm"
    qtbot.keyClick(cell, Qt.Key.Key_Plus)
    assert view.slab == Slab("mip", 15.0)
    qtbot.keyClick(cell, Qt.Key.Key_Minus)
    qtbot.keyClick(cell, Qt.Key.Key_Minus)
    assert view.slab == Slab("mip", 7.5)
    qtbot.keyClick(cell, Qt.Key.Key_S)
    assert view.slab == Slab("minip", 7.5)
    qtbot.waitUntil(lambda: cell.current_frame() is not None, timeout=10_000)
    minip = cell.current_frame()
    assert minip is not None
    assert np.all(minip.values <= thin_values + 1e-3)
    # the menu does what the keys do
    cell.slab_button.kind_actions["avg"].trigger()
    assert view.slab == Slab("avg", 7.5)
    cell.slab_button.thickness_actions[20.0].trigger()
    assert view.slab == Slab("avg", 20.0)
    qtbot.waitUntil(lambda: cell.current_frame() is not None, timeout=10_000)
    avg = cell.current_frame()
    assert avg is not None
    assert float(np.abs(avg.values - thin_values).mean()) > 1.0  # smoothed: not the thin plane
    cell.slab_button.kind_actions[None].trigger()
    assert view.slab is None
    assert cell.slab_button.text() == "Thin"


def test_ctrl_arrows_tilt_through_the_crosshair_ctrl_0_straightens(qtbot, ct_cell) -> None:  # type: ignore[no-untyped-def]
    from desktop.mpr_cell import side

    cell = ct_cell
    view = cell.view
    assert view is not None
    r = cell.image_rect
    pivot = cell.widget_to_patient(QPointF(r.left() + r.width() * 0.4, r.top() + r.height() * 0.6))
    assert pivot is not None
    cell.goto(pivot)  # what the grid's crosshair does
    index = view.index
    with qtbot.waitSignal(cell.plane_changed, timeout=1000):
        qtbot.keyClick(cell, Qt.Key.Key_Right, Qt.KeyboardModifier.ControlModifier)
    assert view.is_oblique
    assert view.tilt_degrees() == pytest.approx(5.0)
    for _ in range(5):
        qtbot.keyClick(cell, Qt.Key.Key_Right, Qt.KeyboardModifier.ControlModifier)
    qtbot.keyClick(cell, Qt.Key.Key_Up, Qt.KeyboardModifier.ControlModifier)
    plane = cell.current_plane()
    assert plane is not None
    # turned 30 degrees about the vertical and 5 about the horizontal, through the crosshair
    assert abs(plane.to_pixel(pivot)[2]) < 1e-6
    assert view.tilt_degrees() == pytest.approx(
        np.degrees(np.arccos(np.cos(np.radians(30)) * np.cos(np.radians(5)))), abs=0.01
    )
    assert len(side(plane.u)) == 2  # the orientation letters follow: left and front/back
    assert side(-plane.v) == "H"  # still head up
    at = cell.patient_to_widget(pivot)
    assert at is not None
    assert cell.widget_to_patient(at) == pytest.approx(pivot)
    # the oblique image renders in a job and is then shown
    qtbot.waitUntil(lambda: cell.current_frame() is not None, timeout=10_000)
    frame = cell.current_frame()
    assert frame is not None
    assert frame.shape == (plane.rows, plane.cols)
    qtbot.keyClick(cell, Qt.Key.Key_0, Qt.KeyboardModifier.ControlModifier)
    assert not view.is_oblique
    assert view.plane_name == "coronal"
    assert view.index == index  # back through the same point


def test_an_roi_drawn_on_the_ct_coronal_is_in_hu(qtbot, grid, ct_cell) -> None:  # type: ignore[no-untyped-def]
    from core.viewer.measure import roi_pixels, roi_stats

    cell = ct_cell
    cell.state.viewport.set_window(40.0, 400.0)
    cell.repaint()
    plane = cell.current_plane()
    assert plane is not None
    r = cell.image_rect
    # the value under the mouse, in HU, and where it is in the patient, for the status bar
    at = QPoint(round(r.left() + 0.3 * r.width()) + 3, round(r.top() + 0.3 * r.height()) + 3)
    with qtbot.waitSignal(cell.status, timeout=1000) as said:
        qtbot.mouseMove(cell, at)
    frame = cell.current_frame()
    assert frame is not None
    scale = r.width() / plane.cols
    col, row = int((at.x() - r.left()) / scale), int((at.y() - r.top()) / scale)
    assert said.args[0].endswith(f"value {float(frame.values[row, col]):.0f} HU")
    point = cell.widget_to_patient(QPointF(at))
    assert point is not None
    assert said.args[0].startswith(f"x {point[0]:.1f}  y {point[1]:.1f}  z {point[2]:.1f} mm")
    # the liver, on the image's left (the patient's right) in the middle coronal plane
    a = QPoint(round(r.left() + 0.25 * r.width()), round(r.top() + 0.25 * r.height()))
    b = QPoint(round(r.left() + 0.33 * r.width()), round(r.top() + 0.32 * r.height()))
    grid.set_tool("roi")
    drag(qtbot, cell, Qt.MouseButton.LeftButton, a, b)
    (m,) = cell.state.measurements
    assert m.kind == "roi"
    assert m.plane is not None
    assert m.plane.shows(plane)
    # the corners are where the mouse was on the painted image (its rectangle, its scale)
    scale = r.width() / plane.cols
    for corner, pos in ((m.p0, a), (m.p1, b)):
        assert corner[0] == pytest.approx((pos.x() - r.left()) / scale, abs=1e-6)
        assert corner[1] == pytest.approx((pos.y() - r.top()) / scale, abs=1e-6)
    frame = cell.current_frame()
    assert frame is not None
    assert frame.units == "HU"
    stats = roi_stats(frame.values, m.p0, m.p1, plane, frame.units)
    assert stats is not None
    rows, cols = roi_pixels(frame.shape, m.p0, m.p1)
    block = frame.values[rows, cols]
    assert stats.mean == pytest.approx(float(block.mean()), rel=1e-5)
    assert 50.0 < stats.mean < 200.0  # enhancing liver: neither air nor bone nor fat
    assert stats.sd < 40.0
    w_mm = (b.x() - a.x()) / scale * plane.pixel_size
    h_mm = (b.y() - a.y()) / scale * plane.pixel_size
    assert stats.area == pytest.approx(w_mm * h_mm, rel=0.1)
    cell.repaint()
    assert cell.measurements_drawn == 1
    # Clear (the toolbar's Del) clears it here too
    cell.state.clear_measurements()
    cell.repaint()
    assert cell.measurements_drawn == 0


def test_a_plane_slower_than_the_paint_budget_renders_in_jobs_from_then_on(qtbot, grid) -> None:  # type: ignore[no-untyped-def]
    cell = coronal_cell(qtbot, grid, "2.4")
    view = cell.view
    assert view is not None
    assert cell.current_frame() is not None  # thin, along the voxel axes: in the paint
    assert not cell.images.slow
    cell.images.sync_budget_ms = -1.0  # as if the last sample had taken too long (a slow machine)
    qtbot.keyClick(cell, Qt.Key.Key_Down)
    assert cell.current_frame() is not None  # sampled in the paint once more, and timed
    assert cell.images.slow
    qtbot.keyClick(cell, Qt.Key.Key_Down)
    assert cell.current_frame() is None  # now in a job
    qtbot.waitUntil(lambda: cell.current_frame() is not None, timeout=10_000)
    frame = cell.current_frame()
    assert frame is not None
    assert np.array_equal(frame.values, view.reformat.image(view.index))


def test_ctrl_drag_sets_the_window_of_a_region_of_the_reformat(qtbot, ct_cell) -> None:  # type: ignore[no-untyped-def]
    from core.imaging.presets import region_window
    from core.viewer.presets import REGION

    cell = ct_cell
    plane = cell.current_plane()
    frame = cell.current_frame()
    assert plane is not None
    assert frame is not None
    r = cell.image_rect
    a = QPoint(round(r.left() + 0.25 * r.width()), round(r.top() + 0.25 * r.height()))
    b = QPoint(round(r.left() + 0.33 * r.width()), round(r.top() + 0.32 * r.height()))
    ctrl = Qt.KeyboardModifier.ControlModifier
    qtbot.mousePress(cell, Qt.MouseButton.LeftButton, ctrl, a)
    qtbot.mouseMove(cell, b)
    qtbot.mouseRelease(cell, Qt.MouseButton.LeftButton, ctrl, b)
    vp = cell.state.viewport
    assert vp.preset == REGION
    assert cell.state.measurements == []  # a window, not a measurement
    # the window is the robust range of the pixels drawn round, in the reformat's HU
    scale = r.width() / plane.cols
    x0, y0 = (a.x() - r.left()) / scale, (a.y() - r.top()) / scale
    x1, y1 = (b.x() - r.left()) / scale, (b.y() - r.top()) / scale
    rows, cols = (int(np.floor(y0)), int(np.ceil(y1))), (int(np.floor(x0)), int(np.ceil(x1)))
    center, width = region_window(frame.values, rows, cols)
    assert (vp.window_center, vp.window_width) == pytest.approx((center, width))
    assert 50.0 < vp.window_center < 200.0  # the liver's HU, not the default CT window
    assert width < 200.0
