"""The viewport grid draws the Layout: cells, active outline, click and double-click, reference
lines where the other viewport's plane cuts, and loading into the active viewport (real CT)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QApplication, QMainWindow

from core.imaging.index import build_index
from core.imaging.model import Frame, Patient, Study
from core.viewer.layout import Layout
from core.viewer.reference_lines import ImagePlane, reference_line
from core.viewer.state import ViewerState
from core.viewer.transform import image_to_screen
from desktop.viewport_grid import ViewportGrid, install_layout_menu
from desktop.viewport_widget import ViewportWidget
from desktop.workers import ErrorSink, JobRunner
from tests.viewer.synthetic import CORONAL, stack

LOAD_TIMEOUT_MS = 60_000


def frame(shape: tuple[int, int]) -> Frame:
    values = np.add.outer(np.arange(shape[0]), np.arange(shape[1])).astype(np.float32)
    return Frame(values, value_range=(0.0, float(values.max())), pixel_spacing=(0.8, 0.8))


def make_grid(qtbot, rows: int = 1, cols: int = 2):  # type: ignore[no-untyped-def]
    first = ViewerState()
    layout = Layout(rows, cols, first=first)
    win = QMainWindow()
    grid = ViewportGrid(layout, ViewportWidget(first))
    win.setCentralWidget(grid)
    qtbot.addWidget(win)
    win.resize(1000, 520)
    win.show()
    qtbot.waitExposed(win)
    return win, grid, layout


def fill(layout: Layout, i: int, series) -> None:  # type: ignore[no-untyped-def]
    """Add a synthetic series to the open studies, show it in viewport i, decode it."""
    patient = layout.index.patients.setdefault("P1", Patient("P1", "Test^Patient"))
    study = patient.studies.setdefault("1.9", Study("1.9", "20240101"))
    study.series[series.series_instance_uid] = series
    layout.assign(i, series)
    shape = (series.instances[0].rows, series.instances[0].columns)
    for k in range(len(series.instances)):
        layout.deliver_frame(series.series_instance_uid, k, frame(shape))


def test_click_activates_double_click_maximises_and_restores(qtbot) -> None:  # type: ignore[no-untyped-def]
    _win, grid, layout = make_grid(qtbot, 2, 2)
    assert len(grid.widgets) == 4
    assert all(w.isVisible() for w in grid.widgets)
    qtbot.mouseClick(grid.widgets[3], Qt.MouseButton.LeftButton, pos=QPoint(20, 20))
    assert layout.active == 3
    assert "#3daee9" in grid.frames[3].styleSheet()
    assert "#3daee9" not in grid.frames[0].styleSheet()
    qtbot.mouseDClick(grid.widgets[2], Qt.MouseButton.LeftButton, pos=QPoint(20, 20))
    assert layout.maximised == 2
    qtbot.waitUntil(lambda: not grid.widgets[0].isVisible())
    qtbot.waitUntil(lambda: grid.widgets[2].width() > 900)
    qtbot.mouseDClick(grid.widgets[2], Qt.MouseButton.LeftButton, pos=QPoint(20, 20))
    assert layout.maximised is None
    qtbot.waitUntil(lambda: grid.widgets[0].isVisible())
    layout.set_preset("1x3")
    assert len(grid.widgets) == 3
    qtbot.waitUntil(lambda: grid.widgets[2].height() > 400)
    layout.set_preset("3x3")
    assert len(grid.widgets) == 9
    grid.set_tool("length")
    assert {w.tool for w in grid.widgets} == {"length"}


def test_layout_menu_keys_move_the_active_viewport(qtbot) -> None:  # type: ignore[no-untyped-def]
    win, grid, layout = make_grid(qtbot, 1, 1)
    actions = install_layout_menu(win, win.menuBar().addMenu("View"), grid)
    actions["2 × 2"].trigger()
    assert (layout.rows, layout.cols) == (2, 2)
    actions["Next viewport"].trigger()
    actions["Viewport down"].trigger()
    assert layout.active == 3
    actions["Maximise/restore viewport"].trigger()
    assert layout.maximised == 3
    actions["Maximise/restore viewport"].trigger()
    assert layout.maximised is None


def test_reference_line_of_a_coronal_viewport_on_the_axial_one(qtbot) -> None:  # type: ignore[no-untyped-def]
    _win, grid, layout = make_grid(qtbot, 1, 2)
    axial = stack("1.1", 40, 2.5, start=(-25.6, -25.6, 0.0))
    coronal = stack("1.2", 64, 0.8, start=(-25.6, -25.6, 97.5), orientation=CORONAL)
    fill(layout, 0, axial)
    fill(layout, 1, coronal)
    layout.cells[1].state.set_slice(40)  # y = -25.6 + 40 * 0.8 = 6.4 mm
    qtbot.waitUntil(lambda: grid.overlays[0].lines_drawn == 1)
    (a, b) = grid.overlays[0].segments()[0]
    ref = layout.cells[0].state.current_slice()
    cor = layout.cells[1].state.current_slice()
    assert ref is not None
    assert cor is not None
    mine = ImagePlane.from_instance(ref.instance)
    other = ImagePlane.from_instance(cor.instance)
    assert mine is not None
    assert other is not None
    seg = reference_line(mine, other)
    assert seg is not None
    assert seg[0][1] == pytest.approx((6.4 + 25.6) / 0.8 + 0.5)  # row of y = 6.4 mm
    g = grid.widgets[0].view_geometry()
    assert g is not None
    expected = [image_to_screen(g, p) for p in seg]
    assert (a.x(), a.y()) == pytest.approx(expected[0])
    assert (b.x(), b.y()) == pytest.approx(expected[1])
    assert grid.overlays[1].lines_drawn == 1  # and the axial plane cuts the coronal one
    grid.set_first_last(True)  # the coronal stack's first (y = -25.6) and last (y = 24.8) too
    qtbot.waitUntil(lambda: grid.overlays[0].lines_drawn == 3)
    ys = sorted(round(a.y(), 3) for a, _ in grid.overlays[0].segments())
    expected_rows = [0.5, (6.4 + 25.6) / 0.8 + 0.5, 63.5]
    assert ys == pytest.approx([image_to_screen(g, (0.0, r))[1] for r in expected_rows], abs=1e-3)
    grid.grab().save(str(Path("/tmp") / "doctorai_grid_reference_lines.png"))
    grid.set_first_last(False)
    grid.set_reference_lines(False)
    qtbot.waitUntil(lambda: grid.overlays[0].lines_drawn == 0)


def test_series_opened_in_another_viewport_loads_there_once(qtbot, ct_dir: Path) -> None:  # type: ignore[no-untyped-def]
    first = ViewerState()
    index = build_index([ct_dir])
    first.add_index(index)
    layout = Layout(2, 2, first=first)
    runner = JobRunner(ErrorSink())
    grid = ViewportGrid(layout, ViewportWidget(first), runner=runner)
    qtbot.addWidget(grid)
    grid.resize(900, 700)
    grid.show()
    ((_, _, series),) = list(layout.index.iter_series())
    uid = series.series_instance_uid
    try:
        layout.set_active(1)
        grid.open_series(uid)
        state = layout.cells[1].state
        qtbot.waitUntil(lambda: state.loaded_count == state.slice_count, timeout=LOAD_TIMEOUT_MS)
        assert state.slice_count == 134
        assert first.series is None  # the first viewport was not touched
        layout.set_active(3)
        grid.open_series(uid)  # already shown: the same frames, no second load
        assert set(grid.controllers) == {1}
        other = layout.cells[3].state
        assert other.loaded_count == 134
        assert all(a is b for a, b in zip(other.frames, state.frames, strict=True))
        qtbot.waitUntil(lambda: grid.overlays[1].isVisible())
        grid.grab().save("/tmp/doctorai_grid_ct.png")
    finally:
        assert runner.shutdown(10_000)


def test_shift_click_crosshair_and_linked_scrolling_from_the_menu(qtbot) -> None:  # type: ignore[no-untyped-def]
    win, grid, layout = make_grid(qtbot, 1, 2)
    actions = install_layout_menu(win, win.menuBar().addMenu("View"), grid)
    axial = stack("1.1", 40, 2.5, start=(-25.6, -25.6, 0.0))
    coronal = stack("1.2", 64, 0.8, start=(-25.6, -25.6, 97.5), orientation=CORONAL)
    fill(layout, 0, axial)
    fill(layout, 1, coronal)
    widget = grid.widgets[0]
    g = widget.view_geometry()
    assert g is not None
    # image point (10.5, 50.5) of the axial slice: y = -25.6 + 50 * 0.8 = 14.4 mm
    x, y = image_to_screen(g, (10.5, 50.5))
    qtbot.mouseClick(
        widget,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.ShiftModifier,
        QPoint(round(x), round(y)),
    )
    cor = layout.cells[1].state.current_slice()
    assert cor is not None
    assert cor.instance.image_position is not None
    assert abs(cor.instance.image_position[1] - 14.4) <= 0.4 + 0.8 / widget.width() * 64
    assert widget.state.measurements == []  # the click drew nothing
    before = layout.cells[1].state.viewport.slice_index
    widget.state.step_slice(1)
    assert layout.cells[1].state.viewport.slice_index == before  # scrolling not linked yet
    actions["Link window/level"].setChecked(True)
    widget.state.viewport.set_window(10, 20)
    assert layout.cells[1].state.viewport.window_width == 20


def test_ct_with_a_prior_opens_hung_each_series_loaded_once(qtbot, ct_dir: Path) -> None:  # type: ignore[no-untyped-def]
    from core.viewer.hanging import hang, load_protocols
    from desktop.theme import apply_dark_theme
    from tests.viewer.test_hanging import prior_of

    first = ViewerState()
    first.add_index(build_index([ct_dir]))
    (patient,) = first.index.patients.values()
    (ct,) = patient.studies.values()
    prior = prior_of(ct, "20100101")  # the same files under new study/series UIDs
    patient.studies[prior.study_instance_uid] = prior
    layout = Layout(first=first)
    runner = JobRunner(ErrorSink())
    win = QMainWindow()
    app = QApplication.instance()
    assert isinstance(app, QApplication)
    apply_dark_theme(app)
    grid = ViewportGrid(layout, ViewportWidget(first), runner=runner)
    win.setCentralWidget(grid)
    qtbot.addWidget(win)
    win.resize(1200, 900)
    win.show()
    try:
        grid.show_hanging(hang(ct, [prior], load_protocols()))
        assert (layout.rows, layout.cols) == (2, 2)
        states = [c.state for c in layout]
        qtbot.waitUntil(
            lambda: all(s.loaded_count == s.slice_count == 134 for s in states),
            timeout=LOAD_TIMEOUT_MS,
        )
        assert len(grid.controllers) == 2  # the current CT once, the prior once
        assert all(states[1].frames[k] is states[0].frames[k] for k in range(134))
        assert states[3].series is not None
        assert states[3].series.series_instance_uid.endswith(".9")
        assert states[3].frames[0] is not states[0].frames[0]
        assert [grid.captions[i].text().split(" · ")[0] for i in range(4)] == [
            "Axial",
            "Coronal",
            "Sagittal",
            "Prior axial",
        ]
        assert grid.captions[1].text().endswith("coronal reformat")
        assert grid.captions[0].text() == "Axial · PANCREAS DI, iDose (3)"  # it is the axial
        qtbot.wait(50)
        grid.grab().save("/tmp/doctorai_hanging_ct_prior.png")
        grid.next_stage()
        assert (layout.rows, layout.cols) == (1, 2)
        assert layout.cells[1].state.loaded_count == 134  # handed over, not decoded again
        grid.previous_stage()
        assert (layout.rows, layout.cols) == (2, 2)
    finally:
        assert runner.shutdown(10_000)


def test_whole_window_hangs_a_ct_with_its_prior(  # type: ignore[no-untyped-def]
    qtbot, window, ct_dir: Path, tmp_path: Path
) -> None:
    from core.viewer.hanging import HangingError
    from tests.viewer.test_hanging import prior_of

    window.open_paths([str(ct_dir)])
    st = window.state
    qtbot.waitUntil(
        lambda: st.slice_count == 134 and st.loaded_count == 134, timeout=LOAD_TIMEOUT_MS
    )
    qtbot.waitUntil(lambda: not window.controller.busy, timeout=LOAD_TIMEOUT_MS)
    (patient,) = st.index.patients.values()
    (ct,) = patient.studies.values()
    prior = prior_of(ct, "20100101")
    patient.studies[prior.study_instance_uid] = prior
    bad = tmp_path / "hanging.toml"
    bad.write_text('[[protocol]]\nname = "x"\nstage = []\n')
    with pytest.raises(HangingError, match=r"hanging.toml'.*protocol\[1\]\.match"):
        window.grid.hang_current(str(bad))
    hanging = window.grid.hang_current(None)
    assert hanging is not None
    assert hanging.protocol == "CT with prior: axial, coronal, sagittal + prior"
    layout = window.reading
    assert (layout.rows, layout.cols) == (2, 2)
    qtbot.waitUntil(
        lambda: all(c.state.loaded_count == 134 for c in layout), timeout=LOAD_TIMEOUT_MS
    )
    assert layout.cells[0].state is st
    assert layout.cells[3].state.series is prior.series[next(iter(prior.series))]
    assert "Hang by protocol" in [a.text() for a in window.findChildren(QAction)]
    window.grid.next_stage()
    assert (layout.rows, layout.cols) == (1, 2)


def test_link_menu_switches_one_viewport_and_sets_its_offset_in_mm(qtbot) -> None:  # type: ignore[no-untyped-def]
    from desktop.grid_overlay import LinkDialog

    win, grid, layout = make_grid(qtbot, 1, 3)
    actions = install_layout_menu(win, win.menuBar().addMenu("View"), grid)
    fill(layout, 0, stack("1.1", 40, 2.5, start=(-25.6, -25.6, 0.0)))
    fill(layout, 1, stack("1.2", 100, 1.0, start=(-30.0, -30.0, -4.2)))
    fill(layout, 2, stack("1.3", 40, 2.5, start=(-25.6, -25.6, 0.0)))
    a, b, c = (layout.cells[i].state for i in range(3))
    actions["Link scrolling"].setChecked(True)
    layout.set_active(1)
    assert actions["Link this viewport"].isChecked()
    actions["Link offset of this viewport…"].trigger()
    dialog = grid.findChild(LinkDialog)
    assert isinstance(dialog, LinkDialog)
    assert dialog.isVisible()
    dialog.mm.setValue(7.5)
    dialog.accept()
    for i in (8, 20, 33):
        a.set_slice(i)
        za, zb = (s.current_slice().instance.image_position[2] for s in (a, b))
        assert abs(zb - (za + 7.5)) <= 0.5 + 1e-9  # 7.5 mm further, within half of b's slice
    layout.set_active(2)  # the switch shows the active viewport's own state
    actions["Link this viewport"].setChecked(False)
    assert not grid.links.is_linked(c)
    assert grid.links.is_linked(b)
    a.set_slice(5)
    assert c.viewport.slice_index == 33  # left the links: stays where it was
    layout.set_active(1)
    assert actions["Link this viewport"].isChecked()
    layout.set_active(2)
    assert not actions["Link this viewport"].isChecked()
    dialog = grid.edit_links()  # the dialog can bring it back
    assert not dialog.linked.isChecked()
    dialog.linked.setChecked(True)
    dialog.accept()
    assert actions["Link this viewport"].isChecked()
    a.set_slice(6)
    assert c.viewport.slice_index == 6


def test_the_layout_outlives_its_grid_and_menu(qtbot) -> None:  # type: ignore[no-untyped-def]
    from PySide6.QtCore import QCoreApplication, QEvent

    first = ViewerState()
    layout = Layout(1, 2, first=first)
    win = QMainWindow()
    grid = ViewportGrid(layout, ViewportWidget(first))
    win.setCentralWidget(grid)
    install_layout_menu(win, win.menuBar().addMenu("View"), grid)
    links = grid.links
    win.deleteLater()
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    layout.set_active(1)  # nothing of the deleted window is called any more
    layout.set_preset("2x2")
    links.set_links(scroll=True)
    assert layout.active == 1
    assert len(layout) == 4
