"""Reformatted cells take part in the grid's links (issue 16), on the shared 134-slice CT shown
2x2 as axial (acquired), coronal, sagittal and a second coronal: reference lines are drawn INTO
the reformats where the other planes cut them, a Shift+click anywhere puts every plane through
the clicked point and marks it, scrolling a reformat moves the other cell of its orientation,
and the link dialog's offset shifts a linked cell by that many mm.

The expected lines and points are computed here from the DICOM header and the planes' centre
and axes with plain numpy, not with ``core.viewer.reference_lines``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtWidgets import QMainWindow

from core.imaging.index import build_index
from core.viewer.layout import Layout
from core.viewer.reformat import Plane
from core.viewer.state import ViewerState
from core.viewer.transform import image_to_screen
from desktop.grid_overlay import LinkDialog
from desktop.mpr_cell import MprCell
from desktop.viewport_grid import ViewportGrid, install_layout_menu
from desktop.viewport_widget import ViewportWidget
from desktop.workers import ErrorSink, JobRunner

LOAD_TIMEOUT_MS = 60_000
ORIENTATIONS = ("acquired", "coronal", "sagittal", "coronal")


@pytest.fixture
def grid(qtbot, ct_dir: Path) -> Iterator[ViewportGrid]:  # type: ignore[no-untyped-def]
    first = ViewerState()
    first.add_index(build_index([ct_dir]))
    layout = Layout(2, 2, first=first)
    ((_, _, series),) = list(layout.index.iter_series())
    runner = JobRunner(ErrorSink())
    win = QMainWindow()
    grid = ViewportGrid(layout, ViewportWidget(first), runner=runner)
    win.setCentralWidget(grid)
    qtbot.addWidget(win)
    win.resize(1200, 900)
    win.show()
    qtbot.waitExposed(win)
    install_layout_menu(win, win.menuBar().addMenu("View"), grid)
    try:
        for i, orientation in enumerate(ORIENTATIONS):
            layout.assign(i, series, orientation)  # type: ignore[arg-type]
        grid.load_missing()
        qtbot.waitUntil(
            lambda: all(grid.mpr[i].view is not None for i in (1, 2, 3)), timeout=LOAD_TIMEOUT_MS
        )
        for i in (1, 2, 3):  # every reformat is a member of the links with its own view
            assert grid.links.reformat(layout.cells[i].state) is grid.mpr[i].view
        qtbot.wait(20)
        yield grid
    finally:
        assert runner.shutdown(10_000)


def shown(cell: MprCell) -> Plane:
    plane = cell.current_plane()
    assert plane is not None
    return plane


def axial_plane(grid: ViewportGrid) -> tuple[np.ndarray, np.ndarray]:
    """(a point, the unit normal) of the axial viewport's current slice, from its header."""
    ref = grid.widgets[0].state.current_slice()
    assert ref is not None
    o = np.asarray(ref.instance.image_orientation, dtype=np.float64)
    n = np.cross(o[:3], o[3:])
    return np.asarray(ref.instance.image_position, dtype=np.float64), n / np.linalg.norm(n)


def expected_segment(
    cell: MprCell, point: np.ndarray, normal: np.ndarray
) -> list[tuple[float, float]]:
    """Where the plane (point, normal) cuts the plane painted in ``cell``, in the cell's
    pixels: solved in the painted plane's pixel grid, clipped to its rectangle, mapped through
    the rectangle the cell painted the image into."""
    p = shown(cell)
    s = p.pixel_size
    tl = p.center - (p.cols - 1) / 2 * s * p.u - (p.rows - 1) / 2 * s * p.v
    # pixel-corner coordinates (x, y): patient = tl + (x - 0.5) s u + (y - 0.5) s v
    a, b = s * float(normal @ p.u), s * float(normal @ p.v)
    c = float(normal @ (point - tl)) + 0.5 * a + 0.5 * b  # a x + b y = c
    ends = []
    for x in (0.0, float(p.cols)):
        if abs(b) > 1e-12 and 0.0 <= (y := (c - a * x) / b) <= p.rows:
            ends.append((x, y))
    for y in (0.0, float(p.rows)):
        if abs(a) > 1e-12 and 0.0 <= (x := (c - b * y) / a) <= p.cols:
            ends.append((x, y))
    unique: list[tuple[float, float]] = []
    for e in ends:
        if all(abs(e[0] - u[0]) + abs(e[1] - u[1]) > 1e-6 for u in unique):
            unique.append(e)
    assert len(unique) == 2, unique
    r = cell.image_rect
    return [
        (r.left() + x * r.width() / p.cols, r.top() + y * r.height() / p.rows) for x, y in unique
    ]


