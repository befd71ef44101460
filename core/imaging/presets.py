"""Window presets per modality, and the automatic window: plain data and numpy, no Qt.

Only CT has a physical value scale (Hounsfield units), so only CT gets fixed (center, width)
presets. Other modalities get presets *relative to the image*: a percentile window (MR, CR/DX,
US and the rest), or a fraction of the image's robust maximum (PET/NM, whose values depend on
dose and time). A CT preset asked for on an MR is refused with a message (``PresetError``):
applying the CT brain window (40/80) to an MR whites the image out.

The automatic window ('auto') is the file's first window (``WindowCenter/Width``, shown with the
file's VOI LUT Function by ``core.imaging.display``), else a robust percentile window of the
frame's modality values: 0.5-99.5 % of a regular-grid subsample, leaving out padding (the
minimum or maximum value when it fills a large part of the image: the air outside a CT's field
of view, the black frame of a radiograph, saturated pixels).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

#: CT windows as (center, width) in HU (the usual radiology defaults).
CT_PRESETS: dict[str, tuple[float, float]] = {
    "lung": (-600.0, 1500.0),
    "mediastinum": (50.0, 350.0),
    "bone": (400.0, 1800.0),
    "brain": (40.0, 80.0),
    "abdomen": (40.0, 400.0),
}

#: Percentiles of the automatic window when the file has none.
AUTO_PERCENTILES = (0.5, 99.5)
#: A minimum (or maximum) value holding at least this fraction of the pixels is padding.
PADDING_FRACTION = 0.02
#: Percentiles are taken on a regular-grid subsample of at most this many pixels (fast enough
#: to run on the GUI thread for a 4k radiograph, and as exact as a full sort for a window).
MAX_SAMPLES = 65_536

Kind = Literal["fixed", "percentile", "max_fraction"]


class PresetError(ValueError):
    """A preset that does not exist, or does not apply to the image's modality."""


@dataclass(frozen=True)
class PresetSpec:
    """One preset as data. ``kind``:

    - "fixed": ``a``, ``b`` are (center, width) in modality units (CT only);
    - "percentile": ``a``, ``b`` are the low and high percentiles of the image's values;
    - "max_fraction": window from 0 to ``b`` times the robust maximum (PET/NM), ``a`` unused.
    """

    name: str
    label: str
    kind: Kind
    a: float
    b: float

    def window(self, values: npt.NDArray[Any] | None) -> tuple[float, float]:
        """(center, width) of this preset on an image (``values`` may be None for 'fixed')."""
        if self.kind == "fixed":
            return self.a, self.b
        if values is None:
            raise PresetError(f"the '{self.name}' window needs a loaded image")
        if self.kind == "percentile":
            return percentile_window(values, self.a, self.b)
        hi = robust_range(values, 0.0, 99.9)[1] * self.b
        return hi / 2.0, max(hi, 1.0)

    def describe(self) -> str:
        """Short text for menus: 'W 1500 L -600', '1-99 %', '0-50 % of max'."""
        if self.kind == "fixed":
            return f"W {self.b:.0f} L {self.a:.0f}"
        if self.kind == "percentile":
            return f"{self.a:g}-{self.b:g} %"
        return f"0-{self.b * 100:g} % of max"


def _ct() -> tuple[PresetSpec, ...]:
    return tuple(
        PresetSpec(name, name.capitalize(), "fixed", c, w) for name, (c, w) in CT_PRESETS.items()
    )


#: Modality group -> its presets, in key order (key 1 is the first).
GROUP_PRESETS: dict[str, tuple[PresetSpec, ...]] = {
    "CT": _ct(),
    "MR": (
        PresetSpec("mr-standard", "Standard", "percentile", 1.0, 99.0),
        PresetSpec("mr-wide", "Wide", "percentile", 0.1, 99.9),
        PresetSpec("mr-contrast", "High contrast", "percentile", 5.0, 95.0),
        PresetSpec("mr-bright", "Bright structures", "percentile", 50.0, 99.8),
    ),
    "XR": (
        PresetSpec("xr-standard", "Standard", "percentile", 1.0, 99.0),
        PresetSpec("xr-soft", "Soft tissue (wide)", "percentile", 0.1, 99.9),
        PresetSpec("xr-contrast", "High contrast", "percentile", 5.0, 95.0),
    ),
    "US": (
        PresetSpec("us-full", "Full range", "percentile", 0.0, 100.0),
        PresetSpec("us-contrast", "High contrast", "percentile", 2.0, 98.0),
    ),
    "PET": (
        PresetSpec("pet-max", "0-100 % of max", "max_fraction", 0.0, 1.0),
        PresetSpec("pet-half", "0-50 % of max", "max_fraction", 0.0, 0.5),
        PresetSpec("pet-quarter", "0-25 % of max", "max_fraction", 0.0, 0.25),
    ),
    "OTHER": (
        PresetSpec("standard", "Standard", "percentile", 1.0, 99.0),
        PresetSpec("wide", "Wide", "percentile", 0.1, 99.9),
    ),
}

