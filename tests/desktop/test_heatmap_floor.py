"""The heatmap floor: nothing is coloured below it, in the PNG/report blend and in the viewer's
overlay over a real model's Grad-CAM on the real MR; the colour bar shows the values."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from core.inference.heatmap import DEFAULT_FLOOR, blend, colormap, overlay_alpha
from core.viewer.transform import screen_to_image
from tests.desktop.helpers import open_for_ai
from tests.desktop.test_ai_review import MR_PARTS, TIMEOUT_MS, _rgb


def test_blend_leaves_the_image_exactly_below_the_floor() -> None:
    rng = np.random.default_rng(5)
    image = rng.integers(0, 256, (64, 80), dtype=np.uint8)
    heat = np.tile(np.linspace(0.0, 1.0, 80, dtype=np.float32), (64, 1))
    out = blend(image, heat, opacity=0.6, floor=0.2)
    below = heat <= 0.2
    np.testing.assert_array_equal(out[below], np.repeat(image[below][:, None], 3, axis=1))
    assert (np.abs(out[heat > 0.5].astype(int) - image[heat > 0.5][:, None]).max(axis=1) > 0).all()
    # at the peak the colour is at the full opacity, as before the floor existed
    peak = out[0, -1].astype(float)
    expected = image[0, -1] * 0.4 + colormap(np.array([1.0]))[0] * 0.6
    np.testing.assert_allclose(peak, expected, atol=1)
    # the alpha ramps from 0 at the floor; a floor of 0 is the old "opacity x heat"
    np.testing.assert_allclose(
        overlay_alpha(np.array([0.2, 0.6, 1.0]), 0.5, 0.2), [0, 0.25, 0.5], atol=1e-6
    )
    np.testing.assert_allclose(overlay_alpha(heat, 0.5, 0.0), 0.5 * heat, atol=1e-6)
    with pytest.raises(ValueError, match=r"heatmap floor 1\.5 is outside"):
        blend(image, heat, floor=1.5)


def _changed(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    return np.abs(after.astype(int) - before.astype(int)).max(axis=2) > 0


def test_viewer_overlay_is_transparent_below_the_floor(qtbot, window, dicom_data: Path) -> None:
    win, panel = window, window.ai
    open_for_ai(qtbot, win, dicom_data.joinpath(*MR_PARTS))
    panel.select_model("brain-tumour-mri")
    win.state.set_slice(12)
    row = panel.run_current_image()
    qtbot.waitUntil(lambda: row.finished, timeout=TIMEOUT_MS)
    assert row.state == "done", row.message
    heat = win.viewport.heatmaps[12]
    assert panel.floor.value() == DEFAULT_FLOOR
    assert win.viewport.heatmap_floor == DEFAULT_FLOOR

    panel.heat_toggle.setChecked(False)
    qtbot.waitUntil(lambda: win.viewport.heatmap_painted is None, timeout=5000)
    plain = _rgb(win.viewport)
    panel.heat_toggle.setChecked(True)
    qtbot.waitUntil(lambda: win.viewport.heatmap_painted == 12, timeout=5000)
    with_floor = _rgb(win.viewport)

    # the heat under each screen pixel, as the max over its 3x3 image neighbourhood (the
    # overlay is drawn with smooth scaling, so a pixel mixes its neighbours)
    padded = np.pad(heat, 1, mode="edge")
    local_max = np.max(
        [
            padded[1 + dy : 1 + dy + heat.shape[0], 1 + dx : 1 + dx + heat.shape[1]]
            for dy in (-1, 0, 1)
            for dx in (-1, 0, 1)
        ],
        axis=0,
    )
    g = win.viewport.view_geometry()
    h, w = plain.shape[:2]
    ys, xs = np.mgrid[0:h:3, 0:w:3]
    cold, hot = [], []
    for y, x in zip(ys.ravel(), xs.ravel(), strict=True):
        col, r = screen_to_image(g, (x + 0.5, y + 0.5))
        ci, ri = int(np.floor(col)), int(np.floor(r))
        if 0 <= ri < heat.shape[0] and 0 <= ci < heat.shape[1]:
            if local_max[ri, ci] <= DEFAULT_FLOOR * 255:
                cold.append((y, x))
            elif heat[ri, ci] >= 0.8 * 255:
                hot.append((y, x))
    assert len(cold) > 1000, "most of the image is below the floor"
    assert hot, "the model's region is above it"
    changed = _changed(plain, with_floor)
    assert not any(changed[y, x] for y, x in cold)  # not tinted at all
    assert np.mean([changed[y, x] for y, x in hot]) > 0.95

    # without a floor the whole low range is tinted (what the floor is for)
    panel.floor.setValue(0.0)
    assert win.viewport.heatmap_floor == 0.0
    win.viewport.repaint()
    no_floor = _changed(plain, _rgb(win.viewport))
    in_cold = np.array([no_floor[y, x] for y, x in cold])
    assert in_cold.mean() > 0.5  # most of the low range is tinted without a floor
    assert no_floor.sum() > changed.sum()


def test_colour_bar_has_values_and_leaves_the_floor_uncoloured(qtbot, window) -> None:
    bar = window.ai.colour_bar
    assert bar.labels() == ["0", "0.25", "0.5", "0.75", "1"]
    window.ai.floor.setValue(0.4)
    assert bar.floor == 0.4
    img = bar.bar_image(200, 14)
    ptr = img.constBits()
    arr = np.frombuffer(ptr, dtype=np.uint8, count=img.sizeInBytes())
    rgb = arr.reshape(img.height(), img.bytesPerLine())[:, : 200 * 3].reshape(14, 200, 3)
    below = rgb[:, : int(0.4 * 199)]
    assert (below[..., 0] == below[..., 2]).all()  # only the gray checkerboard there
    np.testing.assert_allclose(rgb[7, -1], colormap(np.array([1.0]))[0], atol=2)
    assert "below 0.4 nothing is coloured" in bar.toolTip()
