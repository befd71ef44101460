"""Measurements on the modality values of a frame (HU on CT), never on the 8-bit display.

Points are image coordinates (see ``core.viewer.transform``): x along columns, y along rows.
``pixel_spacing`` follows DICOM's order (row spacing, column spacing) in mm, so a horizontal
distance is scaled by the column spacing and a vertical one by the row spacing. In a reformat
(``core.viewer.reformat``) pass the ``Plane`` itself: its square pixels give the spacing.

A ``Measurement`` drawn on an acquired slice has ``plane=None`` and belongs to its
``slice_index``; one drawn in a reformatted plane records that plane (``MeasurePlane``: name,
origin, orientation, pixel size), so it is drawn only where that same plane is shown, and its
points can be turned into patient mm (``MeasurePlane.to_patient``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import numpy as np
import numpy.typing as npt

Point = tuple[float, float]


class PlaneLike(Protocol):
    """What a measurement needs of a reformatted plane (``core.viewer.reformat.Plane``)."""

    @property
    def top_left(self) -> npt.NDArray[np.float64]: ...

    @property
    def orientation(self) -> tuple[float, float, float, float, float, float]: ...

    @property
    def pixel_size(self) -> float: ...


class HasPixelSpacing(Protocol):
    """A reformatted plane (or anything else) that knows its (row, column) spacing in mm."""

    @property
    def pixel_spacing(self) -> tuple[float, float]: ...


Spacing = tuple[float, float] | HasPixelSpacing | None


def _spacing(spacing: Spacing) -> tuple[float, float] | None:
    return spacing if spacing is None or isinstance(spacing, tuple) else spacing.pixel_spacing


@dataclass(frozen=True)
class Length:
    value: float
    unit: Literal["mm", "px"]

    def label(self) -> str:
        return f"{self.value:.1f} {self.unit}"


@dataclass(frozen=True)
class RoiStats:
    mean: float
    sd: float  # population standard deviation of the pixels inside
    minimum: float
    maximum: float
    pixels: int
    area: float  # pixel count times the area of one pixel
    area_unit: Literal["mm²", "px²"]
    units: str  # modality units ("HU" on CT), "" when unknown

    def label(self) -> str:
        u = f" {self.units}" if self.units else ""
        return (
            f"mean {self.mean:.1f}{u}  SD {self.sd:.1f}\n"
            f"min {self.minimum:.0f}  max {self.maximum:.0f}  area {self.area:.1f} {self.area_unit}"
        )


def length(p0: Point, p1: Point, pixel_spacing: Spacing) -> Length:
    """Distance between two image points, in mm when the spacing is known, else in pixels."""
    pixel_spacing = _spacing(pixel_spacing)
    dx = p1[0] - p0[0]
    dy = p1[1] - p0[1]
    if pixel_spacing is None:
        return Length(math.hypot(dx, dy), "px")
    row_spacing, col_spacing = pixel_spacing
    return Length(math.hypot(dx * col_spacing, dy * row_spacing), "mm")


def roi_pixels(shape: tuple[int, int], p0: Point, p1: Point) -> tuple[slice, slice]:
    """Row and column slices of the pixels whose centres lie inside the rectangle p0-p1."""
    rows, cols = shape
    x0, x1 = sorted((p0[0], p1[0]))
    y0, y1 = sorted((p0[1], p1[1]))
    c0 = max(math.ceil(x0 - 0.5), 0)
    c1 = min(math.floor(x1 - 0.5), cols - 1)
    r0 = max(math.ceil(y0 - 0.5), 0)
    r1 = min(math.floor(y1 - 0.5), rows - 1)
    return slice(r0, max(r1 + 1, r0)), slice(c0, max(c1 + 1, c0))


def roi_stats(
    values: npt.NDArray[Any],
    p0: Point,
    p1: Point,
    pixel_spacing: Spacing,
    units: str = "",
) -> RoiStats | None:
    """Statistics of a rectangle ROI; None when it holds no pixel centre.

    Colour frames are measured on the mean of their channels (there is no modality unit).
    """
    pixel_spacing = _spacing(pixel_spacing)
    rs, cs = roi_pixels((int(values.shape[0]), int(values.shape[1])), p0, p1)
    region = np.asarray(values[rs, cs], dtype=np.float64)
    if region.ndim == 3:
        region = region.mean(axis=2)
        units = ""
    if region.size == 0:
        return None
    n = int(region.size)
    if pixel_spacing is None:
        area, area_unit = float(n), "px²"
    else:
        area, area_unit = n * pixel_spacing[0] * pixel_spacing[1], "mm²"
    return RoiStats(
        mean=float(region.mean()),
        sd=float(region.std()),
        minimum=float(region.min()),
        maximum=float(region.max()),
        pixels=n,
        area=float(area),
        area_unit=area_unit,  # type: ignore[arg-type]
        units=units,
    )


@dataclass(frozen=True)
class MeasurePlane:
    """The reformatted plane a measurement was drawn in (patient mm, LPS).

    ``origin`` is the patient position of pixel (0, 0)'s centre and ``orientation`` the image's
    +x and +y directions, as ImagePositionPatient / ImageOrientationPatient; with
    ``pixel_size`` they turn the measurement's image points into patient mm.
    """

    name: str  # 'coronal', 'sagittal', 'axial' or 'oblique': for the report, not for matching
    origin: tuple[float, float, float]
    orientation: tuple[float, float, float, float, float, float]
    pixel_size: float

    @classmethod
    def of(cls, plane: PlaneLike, name: str) -> MeasurePlane:
        o = np.asarray(plane.top_left, dtype=np.float64)
        return cls(
            name,
            (float(o[0]), float(o[1]), float(o[2])),
            tuple(float(x) for x in plane.orientation),  # type: ignore[arg-type]
            float(plane.pixel_size),
        )

    def _axes(self) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        o = np.asarray(self.orientation, dtype=np.float64)
        return o[:3], o[3:]

    def to_patient(self, point: Point) -> npt.NDArray[np.float64]:
        """An image point (x along columns, pixel centres at +0.5) -> patient mm."""
        u, v = self._axes()
        x, y = point
        origin = np.asarray(self.origin, dtype=np.float64)
        return np.asarray(
            origin + (x - 0.5) * self.pixel_size * u + (y - 0.5) * self.pixel_size * v,
            dtype=np.float64,
        )

    def shows(self, plane: PlaneLike, tolerance_mm: float = 0.01) -> bool:
        """Whether ``plane`` is this plane: the same image axes and no distance between them
        (its grid may be another one, e.g. an oblique plane anchored elsewhere)."""
        u, v = self._axes()
        o = np.asarray(plane.orientation, dtype=np.float64)
        if float(u @ o[:3]) < 1 - 1e-6 or float(v @ o[3:]) < 1 - 1e-6:
            return False
        gap = np.asarray(plane.top_left, dtype=np.float64) - np.asarray(self.origin)
        return abs(float(gap @ np.cross(u, v))) <= tolerance_mm


@dataclass
class Measurement:
    """One drawn measurement: on an acquired slice (``plane`` None: ``slice_index`` is the
    slice), or in a reformatted plane (``plane``; ``slice_index`` is then the reformat's index,
    for information only)."""

    kind: Literal["length", "roi"]
    slice_index: int
    p0: Point
    p1: Point
    plane: MeasurePlane | None = None