def near(drawn: list[tuple[QPointF, QPointF]], want: list[tuple[float, float]]) -> bool:
    """Whether one drawn segment has both expected ends within a pixel (either order)."""
    for a, b in drawn:
        got = [(a.x(), a.y()), (b.x(), b.y())]
        for order in (got, got[::-1]):
            if all(
                np.hypot(g[0] - w[0], g[1] - w[1]) <= 1.0 for g, w in zip(order, want, strict=True)
            ):
                return True
    return False


def test_reference_lines_in_a_reformat_match_the_plane_intersections(qtbot, grid) -> None:  # type: ignore[no-untyped-def]
    axial_state = grid.widgets[0].state
    axial_state.set_slice(40)
    grid.mpr[2].view.set_index(300)  # the sagittal plane somewhere right of the middle
    coronal, sagittal = grid.mpr[1], grid.mpr[2]
    overlay = grid.overlays[1]
    coronal.repaint()
    segments = overlay.segments()
    # the axial slice and the sagittal plane cut it; the other coronal cell is parallel
    assert len(segments) == 2
    point, normal = axial_plane(grid)
    assert near(segments, expected_segment(coronal, point, normal))
    sag = shown(sagittal)
    sag_normal = np.cross(sag.u, sag.v)
    assert near(segments, expected_segment(coronal, sag.center, sag_normal))
    # the sagittal line moves when the sagittal cell scrolls: the lines follow every plane
    sagittal.view.step(-40)
    sag = shown(sagittal)
    assert near(overlay.segments(), expected_segment(coronal, sag.center, sag_normal))
    # zoom and pan in the coronal cell: the lines stay on the same anatomy
    state = coronal.state
    state.viewport.update({"zoom": 3.0, "fit": False, "pan": (40.0, -25.0)})
    coronal.repaint()
    assert near(overlay.segments(), expected_segment(coronal, point, normal))
    # the reformats' planes are drawn into the acquired axial viewport too
    assert len(grid.overlays[0].segments()) == 3  # coronal, sagittal, coronal
    grid.set_first_last(True)  # plus where the axial stack and the sagittal planes end
    segments = overlay.segments()
    assert len(segments) == 2 + 2 + 2
    for ref in (axial_state.slices[0], axial_state.slices[-1]):
        ends = np.asarray(ref.instance.image_position, dtype=np.float64)
        assert near(segments, expected_segment(coronal, ends, normal))
    qtbot.wait(20)
    grid.grab().save("/tmp/doctorai_grid_mpr_links.png")


