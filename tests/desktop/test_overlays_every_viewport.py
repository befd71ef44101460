"""AI heatmaps and SEG masks are drawn in every viewport of the grid that shows their series (and
slice), in none that shows another, follow a viewport switched to another series, reach the
viewports a later layout adds, and obey the panels' toggles everywhere (real chest CR and brain
MR with the zoo's model, real CT with its SEG; offscreen main window)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PySide6.QtWidgets import QWidget

from desktop.series_drop import install_series_drop, series_mime
from desktop.viewport_widget import ViewportWidget
from tests.desktop.helpers import open_for_ai
from tests.desktop.test_series_drop import drag_to, loaded, uid_of

REPO = Path(__file__).resolve().parents[2]
CR = REPO / "resources" / "sample" / "chest_cr" / "RG1_J2KI.dcm"
MR_PARTS = ("plotly__dash-vtk", "demos", "data", "mri_brain")
SEG_PARTS = ("QIICR__dcmqi", "data", "segmentations")
TIMEOUT_MS = 120_000


def pixels(widget: ViewportWidget) -> np.ndarray[Any, Any]:
    img = widget.grab().toImage()
    img = img.convertToFormat(img.Format.Format_RGB888)
    w, h = img.width(), img.height()
    arr = np.frombuffer(img.constBits(), np.uint8, count=img.bytesPerLine() * h)
    return arr.reshape(h, img.bytesPerLine())[:, : w * 3].reshape(h, w, 3).astype(int)


def show(qtbot: Any, widget: ViewportWidget, uid: str) -> None:
    """Drop series ``uid`` on ``widget`` and wait until all its slices are there."""
    assert drag_to(widget, series_mime(uid)) == (True, True)
    qtbot.waitUntil(
        lambda: (
            widget.state.series is not None
            and widget.state.series.series_instance_uid == uid
            and loaded(widget.state)
        ),
        timeout=TIMEOUT_MS,
    )


def repainted(qtbot: Any, widget: QWidget) -> None:
    widget.repaint()
    qtbot.wait(10)


def test_heatmap_in_every_viewport_showing_its_series(
    qtbot: Any, window: Any, dicom_data: Path
) -> None:
    mr = dicom_data.joinpath(*MR_PARTS)
    if not mr.is_dir():
        pytest.skip(f"the shared brain MR is not at '{mr}'")
    win, panel, grid, model = window, window.ai, window.grid, window.reading
    open_for_ai(qtbot, win, CR)
    win.open_paths([mr])
    qtbot.waitUntil(lambda: any(s.modality == "MR" for *_x, s in win.state.index.iter_series()))
    qtbot.waitUntil(lambda: not win.controller.indexing, timeout=TIMEOUT_MS)
    cr_uid, mr_uid = uid_of(win, "CR"), uid_of(win, "MR")
    install_series_drop(win)
    model.set_preset("1x2")
    v1, v2 = grid.widgets
    show(qtbot, v1, mr_uid)
    show(qtbot, v2, cr_uid)

    # the panel acts on the active viewport: the one the CR was dropped on
    assert model.active == 1
    assert panel.state is v2.state
    assert panel.selected_model() == "chest-xray-pneumonia"
    repainted(qtbot, v2)
    before = pixels(v2)
    row = panel.run_current_image()
    assert row is not None
    qtbot.waitUntil(lambda: row.state == "done", timeout=TIMEOUT_MS)
    assert row.series_uid == cr_uid
    assert row.maps is not None
    k = v2.state.viewport.slice_index
    np.testing.assert_array_equal(v2.heatmaps[k], row.maps[0])
    qtbot.waitUntil(lambda: v2.heatmap_painted == k, timeout=5000)
    tinted = np.abs(pixels(v2) - before).sum(axis=2) > 30
    assert (
        tinted.mean() > 0.01
    )  # at most the map's hottest tenth is coloured  # a visible share of viewport 2 is tinted
    # viewport 1 shows the MR: no heatmap of the CR there
    repainted(qtbot, v1)
    assert v1.heatmaps == {}
    assert v1.heatmap_painted is None
    assert panel.current_result() is not None  # the active viewport's slice has the result

    # the CR in viewport 1 too: the same result drawn there, at the same instance
    show(qtbot, v1, cr_uid)
    np.testing.assert_array_equal(v1.heatmaps[v1.state.viewport.slice_index], row.maps[0])
    assert v1.heatmaps[v1.state.viewport.slice_index] is v2.heatmaps[k]  # one copy in memory
    qtbot.waitUntil(lambda: v1.heatmap_painted == v1.state.viewport.slice_index, timeout=5000)

    # the toggle and the opacity act on every viewport
    panel.heat_toggle.setChecked(False)
    for v in (v1, v2):
        repainted(qtbot, v)
        assert v.heatmap_painted is None
    np.testing.assert_array_equal(pixels(v2), before)  # exactly the overlay went
    panel.heat_toggle.setChecked(True)
    panel.opacity.setValue(80)
    assert (v1.heatmap_opacity, v2.heatmap_opacity) == (0.8, 0.8)

    # viewport 2 switched to the MR: the CR's heatmap leaves it, stays in viewport 1
    show(qtbot, v2, mr_uid)
    repainted(qtbot, v2)
    assert v2.heatmaps == {}
    assert v2.heatmap_painted is None
    assert model.active == 1
    assert panel.current_result() is None
    repainted(qtbot, v1)
    assert v1.heatmap_painted == v1.state.viewport.slice_index

    # a viewport a later layout adds gets it, with the toggles as they are
    model.set_preset("2x2")
    v4 = grid.widgets[3]
    show(qtbot, v4, cr_uid)
    np.testing.assert_array_equal(v4.heatmaps[v4.state.viewport.slice_index], row.maps[0])
    assert v4.heatmap_opacity == 0.8
    qtbot.waitUntil(lambda: v4.heatmap_painted == v4.state.viewport.slice_index, timeout=5000)
    assert panel.state is v4.state
    for i in range(4):  # the loads end before the window shuts down
        qtbot.waitUntil(lambda i=i: loaded(model.cells[i].state) or not model.cells[i].series_uid)


def test_seg_masks_in_every_viewport_showing_their_slices(
    qtbot: Any, window: Any, dicom_data: Path
) -> None:
    from desktop.seg_overlay import install

    seg_dir, mr = dicom_data.joinpath(*SEG_PARTS), dicom_data.joinpath(*MR_PARTS)
    ct3, liver = seg_dir / "ct-3slice", seg_dir / "liver.dcm"
    if not ct3.is_dir() or not liver.exists() or not mr.is_dir():
        pytest.skip(f"the shared CT with its SEG or the MR are not under '{dicom_data}'")
    win, grid, model = window, window.grid, window.reading
    panel = install(win)
    install_series_drop(win)
    win.open_paths([str(ct3), str(liver), str(mr)])
    qtbot.waitUntil(lambda: len(panel.overlays) == 1, timeout=TIMEOUT_MS)
    qtbot.waitUntil(lambda: not win.controller.indexing, timeout=TIMEOUT_MS)
    ct_uid, mr_uid = uid_of(win, "CT"), uid_of(win, "MR")
    model.set_preset("1x2")
    v1, v2 = grid.widgets
    show(qtbot, v1, mr_uid)
    show(qtbot, v2, ct_uid)
    l1, l2 = panel.layer_of(v1), panel.layer_of(v2)
    assert l1 is not None
    assert l2 is not None
    assert l1 is panel.layer
    for layer, masks in ((l1, 0), (l2, 1)):  # the liver over the CT slice, nothing on the MR
        repainted(qtbot, layer)
        assert layer.painted_masks == masks

    # the toggle acts on every viewport
    with_masks = pixels(v2)
    panel.show_masks.setChecked(False)
    assert not l1.isVisible()
    assert not l2.isVisible()
    without = pixels(v2)
    tinted = np.abs(with_masks - without).sum(axis=2) > 30
    assert tinted.mean() > 0.02
    panel.show_masks.setChecked(True)

    # the CT in viewport 1 too: masks there; viewport 2 switched to the MR: none there
    show(qtbot, v1, ct_uid)
    show(qtbot, v2, mr_uid)
    for layer, masks in ((l1, 1), (l2, 0)):
        repainted(qtbot, layer)
        assert layer.painted_masks == masks

    # a viewport a later layout adds gets a layer with the masks
    model.set_preset("1x3")
    v3 = grid.widgets[2]
    show(qtbot, v3, ct_uid)
    l3 = panel.layer_of(v3)
    assert l3 is not None
    assert l3.isVisible()
    repainted(qtbot, l3)
    assert l3.painted_masks == 1

    # a reformat over the CT cell: the acquired slice's masks are not drawn over it
    grid.set_orientation("coronal", 2)
    assert l3.covered()
    repainted(qtbot, l3)
    assert l3.painted_masks == 0
    grid.set_orientation("acquired", 2)
    repainted(qtbot, l3)
    assert l3.painted_masks == 1
    qtbot.waitUntil(lambda: all(loaded(c.state) for c in model if c.series_uid))


def test_the_layout_outlives_the_window_with_the_overlays_and_drops(qtbot: Any) -> None:
    """Nothing installed here is called once its window is gone (the layout may live on: a
    test keeps it, the reading room may rebuild its window)."""
    from PySide6.QtCore import QCoreApplication, QEvent
    from PySide6.QtWidgets import QMainWindow

    from core.inference.manager import ModelManager
    from core.viewer.layout import Layout
    from core.viewer.state import ViewerState
    from desktop.ai_panel import AIPanel
    from desktop.browser import StudyBrowser
    from desktop.seg_overlay import ResultsObjectsPanel, SegOverlayLayer
    from desktop.series_drop import SeriesDrop
    from desktop.viewport_grid import ViewportGrid
    from desktop.workers import ErrorSink, JobRunner

    first = ViewerState()
    layout = Layout(1, 2, first=first)
    runner = JobRunner(ErrorSink())
    win = QMainWindow()
    grid = ViewportGrid(layout, ViewportWidget(first), runner=runner)
    win.setCentralWidget(grid)
    SeriesDrop(grid)
    ai = AIPanel(first, grid.widgets[0], runner, manager=ModelManager([]), parent=win)
    ai.follow_grid(grid)
    seg = ResultsObjectsPanel(first, runner, SegOverlayLayer(grid.widgets[0], first), win)
    seg.follow_grid(grid)
    browser = StudyBrowser(first, win)
    browser.follow_layout(layout)
    layout.set_active(1)
    assert ai.state is layout.cells[1].state
    assert runner.shutdown(10_000)
    win.deleteLater()
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    layout.set_active(0)  # the AI panel and the browser follow the active viewport no more
    layout.set_preset("2x2")  # nor do the drop targets and mask layers follow new cells
    layout.set_active(3)
    layout.cell_changed.emit(3)
    assert (layout.active, len(layout)) == (3, 4)
