"""Reformats in the grid: a coronal cell paints a sphere round with the plane's physical aspect,
steps along the normal, and shows a refused series' cause instead of an image."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QAction, QImage, QWheelEvent
from PySide6.QtWidgets import QMainWindow

from core.imaging.model import Frame, Patient, Series, Study
from core.viewer.layout import Layout
from core.viewer.state import ViewerState
from desktop.mpr_cell import MprCell
from desktop.viewport_grid import ViewportGrid, install_layout_menu
from desktop.viewport_widget import ViewportWidget
from desktop.workers import ErrorSink, JobRunner
from tests.viewer.synthetic import stack

COUNT, SPACING, PIXEL, SIZE = 40, 2.5, 0.8, 64  # 51.2 mm wide, 100 mm high coronally
START = (-25.6, -25.6, 0.0)
CENTRE = np.array([0.0, 0.0, 50.0])
RADIUS = 15.0


def sphere_frame(series: Series, k: int) -> Frame:
    """Slice k of a sphere from the slice's geometry: 500 on its surface, rising 100 per mm
    inwards (to 1000) and falling outwards (to 0), so interpolation puts its edge in place."""
    inst = series.instances[k]
    assert inst.image_position is not None
    x0, y0, z = inst.image_position
    cols = x0 + PIXEL * np.arange(SIZE)
    rows = y0 + PIXEL * np.arange(SIZE)
    d2 = (cols[None, :] - CENTRE[0]) ** 2 + (rows[:, None] - CENTRE[1]) ** 2 + (z - CENTRE[2]) ** 2
    values = np.clip(500.0 + (RADIUS - np.sqrt(d2)) * 100.0, 0.0, 1000.0).astype(np.float32)
    return Frame(values, value_range=(0.0, 1000.0), pixel_spacing=(PIXEL, PIXEL))


@pytest.fixture
def grid(qtbot):  # type: ignore[no-untyped-def]
    first = ViewerState()
    layout = Layout(1, 2, first=first)
    runner = JobRunner(ErrorSink())
    win = QMainWindow()
    grid = ViewportGrid(layout, ViewportWidget(first), runner=runner)
    win.setCentralWidget(grid)
    qtbot.addWidget(win)
    win.resize(1000, 600)
    win.show()
    qtbot.waitExposed(win)
    install_layout_menu(win, win.menuBar().addMenu("View"), grid)
    yield grid
    assert runner.shutdown(10_000)


def action(grid: ViewportGrid, text: str) -> QAction:
    """The window's View > Layout action called ``text``."""
    return next(a for a in grid.window().actions() if a.text() == text)


def show(grid: ViewportGrid, i: int, series: Series, orientation: str) -> None:
    layout = grid.model
    patient = layout.index.patients.setdefault("P1", Patient("P1", "Test^Patient"))
    study = patient.studies.setdefault("1.9", Study("1.9", "20240101"))
    study.series[series.series_instance_uid] = series
    layout.assign(i, series, orientation)  # type: ignore[arg-type]
    for k in range(len(series.instances)):
        layout.deliver_frame(series.series_instance_uid, k, sphere_frame(series, k))


def bright_box(img: QImage) -> tuple[int, int, int, int]:
    """(left, top, width, height) of the bright gray pixels of a grabbed image (the coloured
    overlay text left out)."""
    img = img.convertToFormat(QImage.Format.Format_RGB888)
    arr = np.frombuffer(img.constBits(), dtype=np.uint8).reshape(img.height(), img.bytesPerLine())
    rgb = arr[:, : img.width() * 3].reshape(img.height(), img.width(), 3).astype(int)
    gray = (rgb[..., 0] == rgb[..., 1]) & (rgb[..., 1] == rgb[..., 2])
    ys, xs = np.nonzero(gray & (rgb[..., 0] > 128))
    return int(xs.min()), int(ys.min()), int(np.ptp(xs)) + 1, int(np.ptp(ys)) + 1


def test_a_sphere_shown_coronal_is_round_with_the_planes_physical_aspect(qtbot, grid) -> None:  # type: ignore[no-untyped-def]
    series = stack(
        "1.5", COUNT, SPACING, start=START, size=(SIZE, SIZE), pixel_spacing=(PIXEL,) * 2
    )
    show(grid, 1, series, "coronal")
    cell = grid.mpr[1]
    qtbot.waitUntil(lambda: cell.view is not None, timeout=10_000)
    assert grid.captions[1].text().endswith("coronal reformat")
    assert 0 not in grid.mpr  # the acquired (axial) cell draws its slices as before
    cell.state.viewport.set_window(500.0, 1000.0)
    qtbot.waitUntil(lambda: not cell.image_rect.isEmpty())
    cell.repaint()
    r = cell.image_rect
    # the painted plane is 51.2 mm wide and 100 mm high: its aspect is that of the mm
    assert r.height() / r.width() == pytest.approx(100.0 / 51.2, rel=0.02)
    mm_per_px = 51.2 / r.width()
    _x, _y, w, h = bright_box(cell.grab().toImage())  # gray > 128: values above ~500
    # round, not squashed by the 2.5 mm slices: both diameters 30 mm within 1 mm
    assert w * mm_per_px == pytest.approx(2 * RADIUS, abs=1.0)
    assert h * mm_per_px == pytest.approx(2 * RADIUS, abs=1.0)
    # head at the top: the sphere's centre (z 50 of 0..100) is in the middle of the plane
    assert cell.view is not None
    assert cell.view.plane().v[2] == pytest.approx(-1.0)
    assert cell.view.plane().u[0] == pytest.approx(1.0)  # patient's right on the left


