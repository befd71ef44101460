"""Heatmap colouring for reports and PNG export; the viewer's overlay and the colour bar use the
same rule (``cut`` then ``overlay_alpha``), so what is exported is what was seen.

A Grad-CAM map is normalised to its own peak (1.0), but its low end is rarely zero: the brain
model's map sits near half its peak over most of a real brain, so a floor of 0.2 of the peak
still tinted the whole brain. The floor therefore has two parts, and the higher one wins:

- ``floor``: a share of the map's peak (``[inference] heatmap_floor``, default 0.5);
- the map's own distribution: at most the hottest ``MAX_AREA`` of the image is coloured (the
  floor rises to the map's ``1 - MAX_AREA`` quantile where that is higher).

Below the resulting cut nothing is coloured at all; above it the opacity ramps from 0 at the
cut to the chosen opacity at the peak. A floor of 0 turns both off: the whole map is shown.
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

#: Heat below this share of the map's peak is left uncoloured.
DEFAULT_FLOOR = 0.5
MAX_FLOOR = 0.95
#: At most this share of the image is coloured (with any floor above 0).
MAX_AREA = 0.10


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


def cut(heat: npt.NDArray[Any], floor: float = DEFAULT_FLOOR) -> float:
    """The heat (0..1 of the peak) at and below which ``heat`` is not coloured: the higher of
    ``floor`` and the map's ``1 - MAX_AREA`` quantile, at most ``MAX_FLOOR`` (a map that is
    flat at its peak still shows); 0 when ``floor`` is 0 (no floor)."""
    floor = check_floor(floor)
    h = np.asarray(heat, dtype=np.float32)
    if floor == 0.0 or h.size == 0:
        return floor
    spread = float(np.quantile(np.clip(h, 0.0, 1.0), 1.0 - MAX_AREA, method="higher"))
    return min(max(floor, spread), MAX_FLOOR)


_CUTS: list[tuple[npt.NDArray[Any], float, float]] = []  # (map, floor, cut), newest last
_CUTS_KEPT = 8


def map_cut(heat: npt.NDArray[np.uint8], floor: float) -> float:
    """``cut`` of a stored uint8 map (0..255 of the peak), computed once per map and floor.

    Every viewport showing the map and the panel's colour bar ask for it; the quantile costs
    about 60 ms on a radiograph-sized map, on the GUI thread. The last few maps are kept by
    identity (the entry holds the array, so its id cannot be reused while cached)."""
    for m, f, value in _CUTS:
        if m is heat and f == floor:
            return value
    value = cut(heat.astype(np.float32) / 255.0, floor)
    _CUTS.append((heat, floor, value))
    del _CUTS[:-_CUTS_KEPT]
    return value


def overlay_alpha(
    heat: npt.NDArray[Any], opacity: float = 0.45, floor: float = DEFAULT_FLOOR
) -> npt.NDArray[np.float32]:
    """Per-pixel opacity of the coloured map: 0 at and below ``floor`` (here a fixed heat
    value, such as ``cut``'s answer), rising linearly to ``opacity`` at heat 1."""
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

    Pixels whose heat is at or below the map's ``cut`` keep the image exactly; above it the
    opacity ramps up with the heat (``overlay_alpha``), as in the viewer.
    """
    base = np.asarray(image, dtype=np.float32)
    if base.ndim == 2:
        base = np.repeat(base[..., None], 3, axis=2)
    heat = np.clip(np.asarray(heat, dtype=np.float32), 0.0, 1.0)
    alpha = overlay_alpha(heat, opacity, cut(heat, floor))[..., None]
    out = base * (1 - alpha) + colormap(heat).astype(np.float32) * alpha
    return np.asarray(np.round(out), dtype=np.uint8)
