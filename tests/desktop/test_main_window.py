"""The whole window on the real 134-slice CT: open, first slice, scroll, W/L drag, zoom,
length and ROI measurements, tag browser, hide-PHI, cancel. Expected values are computed here
from pydicom and PixelSpacing, independently of the viewer."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pydicom
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QWheelEvent
from PySide6.QtWidgets import QApplication

from core.viewer.measure import Measurement
from core.viewer.overlay import corner_text
from core.viewer.transform import image_to_screen

LOAD_TIMEOUT_MS = 60_000


def _screen(win, pt: tuple[float, float]) -> QPoint:
    g = win.viewport.view_geometry()
    x, y = image_to_screen(g, pt)
    return QPoint(round(x), round(y))


def _drag(qtbot, widget, button, a: QPoint, b: QPoint) -> None:
    qtbot.mousePress(widget, button, pos=a)
    mid = QPoint((a.x() + b.x()) // 2, (a.y() + b.y()) // 2)
    qtbot.mouseMove(widget, mid)
    qtbot.mouseMove(widget, b)
    qtbot.mouseRelease(widget, button, pos=b)


def _wheel(widget, steps: int) -> None:
    centre = QPointF(widget.width() / 2, widget.height() / 2)
    ev = QWheelEvent(
        centre,
        widget.mapToGlobal(centre),
        QPoint(0, 0),
        QPoint(0, 120 * steps),
        Qt.MouseButton.NoButton,
        Qt.KeyboardModifier.NoModifier,
        Qt.ScrollPhase.NoScrollPhase,
        False,
    )
    QApplication.sendEvent(widget, ev)


def _open_ct(qtbot, win, ct_dir: Path) -> list[str]:
    """Open the CT folder; returns the paths of the instances painted, in paint order, up to
    the end of indexing (a provisional first image may be painted before)."""
    painted: list[str] = []
    st = win.state
    win.viewport.painted.connect(lambda i: painted.append(st.slices[i].instance.path))
    win.open_paths([ct_dir])
    qtbot.waitUntil(lambda: bool(painted), timeout=LOAD_TIMEOUT_MS)
    qtbot.waitUntil(lambda: "indexed" in win.controller.timings, timeout=LOAD_TIMEOUT_MS)
    return painted


def _geometric_order(ct_dir: Path) -> list[str]:
    """The CT's files sorted along the slice normal, computed here with pydicom and numpy."""
    keyed = []
    for f in ct_dir.glob("*.dcm"):
        ds = pydicom.dcmread(f, stop_before_pixels=True)
        o = np.array([float(v) for v in ds.ImageOrientationPatient])
        normal = np.cross(o[:3], o[3:])
        keyed.append((float(np.dot([float(v) for v in ds.ImagePositionPatient], normal)), str(f)))
    return [path for _pos, path in sorted(keyed)]