def test_wheel_and_keys_step_along_the_normal(qtbot, grid) -> None:  # type: ignore[no-untyped-def]
    series = stack(
        "1.6", COUNT, SPACING, start=START, size=(SIZE, SIZE), pixel_spacing=(PIXEL,) * 2
    )
    show(grid, 1, series, "coronal")
    cell = grid.mpr[1]
    qtbot.waitUntil(lambda: cell.view is not None, timeout=10_000)
    view = cell.view
    assert view is not None
    before = view.plane().center.copy()
    pos = QPointF(50, 50)
    wheel = QWheelEvent(
        pos,
        cell.mapToGlobal(pos),
        QPoint(0, 0),
        QPoint(0, -240),  # two notches towards the user
        Qt.MouseButton.NoButton,
        Qt.KeyboardModifier.NoModifier,
        Qt.ScrollPhase.NoScrollPhase,
        False,
    )
    cell.wheelEvent(wheel)
    moved = view.plane().center - before
    assert moved[0] == pytest.approx(0.0)
    assert moved[2] == pytest.approx(0.0)
    assert abs(moved[1]) == pytest.approx(2 * view.reformat.step, rel=1e-6)  # along y only
    index = view.index
    qtbot.keyClick(cell, Qt.Key.Key_Down)
    assert view.index == index + 1
    # window/level drag in the reformat changes the cell's window
    wc = cell.state.viewport.window_center
    qtbot.mousePress(cell, Qt.MouseButton.LeftButton, pos=QPoint(100, 100))
    qtbot.mouseMove(cell, QPoint(100, 160))
    qtbot.mouseRelease(cell, Qt.MouseButton.LeftButton, pos=QPoint(100, 160))
    assert cell.state.viewport.window_center != wc
    assert grid.model.active == 1


def test_show_as_switches_the_active_cell_and_back(qtbot, grid) -> None:  # type: ignore[no-untyped-def]
    series = stack(
        "1.7", COUNT, SPACING, start=START, size=(SIZE, SIZE), pixel_spacing=(PIXEL,) * 2
    )
    show(grid, 1, series, "acquired")
    assert 1 not in grid.mpr
    grid.model.set_active(1)
    action(grid, "Show as sagittal").trigger()
    cell = grid.mpr[1]
    qtbot.waitUntil(lambda: cell.view is not None, timeout=10_000)
    assert cell.view is not None
    assert cell.view.plane_name == "sagittal"
    action(grid, "Show as coronal").trigger()
    assert grid.mpr[1] is cell
    assert cell.view.plane_name == "coronal"
    assert "1.7" in grid.volumes
    action(grid, "Show as axial").trigger()  # the series is axial: its own slices
    assert 1 not in grid.mpr
    assert "1.7" not in grid.volumes  # no reformat shows it: its volume is let go
    qtbot.waitUntil(lambda: cell.parent() is None or not cell.isVisible())


def test_a_series_with_a_gap_shows_the_refusal_not_an_image(qtbot, grid) -> None:  # type: ignore[no-untyped-def]
    series = stack(
        "1.8", COUNT, SPACING, start=START, size=(SIZE, SIZE), pixel_spacing=(PIXEL,) * 2
    )
    del series.instances[17]  # a missing slice
    show(grid, 1, series, "coronal")
    cell: MprCell = grid.mpr[1]
    qtbot.waitUntil(lambda: cell.message.startswith("No coronal reformat"), timeout=10_000)
    assert cell.view is None
    assert "1.8" in cell.message
    cell.repaint()
    assert cell.image_rect.isEmpty()


def test_the_shared_ct_hung_2x2_draws_coronal_and_sagittal(qtbot, ct_dir) -> None:  # type: ignore[no-untyped-def]
    from PySide6.QtWidgets import QApplication

    from core.imaging.index import build_index
    from core.viewer.hanging import hang, load_protocols
    from desktop.theme import apply_dark_theme
    from tests.viewer.test_hanging import prior_of

    first = ViewerState()
    first.add_index(build_index([ct_dir]))
    (patient,) = first.index.patients.values()
    (ct,) = patient.studies.values()
    prior = prior_of(ct, "20100101")
    patient.studies[prior.study_instance_uid] = prior
    layout = Layout(first=first)
    runner = JobRunner(ErrorSink())
    app = QApplication.instance()
    assert isinstance(app, QApplication)
    apply_dark_theme(app)
    win = QMainWindow()
    grid = ViewportGrid(layout, ViewportWidget(first), runner=runner)
    win.setCentralWidget(grid)
    qtbot.addWidget(win)
    win.resize(1200, 900)
    win.show()
    try:
        grid.show_hanging(hang(ct, [prior], load_protocols()))
        assert sorted(grid.mpr) == [1, 2]  # the axial and the prior draw their own slices
        qtbot.waitUntil(lambda: all(grid.mpr[i].view is not None for i in (1, 2)), timeout=60_000)
        coronal, sagittal = grid.mpr[1], grid.mpr[2]
        assert coronal.view is not None
        assert sagittal.view is not None
        assert coronal.view.volume is sagittal.view.volume  # one volume for both
        assert coronal.view.plane_name == "coronal"
        assert sagittal.view.plane_name == "sagittal"
        g = coronal.view.volume.geometry
        qtbot.wait(50)
        coronal.repaint()
        rows, cols = coronal.view.frame().shape
        size = coronal.view.plane().pixel_size
        r = coronal.image_rect
        assert r.height() / r.width() == pytest.approx(rows / cols, rel=0.01)
        # the plane spans the volume: its height in mm is the slices' extent (z)
        assert rows * size == pytest.approx(g.shape[0] * g.slice_spacing, abs=2 * size)
        grid.grab().save("/tmp/doctorai_mpr_2x2.png")
    finally:
        assert runner.shutdown(10_000)
