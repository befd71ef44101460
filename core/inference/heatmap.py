"""Heatmap colouring for reports and PNG export (the viewer draws its own overlay with Qt)."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

# Anchor colours of a perceptually ordered dark-to-bright map (black-purple-red-yellow-white),
# interpolated linearly; written here because pulling in matplotlib for one table is not worth it.
_ANCHORS = np.array(
    [[0, 0, 4], [87, 16, 110], [188, 55, 84], [249, 142, 9], [252, 255, 164]], dtype=np.float32
)


def colormap(heat: npt.NDArray[Any]) -> npt.NDArray[np.uint8]:
    """(H, W) values in [0, 1] -> (H, W, 3) uint8 RGB."""
    x = np.clip(np.asarray(heat, dtype=np.float32), 0.0, 1.0) * (len(_ANCHORS) - 1)
    lo = np.minimum(np.floor(x).astype(int), len(_ANCHORS) - 2)
    frac = (x - lo)[..., None]
    rgb = _ANCHORS[lo] * (1 - frac) + _ANCHORS[lo + 1] * frac
    return np.asarray(np.round(rgb), dtype=np.uint8)


def blend(
    image: npt.NDArray[np.uint8], heat: npt.NDArray[Any], opacity: float = 0.45
) -> npt.NDArray[np.uint8]:
    """Blend the coloured heatmap over an 8-bit gray (H, W) or RGB (H, W, 3) image.

    Opacity scales with the heat itself, so cold regions leave the anatomy visible.
    """
    base = np.asarray(image, dtype=np.float32)
    if base.ndim == 2:
        base = np.repeat(base[..., None], 3, axis=2)
    heat = np.clip(np.asarray(heat, dtype=np.float32), 0.0, 1.0)
    alpha = (opacity * heat)[..., None]
    out = base * (1 - alpha) + colormap(heat).astype(np.float32) * alpha
    return np.asarray(np.round(out), dtype=np.uint8)
