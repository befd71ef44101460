"""Heatmap colouring for reports and PNG export; the viewer's overlay uses the same alpha rule
(``overlay_alpha``), so what is exported is what was seen.

Below a floor (``DEFAULT_FLOOR`` of the map's 0..1 range: the adapters normalise each map to
its own peak) nothing is coloured at all; above it the opacity ramps from 0 at the floor to the
chosen opacity at the peak. Without a floor the low end of the colour map tints the whole
organ (a brain went purple), hiding the region the model actually looked at.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

# Anchor colours of a perceptually ordered dark-to-bright map (black-purple-red-yellow-white),
# interpolated linearly; written here because pulling in matplotlib for one table is not worth it.
_ANCHORS = np.array(
    [[0, 0, 4], [87, 16, 110], [188, 55, 84], [249, 142, 9], [252, 255, 164]], dtype=np.float32
)

#: Heat below this share of the map's range is left uncoloured.
DEFAULT_FLOOR = 0.2
MAX_FLOOR = 0.95


def colormap(heat: npt.NDArray[Any]) -> npt.NDArray[np.uint8]:
    """(H, W) values in [0, 1] -> (H, W, 3) uint8 RGB."""
    x = np.clip(np.asarray(heat, dtype=np.float32), 0.0, 1.0) * (len(_ANCHORS) - 1)
    lo = np.minimum(np.floor(x).astype(int), len(_ANCHORS) - 2)
    frac = (x - lo)[..., None]
    rgb = _ANCHORS[lo] * (1 - frac) + _ANCHORS[lo + 1] * frac
    return np.asarray(np.round(rgb), dtype=np.uint8)


def check_floor(floor: float) -> float:
    """The floor as a number in [0, MAX_FLOOR]; ValueError naming it otherwise."""
    value = float(floor)
    if not 0.0 <= value <= MAX_FLOOR:
        raise ValueError(f"heatmap floor {floor!r} is outside 0..{MAX_FLOOR}")
    return value


def overlay_alpha(
    heat: npt.NDArray[Any], opacity: float = 0.45, floor: float = DEFAULT_FLOOR
) -> npt.NDArray[np.float32]:
    """Per-pixel opacity of the coloured map: 0 at and below ``floor``, rising linearly to
    ``opacity`` at heat 1 (``heat`` in [0, 1])."""
    floor = check_floor(floor)
    h = np.clip(np.asarray(heat, dtype=np.float32), 0.0, 1.0)
    ramp = np.clip((h - floor) / (1.0 - floor), 0.0, 1.0)
    return np.asarray(ramp * float(opacity), dtype=np.float32)


def blend(
    image: npt.NDArray[np.uint8],
    heat: npt.NDArray[Any],
    opacity: float = 0.45,
    floor: float = DEFAULT_FLOOR,
) -> npt.NDArray[np.uint8]:
    """Blend the coloured heatmap over an 8-bit gray (H, W) or RGB (H, W, 3) image.

    Pixels whose heat is at or below ``floor`` keep the image exactly; above it the opacity
    ramps up with the heat (``overlay_alpha``).
    """
    base = np.asarray(image, dtype=np.float32)
    if base.ndim == 2:
        base = np.repeat(base[..., None], 3, axis=2)
    heat = np.clip(np.asarray(heat, dtype=np.float32), 0.0, 1.0)
    alpha = overlay_alpha(heat, opacity, floor)[..., None]
    out = base * (1 - alpha) + colormap(heat).astype(np.float32) * alpha
    return np.asarray(np.round(out), dtype=np.uint8)
