"""Frame -> the 8-bit image on screen: VOI (window or VOI LUT), then presentation (invert).

This is exactly what the viewer paints and ``doctorai render`` writes. It runs on every paint,
so it is plain vectorised numpy into preallocated float32 buffers. Formulas: DICOM PS3.3
C.11.2.1.2 (LINEAR with its -0.5 / -1 terms, LINEAR_EXACT, SIGMOID), output range 0..255.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from core.imaging.model import Frame

Window = tuple[float, float]


def _linear_coefficients(center: float, width: float, function: str) -> tuple[float, float]:
    """(scale, offset) with y = clip(x * scale + offset, 0, 1) before the 0..255 stretch."""
    if function == "LINEAR_EXACT":
        # y = (x - c) / w + 0.5
        return 1.0 / width, 0.5 - center / width
    # LINEAR: y = (x - (c - 0.5)) / (w - 1) + 0.5 ; clipping reproduces the two outer branches
    span = width - 1.0
    return 1.0 / span, 0.5 - (center - 0.5) / span


def apply_window(
    values: npt.NDArray[Any], center: float, width: float, function: str = "LINEAR"
) -> npt.NDArray[np.float32]:
    """Values -> float32 in [0, 255] (not yet rounded) for one window."""
    function = (function or "LINEAR").upper()
    x = np.asarray(values, dtype=np.float32)
    if function == "SIGMOID":
        w = max(width, 1e-6)
        out = np.subtract(x, np.float32(center), dtype=np.float32)
        np.multiply(out, np.float32(-4.0 / w), out=out)
        np.exp(out, out=out)
        np.add(out, np.float32(1.0), out=out)
        np.divide(np.float32(255.0), out, out=out)
        return out
    if function == "LINEAR_EXACT" and width <= 0:
        width = 1e-6
    if function != "LINEAR_EXACT" and width <= 1.0:
        # Width 1 (or less) is a threshold at c - 0.5 (the formula's first branch).
        return np.where(x > center - 0.5, np.float32(255.0), np.float32(0.0)).astype(np.float32)
    scale, offset = _linear_coefficients(center, width, function)
    out = np.multiply(x, np.float32(scale * 255.0), dtype=np.float32)
    np.add(out, np.float32(offset * 255.0), out=out)
    np.clip(out, 0.0, 255.0, out=out)
    return out


def apply_voi_lut(frame: Frame) -> npt.NDArray[np.float32]:
    """The file's VOI LUT (PS3.3 C.11.2.1.1): index by value - first, clamp, scale to 0..255."""
    lut = np.asarray(frame.voi_lut, dtype=np.float32)
    idx = np.asarray(frame.values, dtype=np.float64) - frame.voi_lut_first
    np.clip(idx, 0, lut.size - 1, out=idx)
    out = lut[idx.astype(np.intp)]
    out *= np.float32(255.0 / (2**frame.voi_lut_bits - 1))
    return out


def _to_uint8(y: npt.NDArray[np.float32]) -> npt.NDArray[np.uint8]:
    np.add(y, np.float32(0.5), out=y)  # round half up; y is already within 0..255
    return y.astype(np.uint8)


def render(
    frame: Frame, window: Window | None = None, invert: bool | None = None
) -> npt.NDArray[np.uint8]:
    """The displayed 8-bit image: (H, W) gray or (H, W, 3) RGB.

    ``window`` None: the file's VOI LUT if it has one, else ``frame.default_window()``.
    ``invert`` None: ``frame.invert`` (MONOCHROME1); True/False is the effective inversion.
    Colour frames ignore the window.
    """
    do_invert = frame.invert if invert is None else invert
    if frame.is_color:
        rgb = np.asarray(frame.values, dtype=np.uint8)
        return np.ascontiguousarray(255 - rgb if do_invert else rgb)
    if window is None and frame.voi_lut is not None and frame.voi_lut.size:
        y = apply_voi_lut(frame)
    else:
        center, width = window if window is not None else frame.default_window()
        y = apply_window(frame.values, float(center), float(width), frame.voi_function)
    if do_invert:
        np.subtract(np.float32(255.0), y, out=y)
    return _to_uint8(y)
