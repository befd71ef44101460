"""The AI panel in the real main window: run the real zoo model on real DICOM, see the heatmap
overlay in the viewport's pixels, accept / comment on the result, cancel queued runs, and the
model manager view."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtCore import Qt

from core.inference.heatmap import colormap
from core.viewer.transform import image_to_screen
from tests.desktop.helpers import open_for_ai

REPO = Path(__file__).resolve().parents[2]
CR = REPO / "resources" / "sample" / "chest_cr" / "RG1_J2KI.dcm"
MR_PARTS = ("plotly__dash-vtk", "demos", "data", "mri_brain")
TIMEOUT_MS = 120_000


def _pixels(widget) -> np.ndarray:
    img = widget.grab().toImage().convertToFormat(widget.grab().toImage().Format.Format_RGB888)
    ptr = img.constBits()
    arr = np.frombuffer(ptr, dtype=np.uint8, count=img.sizeInBytes())
    return (
        arr.reshape(img.height(), img.bytesPerLine())[:, : img.width() * 3]
        .reshape(img.height(), img.width(), 3)
        .copy()
    )


def test_run_on_chest_cr_shows_overlay_and_records_decisions(qtbot, window) -> None:
    win, panel = window, window.ai
    open_for_ai(qtbot, win, CR)
    assert win.state.series.modality == "CR"
    assert panel.selected_model() == "chest-xray-pneumonia"
    assert panel.models.count() == 1  # only the CR/DX model applies
    assert not panel.demo_banner.isHidden()
    assert panel.demo_banner.text() == "Demo model - not for clinical use"

    before = _pixels(win.viewport)

    qtbot.mouseClick(panel.run_image_button, Qt.MouseButton.LeftButton)
    row = panel.queue.rows[-1]
    qtbot.waitUntil(lambda: row.state == "done", timeout=TIMEOUT_MS)
    assert panel.queue_table.rowCount() == 1
    assert panel.queue_table.item(0, 2).text().startswith("done")

    result, k = panel.current_result()
    assert (
        result.provenance.inputs[k].sop_instance_uid
        == win.state.current_slice().instance.sop_instance_uid
    )
    scores = [float(panel.scores.item(i, 1).text()) for i in range(panel.scores.rowCount())]
    assert panel.scores.rowCount() == 2
    assert abs(sum(scores) - 1) < 0.01
    assert "device cpu" in panel.provenance.text()
    assert not panel.result_demo.isHidden()

    index = win.state.viewport.slice_index
    heat = win.viewport.heatmaps[index]
    assert heat.shape == win.state.current_frame().shape
    assert heat.dtype == np.uint8
    assert heat.max() > 200
    qtbot.waitUntil(lambda: win.viewport.heatmap_painted == index, timeout=5000)
    with_overlay = _pixels(win.viewport).astype(int)
    changed = np.abs(with_overlay - before).sum(axis=2) > 30
    # a visible share is tinted (at most the hottest tenth of the image is coloured)
    assert changed.mean() > 0.02
    # at the hottest image point the screen shows gray*(1-a) + hot colour*a, a = heat*opacity
    row_i, col_i = np.unravel_index(int(np.argmax(heat)), heat.shape)
    x, y = image_to_screen(win.viewport.view_geometry(), (col_i + 0.5, row_i + 0.5))
    x, y = int(x), int(y)
    alpha = heat[row_i, col_i] / 255 * win.viewport.heatmap_opacity
    expected = (
        before[y, x] * (1 - alpha) + colormap(np.array([heat[row_i, col_i] / 255]))[0] * alpha
    )
    np.testing.assert_allclose(with_overlay[y, x], expected, atol=12)
    # the gray image underneath has R == G == B
    assert int(np.abs(before[changed][:, 0].astype(int) - before[changed][:, 2]).max()) <= 2

    panel.heat_toggle.setChecked(False)
    qtbot.waitUntil(lambda: win.viewport.heatmap_painted is None, timeout=5000)
    hidden = _pixels(win.viewport)
    np.testing.assert_array_equal(hidden, before)  # the toggle removes exactly the overlay
    panel.heat_toggle.setChecked(True)
    panel.opacity.setValue(100)
    assert win.viewport.heatmap_opacity == 1.0

    with qtbot.waitSignal(panel.decided, timeout=TIMEOUT_MS):
        qtbot.mouseClick(panel.accept_button, Qt.MouseButton.LeftButton)
    assert panel.results.latest(result.result_id) == "accepted"
    assert "accepted" in panel.verdict.text()
    panel.comment.setText("consolidation right lower zone")
    with qtbot.waitSignal(panel.decided, timeout=TIMEOUT_MS):
        qtbot.mouseClick(panel.comment_button, Qt.MouseButton.LeftButton)
    entries = [(d, c) for r, d, c in panel.results.decisions if r == result.result_id]
    assert entries == [("accepted", ""), ("comment", "consolidation right lower zone")]
    assert panel.results.results[result.result_id]["model"]["id"] == "chest-xray-pneumonia"

    # the same pixels again: served from the prediction cache, a new result of its own
    panel.run_current_image()
    row2 = panel.queue.rows[-1]
    qtbot.waitUntil(lambda: row2.state == "done", timeout=TIMEOUT_MS)
    assert row2.result.provenance.cache_hit
    assert row2.result.result_id != result.result_id
    np.testing.assert_array_equal(row2.result.probabilities, result.probabilities)
    assert "from cache" in panel.provenance.text()


def test_queue_cancel_and_model_manager(qtbot, window) -> None:
    win, panel = window, window.ai
    open_for_ai(qtbot, win, CR)
    rows = [panel.run_current_image() for _ in range(4)]
    panel.queue.cancel_all()
    for row in rows:
        assert row.state in ("cancelled", "done")
    qtbot.waitUntil(lambda: not panel.queue.active() and win.runner.active == 0, timeout=TIMEOUT_MS)
    assert all(r.state == "cancelled" for r in rows if r.result is None)
    assert panel.queue_table.rowCount() == 4

    view = panel.manager_view
    panel.show_manager()
    assert win.models_dock.isVisible()
    ids = [
        view.table.item(i, 0).data(Qt.ItemDataRole.UserRole) for i in range(view.table.rowCount())
    ]
    assert {"chest-xray-pneumonia", "tabular-breast-cancer", "brain-tumour-mri"} <= set(ids)
    combo = view.table.cellWidget(ids.index("tabular-breast-cancer"), 3)
    combo.setCurrentText("cpu")
    assert panel.manager.device_override("tabular-breast-cancer") == "cpu"
    panel.manager.health_check("tabular-breast-cancer")  # psygnal -> Qt hop refreshes the table
    row = ids.index("tabular-breast-cancer")
    qtbot.waitUntil(lambda: view.table.item(row, 7).text().startswith("passed"), timeout=10_000)
    assert view.table.item(row, 5).text() == "yes"
    assert view.table.item(row, 4).text() == "cpu"


def test_whole_mr_series_in_batches(qtbot, window, dicom_data: Path) -> None:
    mr = dicom_data.joinpath(*MR_PARTS)
    win, panel = window, window.ai
    open_for_ai(qtbot, win, mr)
    assert win.state.series.modality == "MR"
    panel.select_model("brain-tumour-mri")
    panel.queue.batch_size = 8
    progress: list[tuple[int, int]] = []
    panel.queue.changed.connect(
        lambda: progress.append((panel.queue.rows[-1].done, panel.queue.rows[-1].total))
    )
    qtbot.mouseClick(panel.run_series_button, Qt.MouseButton.LeftButton)
    row = panel.queue.rows[-1]
    qtbot.waitUntil(lambda: row.state == "done", timeout=TIMEOUT_MS)
    n = win.state.slice_count
    assert row.result.probabilities.shape == (n, 2)
    assert n == 24
    assert (8, 24) in progress  # images done, after the first batch of 8
    assert (24, 24) in progress
    assert set(win.viewport.heatmaps) == set(range(n))
    uids = [ref.sop_instance_uid for ref in row.result.provenance.inputs]
    assert uids == [s.instance.sop_instance_uid for s in win.state.slices]
    win.state.set_slice(3)
    qtbot.waitUntil(lambda: win.viewport.heatmap_painted == 3, timeout=5000)
    assert panel.current_result()[1] == 3
    # the slice order changes under the finished result (as when indexing re-sorts a
    # provisional series): results and heatmaps follow their instances, not the old indices
    shown_uid = win.state.slices[3].instance.sop_instance_uid
    heat_of_shown = win.viewport.heatmaps[3].copy()
    win.state.series.instances.reverse()
    win.state.refresh_slices()
    new_index = [s.instance.sop_instance_uid for s in win.state.slices].index(shown_uid)
    assert new_index == n - 1 - 3
    np.testing.assert_array_equal(win.viewport.heatmaps[new_index], heat_of_shown)
    win.state.set_slice(new_index)
    result, k = panel.current_result()
    assert result.provenance.inputs[k].sop_instance_uid == shown_uid


def test_shadow_candidate_runs_after_the_shown_result_and_is_only_reported(
    qtbot, window, tmp_path: Path
) -> None:
    from core.inference.shadow import ShadowModels
    from tests.inference.test_shadow import candidate

    win, panel = window, window.ai
    open_for_ai(qtbot, win, CR)
    panel.set_shadow(ShadowModels.from_dirs([(candidate(tmp_path, "9.1.0"), 5)], device="cpu"))
    with qtbot.waitSignal(panel.shadow_recorded, timeout=TIMEOUT_MS) as got:
        row = panel.run_current_image()
    item = got.args[0]
    assert row.state == "done"
    assert row.sources is None
    assert (item["model_version"], item["shadow"], item["rollout_id"]) == ("9.1.0", True, 5)
    assert item["summary"]["shown_result_id"] == row.result.result_id
    assert item["summary"]["agrees_with_shown"] is True
    assert panel.results.shadow_results == [item]
    # the radiologist sees the shipped model's result only: one queue row, one stored result
    assert panel.queue_table.rowCount() == 1
    assert list(panel.results.results) == [row.result.result_id]
    shipped = panel.manager.package("chest-xray-pneumonia").version
    assert panel.result_title.text().startswith(f"chest-xray-pneumonia {shipped}:")