def test_whole_window_on_real_ct(qtbot, window, ct_dir: Path) -> None:
    win, st = window, window.state
    painted = _open_ct(qtbot, win, ct_dir)
    assert st.slice_count == 134
    order = _geometric_order(ct_dir)
    assert [r.instance.path for r in st.slices] == order
    # the first image painted is a middle file; it stays on screen at its sorted position
    start = order.index(painted[0])
    assert 50 <= start <= 84
    assert st.viewport.slice_index == start
    qtbot.waitUntil(lambda: "series_loaded" in win.controller.timings, timeout=LOAD_TIMEOUT_MS)
    assert st.loaded_count == 134
    text = corner_text(st).all_text()
    assert f"Im {start + 1}/134" in text

    # scroll: wheel, keys, slider all move the same model value
    vp = st.viewport
    _wheel(win.viewport, -2)  # wheel towards the user: next slices
    assert vp.slice_index == start + 2
    win.viewport.setFocus()
    qtbot.keyClick(win.viewport, Qt.Key.Key_Down)
    assert vp.slice_index == start + 3
    qtbot.keyClick(win.viewport, Qt.Key.Key_PageUp)
    assert vp.slice_index == start - 7
    assert win.slider.value() == start - 7
    win.slider.setValue(66)
    assert vp.slice_index == 66
    ref = st.current_slice()
    ds = pydicom.dcmread(ref.instance.path)
    hu = ds.pixel_array.astype(np.float64) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    np.testing.assert_allclose(st.current_frame().values, hu, atol=1e-3)

    # window/level by left drag: right = wider, down = higher level
    before = win.viewport.grab().toImage()
    c0, w0 = vp.window_center, vp.window_width
    centre = QPoint(win.viewport.width() // 2, win.viewport.height() // 2)
    _drag(qtbot, win.viewport, Qt.MouseButton.LeftButton, centre, centre + QPoint(90, 45))
    assert vp.window_width > w0 + 50
    assert vp.window_center > c0 + 25
    assert vp.preset == "custom"
    assert win.viewport.grab().toImage() != before

    # zoom by right drag upwards, then back to fit
    z0 = win.viewport.effective_zoom()
    _drag(qtbot, win.viewport, Qt.MouseButton.RightButton, centre, centre - QPoint(0, 80))
    assert not vp.fit
    assert vp.zoom > z0 * 1.3
    win.actions_by_name["Fit"].trigger()
    assert vp.fit
    assert win.viewport.effective_zoom() == z0

    # presets from the menu (lung: -600/1500 HU), invert, rotate, flip, 1:1, fit
    lung = next(a for a in win.preset_menu.actions() if a.text().startswith("Lung"))
    lung.trigger()
    assert (vp.window_center, vp.window_width, vp.preset) == (-600.0, 1500.0, "lung")
    assert "W 1500  L -600" in corner_text(st).all_text()
    plain = win.viewport.grab().toImage()
    win.actions_by_name["Invert"].trigger()
    assert vp.invert
    assert win.viewport.grab().toImage() != plain
    win.actions_by_name["Invert"].trigger()
    win.actions_by_name["Rot ⟳"].trigger()
    win.actions_by_name["Flip H"].trigger()
    assert (vp.rotation, vp.flip_h) == (90, True)
    win.actions_by_name["Reset"].trigger()
    assert (vp.rotation, vp.flip_h, vp.fit) == (0, False, True)
    win.actions_by_name["1:1"].trigger()
    assert (vp.zoom, vp.fit) == (1.0, False)
    assert "Zoom 100%" in corner_text(st, win.viewport.effective_zoom()).all_text()
    win.actions_by_name["Fit"].trigger()

    # length: 300 image pixels horizontally = 300 * column spacing; the window's annotation
    # layer (session-only without a profile) holds what the Length and ROI tools draw
    from core.annotations import compute
    from core.annotations.model import Kind

    layer = win.annotations
    _rs, cs = (float(v) for v in ds.PixelSpacing)
    win.actions_by_name["Length"].trigger()
    a, b = (100.0, 256.0), (400.0, 256.0)
    _drag(qtbot, win.viewport, Qt.MouseButton.LeftButton, _screen(win, a), _screen(win, b))
    qtbot.waitUntil(lambda: any(x.kind is Kind.LENGTH for x in layer.shown.values()), timeout=5_000)
    [m] = [x for x in layer.shown.values() if x.kind is Kind.LENGTH]
    assert m.image.sop_instance_uid == str(ds.SOPInstanceUID)  # drawn on slice 66
    got = compute.length(m)
    assert got.unit == "mm"
    tol = 1.5 / win.viewport.effective_zoom() * cs * 2  # screen positions are whole pixels
    assert math.isclose(got.value, 300 * cs, abs_tol=tol)

    # ROI in air at the image corner: about -1000 HU, matching pydicom on the same pixels
    win.actions_by_name["ROI"].trigger()
    _drag(
        qtbot,
        win.viewport,
        Qt.MouseButton.LeftButton,
        _screen(win, (40, 40)),
        _screen(win, (120, 120)),
    )
    qtbot.waitUntil(lambda: any(x.kind is Kind.RECTANGLE for x in layer.shown.values()))
    roi = next(x for x in layer.shown.values() if x.kind is Kind.RECTANGLE)
    stats = compute.roi_stats(roi, hu, "HU")
    assert stats is not None
    assert stats.units == "HU"
    assert -1000 <= stats.mean <= -980
    top, left, bottom, right = roi.bounds()
    assert math.isclose(stats.pixels, (bottom - top) * (right - left), rel_tol=0.1)
    box = hu[round(top) : round(bottom), round(left) : round(right)]
    assert math.isclose(stats.mean, box.mean(), abs_tol=2.0)  # independent of the mask

    # tag browser shows the current instance's header
    qtbot.waitUntil(
        lambda: win.tags.values_by_keyword().get("SOPInstanceUID") == str(ds.SOPInstanceUID),
        timeout=10_000,
    )
    assert win.tags.values_by_keyword()["PatientName"] == str(ds.PatientName)

    # one toggle hides the patient everywhere: overlay, browser, title, tags
    name = str(ds.PatientName)
    assert name in corner_text(st).all_text()
    win.actions_by_name["Hide patient info"].trigger()
    assert st.hide_phi
    assert name not in corner_text(st).all_text()
    assert name not in win.windowTitle()
    assert name not in win.browser.topLevelItem(0).text(0)
    qtbot.waitUntil(
        lambda: win.tags.values_by_keyword().get("PatientName") == "***", timeout=10_000
    )

    # cine plays through slices until stopped
    vp.cine_fps = 60
    start = vp.slice_index
    win.actions_by_name["Cine"].trigger()
    qtbot.waitUntil(lambda: vp.slice_index not in (start, start + 1), timeout=5_000)
    win.actions_by_name["Cine"].trigger()
    assert not vp.cine_playing
    assert not win.cine.timer.isActive()


def test_cancel_and_switching_series_cancels_load(qtbot, window, ct_dir: Path) -> None:
    win, st, ctl = window, window.state, window.controller
    _open_ct(qtbot, win, ct_dir)
    qtbot.waitUntil(lambda: "series_loaded" in ctl.timings, timeout=LOAD_TIMEOUT_MS)
    uid = st.series.series_instance_uid
    job = ctl.open_series(uid)  # reload, then cancel at once
    assert job is not None
    assert st.loaded_count == 0
    win.cancel_loading()
    assert job.cancelled
    assert ctl.series_load is None
    qtbot.waitUntil(lambda: job.done, timeout=10_000)
    assert st.loaded_count < st.slice_count
    assert "series_loaded" not in ctl.timings
    # switching series while loading cancels the previous load
    first = ctl.open_series(uid)
    second = ctl.open_series(uid)
    assert first is not None
    assert first.cancelled
    assert second is not None
    qtbot.waitUntil(lambda: "series_loaded" in ctl.timings, timeout=LOAD_TIMEOUT_MS)
    assert st.loaded_count == st.slice_count


def test_opening_another_study_shows_it_unless_measurements_would_be_lost(
    qtbot, window, dicom_data: Path
) -> None:
    from core.viewer.measure import Measurement

    win, st = window, window.state
    mr = dicom_data / "plotly__dash-vtk" / "demos" / "data" / "mri_brain"
    cr = Path(__file__).resolve().parents[2] / "resources" / "sample" / "chest_cr"
    win.open_paths([mr])
    qtbot.waitUntil(
        lambda: (
            st.series is not None and st.series.modality == "MR" and not win.controller.indexing
        ),
        timeout=60_000,
    )
    win.open_paths([cr])
    qtbot.waitUntil(lambda: st.series.modality == "CR", timeout=60_000)  # the study just opened
    mr_series = next(s for _p, _st, s in st.index.iter_series() if s.modality == "MR")
    win.controller.open_series(mr_series.series_instance_uid)
    qtbot.waitUntil(lambda: st.series is mr_series, timeout=10_000)
    st.add_measurement(Measurement("length", st.viewport.slice_index, (1.0, 1.0), (20.0, 1.0)))
    messages: list[str] = []
    win.controller.status.connect(messages.append)
    win.open_paths([dicom_data / "pyvista__vtk-data" / "Data" / "DICOM_Stack" / "1-001.dcm"])
    qtbot.waitUntil(lambda: any("another study" in m for m in messages), timeout=60_000)
    assert st.series is mr_series  # the radiologist's measurement stays on screen
    assert len(st.measurements) == 1


def test_toolbar_acts_on_the_active_viewport_and_its_linked_ones(
    qtbot, window, ct_dir: Path
) -> None:
    from core.viewer.presets import AUTO, presets_for

    win, grid = window, window.grid
    cr = Path(__file__).resolve().parents[2] / "resources" / "sample" / "chest_cr"
    win.open_paths([ct_dir, cr])
    qtbot.waitUntil(lambda: "series_loaded" in win.controller.timings, timeout=LOAD_TIMEOUT_MS)
    qtbot.waitUntil(lambda: not win.controller.indexing, timeout=LOAD_TIMEOUT_MS)
    series = {s.modality: s.series_instance_uid for _p, _st, s in win.state.index.iter_series()}
    model = grid.model
    model.set_preset("1x2")
    model.set_active(1)
    grid.open_series(series["CT"])  # the CT on the right (its frames handed over)
    model.set_active(0)
    grid.open_series(series["CR"])  # the radiograph on the left
    left, right = (c.state for c in model.cells[:2])
    qtbot.waitUntil(
        lambda: left.loaded_count == 1 and right.loaded_count == right.slice_count == 134,
        timeout=LOAD_TIMEOUT_MS,
    )
    act = win.actions_by_name
    model.set_active(1)
    # the slider scrolls the active viewport
    assert (win.slider.maximum(), win.slice_label.text()) == (
        133,
        f"{right.viewport.slice_index + 1} / 134",
    )
    win.slider.setValue(10)
    assert right.viewport.slice_index == 10
    assert left.viewport.slice_index == 0
    assert win.slice_label.text() == "11 / 134"
    model.set_active(0)
    assert (win.slider.maximum(), win.slice_label.text()) == (0, "1 / 1")
    model.set_active(1)
    assert win.slider.value() == 10
    # the pixel readout in the status bar comes from the viewport under the mouse
    qtbot.wait(50)
    right_widget = grid.widgets[1]
    centre = right_widget.rect().center()
    for dx in (0, 3, 6):
        qtbot.mouseMove(right_widget, centre + QPoint(dx, 0))
    assert right_widget.status_text
    qtbot.waitUntil(lambda: win.pixel_label.text() == right_widget.status_text, timeout=2_000)
    act["Invert"].trigger()
    assert (left.viewport.invert, right.viewport.invert) == (False, True)
    assert act["Invert"].isChecked()
    model.set_active(0)  # the button shows the active viewport's value, and writes nothing
    assert not act["Invert"].isChecked()
    assert right.viewport.invert
    model.set_active(1)
    assert act["Invert"].isChecked()
    act["Rot ⟳"].trigger()
    act["Flip H"].trigger()
    assert (left.viewport.rotation, right.viewport.rotation) == (0, 90)
    assert (left.viewport.flip_h, right.viewport.flip_h) == (False, True)
    act["Reset"].trigger()
    assert (right.viewport.rotation, right.viewport.flip_h) == (0, False)
    # window preset keys: the active viewport's modality; key 4 on the CT is a CT window
    (ct_key4,) = [p.name for p in presets_for("CT") if p.shortcut == "4"]
    win.preset_menu.key_actions[4].trigger()
    assert right.viewport.preset == ct_key4
    assert left.viewport.preset == AUTO
    # clear: the active viewport's measurements only
    for st in (left, right):
        st.add_measurement(Measurement("length", st.viewport.slice_index, (1, 1), (9, 1)))
    act["Clear"].trigger()
    assert (len(left.measurements), len(right.measurements)) == (1, 0)
    # cine plays in the active viewport
    start = right.viewport.slice_index
    act["Cine"].trigger()
    assert right.viewport.cine_playing
    assert not left.viewport.cine_playing
    qtbot.waitUntil(lambda: right.viewport.slice_index != start, timeout=5_000)
    act["Cine"].trigger()
    assert not right.viewport.cine_playing
    # linked zoom/pan: the view actions reach the other viewport of the link group too
    grid.links.set_links(zoom_pan=True)
    act["Rot ⟲"].trigger()
    assert (left.viewport.rotation, right.viewport.rotation) == (270, 270)
    grid.links.set_links(window=True)
    act["Invert"].trigger()  # off on the right, and on the left with it
    assert (left.viewport.invert, right.viewport.invert) == (False, False)
    act["Invert"].trigger()
    assert (left.viewport.invert, right.viewport.invert) == (True, True)
    # hide patient info hides it in every viewport
    act["Hide patient info"].trigger()
    assert left.hide_phi
    assert right.hide_phi
    win.state.hide_phi = False  # set on viewport 1 (as the app does at start): spreads too
    assert not right.hide_phi