_GROUPS = {
    "CT": "CT",
    "MR": "MR",
    "CR": "XR",
    "DX": "XR",
    "MG": "XR",
    "RF": "XR",
    "XA": "XR",
    "PX": "XR",
    "IO": "XR",
    "US": "US",
    "PT": "PET",
    "PET": "PET",
    "NM": "PET",
    "XR": "XR",  # the group names map to themselves
    "OTHER": "OTHER",
}


def modality_group(modality: str) -> str:
    """The preset group of a DICOM Modality value: CT, MR, XR (CR/DX/MG/...), US, PET (PT/NM),
    else OTHER."""
    return _GROUPS.get(modality.strip().upper(), "OTHER")


def presets_for_modality(modality: str) -> tuple[PresetSpec, ...]:
    return GROUP_PRESETS[modality_group(modality)]


def ct_preset(name: str) -> tuple[float, float]:
    """(center, width) of a CT preset; KeyError names the known ones."""
    try:
        return CT_PRESETS[name.lower()]
    except KeyError:
        raise KeyError(f"unknown CT window preset '{name}'; known: {sorted(CT_PRESETS)}") from None


# --- robust statistics ---------------------------------------------------------------------------
def _sample(values: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
    """Finite values of a regular-grid subsample (at most ``MAX_SAMPLES``), as float64."""
    v = np.asarray(values)
    if v.ndim > 2:  # colour or stacked: use everything, flattened
        v = v.reshape(-1)
    if v.ndim == 2 and v.size > MAX_SAMPLES:
        step = int(np.ceil(np.sqrt(v.size / MAX_SAMPLES)))
        v = v[::step, ::step]
    flat = np.asarray(v, dtype=np.float64).ravel()
    if flat.size > MAX_SAMPLES:
        flat = flat[:: int(np.ceil(flat.size / MAX_SAMPLES))]
    return flat[np.isfinite(flat)]


def without_padding(flat: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Drop the minimum (and the maximum) value where it fills >= PADDING_FRACTION of pixels."""
    if flat.size == 0:
        return flat
    lo, hi = float(flat.min()), float(flat.max())
    keep = np.ones(flat.size, dtype=bool)
    for edge in (lo, hi):
        at_edge = flat == edge
        if at_edge.mean() >= PADDING_FRACTION:
            keep &= ~at_edge
    kept = flat[keep]
    return kept if kept.size else flat


def robust_range(
    values: npt.NDArray[Any], low: float = AUTO_PERCENTILES[0], high: float = AUTO_PERCENTILES[1]
) -> tuple[float, float]:
    """(low, high) percentiles of the values, padding left out; (0, 0) for an empty image."""
    flat = without_padding(_sample(values))
    if flat.size == 0:
        return 0.0, 0.0
    lo, hi = np.percentile(flat, [low, high])
    return float(lo), float(hi)


def percentile_window(
    values: npt.NDArray[Any], low: float = AUTO_PERCENTILES[0], high: float = AUTO_PERCENTILES[1]
) -> tuple[float, float]:
    """(center, width) spanning the low..high percentiles (width at least 1)."""
    lo, hi = robust_range(values, low, high)
    return (lo + hi) / 2.0, max(hi - lo, 1.0)


def region_window(
    values: npt.NDArray[Any], rows: tuple[int, int], cols: tuple[int, int]
) -> tuple[float, float]:
    """(center, width) from a rectangle of the image: its robust min/max (1-99 %).

    ``rows``/``cols`` are half-open pixel ranges, clipped to the image; PresetError when the
    rectangle holds no pixel of the image."""
    v = np.asarray(values)
    r0, r1 = sorted(rows)
    c0, c1 = sorted(cols)
    r0, c0 = max(r0, 0), max(c0, 0)
    r1, c1 = min(r1, v.shape[0]), min(c1, v.shape[1])
    if r1 <= r0 or c1 <= c0:
        raise PresetError("the region drawn holds no pixel of the image")
    region = np.asarray(v[r0:r1, c0:c1], dtype=np.float64).ravel()
    region = region[np.isfinite(region)]
    if region.size == 0:
        raise PresetError("the region drawn holds no pixel value")
    lo, hi = np.percentile(region, [1.0, 99.0])
    return float(lo + hi) / 2.0, max(float(hi - lo), 1.0)