def test_a_crosshair_click_puts_every_plane_through_the_point(qtbot, grid) -> None:  # type: ignore[no-untyped-def]
    axial = grid.widgets[0]
    g = axial.view_geometry()
    assert g is not None
    x, y = image_to_screen(g, (301.5, 180.5))
    click = QPoint(round(x), round(y))
    qtbot.mouseClick(axial, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.ShiftModifier, click)
    # the clicked point from the header: pixel corners at integers, so centres at +0.5
    ref = axial.state.current_slice()
    assert ref is not None
    o = np.asarray(ref.instance.image_orientation, dtype=np.float64)
    rs, cs = ref.instance.pixel_spacing or (1.0, 1.0)
    cx, cy = axial.to_image(QPointF(click)) or (0.0, 0.0)
    point = (
        np.asarray(ref.instance.image_position) + (cx - 0.5) * cs * o[:3] + (cy - 0.5) * rs * o[3:]
    )
    for i in (1, 2, 3):
        plane, step = shown(grid.mpr[i]), grid.mpr[i].view.reformat.step
        assert abs(float((point - plane.center) @ np.cross(plane.u, plane.v))) <= step / 2 + 1e-6
        assert grid.mpr[i].pivot == pytest.approx(point)  # oblique turns go about the crosshair
    for overlay in grid.overlays:
        overlay.repaint()
    marker = grid.overlays[0].marker
    assert marker is not None
    assert abs(marker.x() - click.x()) <= 1.0
    assert abs(marker.y() - click.y()) <= 1.0
    for i in (1, 2, 3):  # marked where it is in each reformat (within a screen pixel in mm)
        cell = grid.mpr[i]
        at = grid.overlays[i].marker
        assert at is not None
        back = cell.widget_to_patient(at)
        assert back is not None
        plane = shown(cell)
        mm_per_px = plane.cols * plane.pixel_size / cell.image_rect.width()
        in_plane = point - float((point - plane.center) @ np.cross(plane.u, plane.v)) * np.cross(
            plane.u, plane.v
        )
        assert np.linalg.norm(back - in_plane) <= mm_per_px + 1e-6
    assert axial.state.measurements == []  # the click drew nothing
    # off its plane, a viewport shows no marker; the crossing planes still hold the point
    axial.state.step_slice(5)
    grid.overlays[0].repaint()
    grid.overlays[1].repaint()
    assert grid.overlays[0].marker is None
    assert grid.overlays[1].marker is not None
    # a Shift+click in the coronal reformat moves the axial stack and the sagittal plane
    coronal = grid.mpr[1]
    at = QPoint(round(coronal.width() * 0.4), round(coronal.height() * 0.55))
    qtbot.mouseClick(coronal, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.ShiftModifier, at)
    assert grid.model.active == 1
    target = coronal.widget_to_patient(QPointF(at))
    assert target is not None
    pos, normal = axial_plane(grid)
    assert abs(float((target - pos) @ normal)) <= grid.links.half_slice(axial.state) + 1e-6
    sag = shown(grid.mpr[2])
    dist = float((target - sag.center) @ np.cross(sag.u, sag.v))
    assert abs(dist) <= grid.mpr[2].view.reformat.step / 2 + 1e-6


def test_scrolling_a_reformat_moves_the_other_cell_of_its_orientation(qtbot, grid) -> None:  # type: ignore[no-untyped-def]
    grid.links.set_links(scroll=True)
    one, other, sagittal = grid.mpr[1], grid.mpr[3], grid.mpr[2]
    axial_index, sagittal_index = grid.widgets[0].state.viewport.slice_index, sagittal.view.index
    qtbot.keyClick(one, Qt.Key.Key_Down)
    one.view.step(25)
    assert other.view.index == one.view.index  # the same series: the same plane
    assert sagittal.view.index == sagittal_index  # crossing planes stay; their lines follow
    assert grid.widgets[0].state.viewport.slice_index == axial_index
    # the other coronal cell leaves the links: it stays where it is, then rejoins
    grid.set_linked(False, 3)
    before = other.view.index
    one.view.step(-10)
    assert other.view.index == before
    grid.set_linked(True, 3)
    # the link dialog: 10 mm of offset puts the second coronal 10 mm further along its normal
    dialog = grid.edit_links(3)
    assert isinstance(dialog, LinkDialog)
    assert dialog.linked.isChecked()
    dialog.mm.setValue(10.0)
    dialog.accept()
    assert grid.links.offsets(grid.model.cells[3].state) == (10.0, 0)
    one.view.step(7)
    a, b = shown(one), shown(other)
    normal = np.cross(b.u, b.v)
    assert float((b.center - a.center) @ normal) == pytest.approx(
        10.0, abs=other.view.reformat.step / 2 + 1e-6
    )
