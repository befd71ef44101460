"""The heatmap floor: nothing is coloured below the map's cut (the floor, raised to the map's
hottest tenth), in the PNG/report blend and in the viewer's overlay over a real model's
Grad-CAM on the real MR, where the map sits near half its peak over the whole brain and only
a small part of the brain may be tinted; the colour bar shows the values and the cut."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from core.inference.heatmap import (
    DEFAULT_FLOOR,
    MAX_AREA,
    MAX_FLOOR,
    blend,
    colormap,
    cut,
    overlay_alpha,
)
from core.viewer.transform import screen_to_image
from desktop.heatmap_bar import CAPTION
from tests.desktop.helpers import open_for_ai
from tests.desktop.test_ai_review import MR_PARTS, TIMEOUT_MS, _rgb


def _plateau() -> np.ndarray:
    """A Grad-CAM-like map: 0.55 of the peak over most of the image, a hot spot of 4%."""
    heat = np.full((100, 100), 0.55, dtype=np.float32)
    heat[:10] = 0.0  # background
    yy, xx = np.mgrid[0:100, 0:100]
    spot = (yy - 60) ** 2 + (xx - 40) ** 2 <= 11**2
    heat[spot] = 0.7 + 0.3 * (1 - np.sqrt((yy - 60) ** 2 + (xx - 40) ** 2)[spot] / 11)
    return heat


def test_cut_is_the_floor_raised_to_the_maps_hottest_tenth() -> None:
    heat = _plateau()
    # the floor alone (0.5) would colour 90% of this image: the cut rises above the plateau
    assert (heat > DEFAULT_FLOOR).mean() > 0.85
    c = cut(heat, DEFAULT_FLOOR)
    assert c == pytest.approx(0.55)
    assert (heat > c).mean() <= MAX_AREA
    # a floor above the map's hottest tenth is kept as it is
    assert cut(heat, 0.8) == 0.8
    # a small hot spot on zeros: the floor decides (the quantile is 0)
    spot = np.zeros((50, 50), dtype=np.float32)
    spot[20:25, 20:25] = 1.0
    assert cut(spot, 0.3) == 0.3
    # a map flat at its peak still shows (the cut stops at MAX_FLOOR), floor 0 is no floor
    assert cut(np.ones((8, 8)), 0.5) == MAX_FLOOR
    assert cut(heat, 0.0) == 0.0
    with pytest.raises(ValueError, match=r"heatmap floor 1\.5 is outside"):
        cut(heat, 1.5)


def test_blend_leaves_the_image_exactly_below_the_cut() -> None:
    rng = np.random.default_rng(5)
    heat = _plateau()
    image = rng.integers(0, 256, heat.shape, dtype=np.uint8)
    out = blend(image, heat, opacity=0.6, floor=DEFAULT_FLOOR)
    gray = np.repeat(image[..., None], 3, axis=2)
    tinted = np.abs(out.astype(int) - gray).max(axis=2) > 0
    c = cut(heat, DEFAULT_FLOOR)
    np.testing.assert_array_equal(out[heat <= c], gray[heat <= c])
    assert tinted.mean() <= MAX_AREA  # the plateau (90% of the image) stays untouched
    assert tinted[heat > 0.75].all()
    # at the peak the colour is at the full opacity
    peak = np.unravel_index(int(np.argmax(heat)), heat.shape)
    expected = image[peak] * 0.4 + colormap(np.array([1.0]))[0] * 0.6
    np.testing.assert_allclose(out[peak].astype(float), expected, atol=1)
    # the alpha ramps from 0 at the cut to the opacity at the peak; floor 0 is "opacity x heat"
    np.testing.assert_allclose(
        overlay_alpha(np.array([0.2, 0.6, 1.0]), 0.5, 0.2), [0, 0.25, 0.5], atol=1e-6
    )
    np.testing.assert_allclose(overlay_alpha(heat, 0.5, 0.0), 0.5 * heat, atol=1e-6)
    no_floor = np.abs(blend(image, heat, 0.6, floor=0.0).astype(int) - gray).max(axis=2) > 0
    assert no_floor.mean() > 0.85
    with pytest.raises(ValueError, match=r"heatmap floor 1\.5 is outside"):
        blend(image, heat, floor=1.5)


def _changed(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    return np.abs(after.astype(int) - before.astype(int)).max(axis=2) > 0


def test_viewer_overlay_tints_only_a_small_part_of_the_brain(
    qtbot, window, dicom_data: Path
) -> None:
    win, panel = window, window.ai
    open_for_ai(qtbot, win, dicom_data.joinpath(*MR_PARTS))
    panel.select_model("brain-tumour-mri")
    win.state.set_slice(12)
    row = panel.run_current_image()
    qtbot.waitUntil(lambda: row.finished, timeout=TIMEOUT_MS)
    assert row.state == "done", row.message
    heat = win.viewport.heatmaps[12]
    assert panel.floor.value() == DEFAULT_FLOOR == 0.5
    assert win.viewport.heatmap_floor == DEFAULT_FLOOR
    # the real map is near half its peak over most of the brain: the floor alone would not do
    frame = win.state.frames[12].values
    head = frame > 0.1 * frame.max()
    assert (heat[head] > DEFAULT_FLOOR * 255).mean() > 0.25

    panel.heat_toggle.setChecked(False)
    qtbot.waitUntil(lambda: win.viewport.heatmap_painted is None, timeout=5000)
    plain = _rgb(win.viewport)
    panel.heat_toggle.setChecked(True)
    qtbot.waitUntil(lambda: win.viewport.heatmap_painted == 12, timeout=5000)
    shown = _rgb(win.viewport)
    c = win.viewport.heatmap_cut
    assert c == pytest.approx(cut(heat / 255.0, DEFAULT_FLOOR))
    assert panel.colour_bar.start == pytest.approx(c)  # the bar marks where colouring starts
    assert c > DEFAULT_FLOOR
    assert panel.heat_caption.text() == (
        f"{CAPTION}; coloured above {c:.2f} (this map's hottest {MAX_AREA:.0%})"
    )

    # the head's screen pixels (in the image, not black background), and the heat under each
    # screen pixel as the max over its 3x3 image neighbourhood (smooth scaling mixes them)
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
    ys, xs = np.mgrid[0:h:2, 0:w:2]
    in_head, cold, hot = [], [], []
    for y, x in zip(ys.ravel(), xs.ravel(), strict=True):
        col, r = screen_to_image(g, (x + 0.5, y + 0.5))
        ci, ri = int(np.floor(col)), int(np.floor(r))
        if 0 <= ri < heat.shape[0] and 0 <= ci < heat.shape[1]:
            if head[ri, ci]:
                in_head.append((y, x))
            if local_max[ri, ci] <= c * 255:
                cold.append((y, x))
            elif heat[ri, ci] >= 0.9 * 255:
                hot.append((y, x))
    changed = _changed(plain, shown)
    tinted = np.mean([changed[y, x] for y, x in in_head])
    assert len(in_head) > 5000
    assert 0.01 < tinted < 0.20, f"{tinted:.1%} of the head is tinted"
    assert not any(changed[y, x] for y, x in cold)  # not tinted at all below the cut
    assert hot, "the model's region is above it"
    assert np.mean([changed[y, x] for y, x in hot]) > 0.95

    # floor off: the whole map is drawn, most of the head tinted (what the floor is for)
    panel.floor.setValue(0.0)
    assert panel.floor.text() == "off"
    assert win.viewport.heatmap_floor == 0.0
    win.viewport.repaint()
    assert win.viewport.heatmap_cut == 0.0
    assert panel.heat_caption.text().endswith("the whole map is coloured")
    no_floor = _changed(plain, _rgb(win.viewport))
    assert np.mean([no_floor[y, x] for y, x in in_head]) > 0.5


def test_colour_bar_has_values_a_caption_and_leaves_the_cut_uncoloured(qtbot, window) -> None:
    panel = window.ai
    bar = panel.colour_bar
    assert bar.labels() == ["0", "0.25", "0.5", "0.75", "1"]
    assert panel.heat_caption.text() == CAPTION
    assert "not a probability" in CAPTION
    qtbot.wait(1000)  # an earlier test's run may still be delivering its map to the panel
    panel.floor.setValue(0.4)
    assert bar.floor == 0.4
    assert bar.start == 0.4  # no map shown: the floor

    def rgb_of() -> np.ndarray:
        img = bar.bar_image(200, 14)
        # copied while ``img`` lives: constBits() does not keep the image's memory alive
        arr = np.frombuffer(img.constBits(), dtype=np.uint8, count=img.sizeInBytes()).copy()
        return arr.reshape(img.height(), img.bytesPerLine())[:, : 200 * 3].reshape(14, 200, 3)

    rgb = rgb_of()
    # below the bar's cut only the gray checkerboard (the cut read with the image: a map still
    # being shown by an earlier run may raise it above the floor, never lower it)
    assert bar.start >= 0.4
    below = rgb[:, : int(bar.start * 199)]
    assert (below[..., 0] == below[..., 2]).all()
    np.testing.assert_allclose(rgb[7, -1], colormap(np.array([1.0]))[0], atol=2)
    assert "below 0.4 nothing is coloured" in bar.toolTip()
    assert CAPTION in bar.toolTip()
    # a shown map whose hottest tenth starts higher: the bar is uncoloured up to there
    bar.set_cut(0.62)
    rgb = rgb_of()
    below = rgb[:, : int(0.62 * 199)]
    assert (below[..., 0] == below[..., 2]).all()
    assert "below 0.62 nothing is coloured (the floor 0.4, raised" in bar.toolTip()
