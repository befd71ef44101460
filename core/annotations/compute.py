"""What each tool measures, in mm from the image's pixel spacing.

An image without pixel spacing is never given a number in mm: its lengths and areas are in
pixels and say so ("px", "px²"), and ``require_mm`` refuses with a message for callers that
need mm (a report's measurement). ROI statistics are taken on the modality values the caller
passes (HU on CT, never the 8-bit display) over the pixels whose centres lie inside the
outline; the area is the outline's own (ellipse, polygon, rectangle), so it does not depend on
how pixel centres happen to fall.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from core.annotations.model import ROI_KINDS, Annotation, AnnotationError, Kind, Point

LengthUnit = Literal["mm", "px"]
AreaUnit = Literal["mm²", "px²"]


class NoPixelSpacing(AnnotationError):
    """A value in mm was asked of an image that has no pixel spacing."""


@dataclass(frozen=True)
class Quantity:
    value: float
    unit: str

    def label(self, digits: int = 1) -> str:
        sep = "" if self.unit == "°" else " "
        return f"{self.value:.{digits}f}{sep}{self.unit}".rstrip()


@dataclass(frozen=True)
class RoiStats:
    mean: float
    sd: float  # population SD of the pixels inside
    minimum: float
    maximum: float
    pixels: int
    area: Quantity
    units: str  # modality units ("HU"), "" when unknown

    def lines(self) -> list[str]:
        u = f" {self.units}" if self.units else ""
        return [
            f"mean {self.mean:.1f}{u}  SD {self.sd:.1f}",
            f"min {self.minimum:.0f}  max {self.maximum:.0f}",
            f"area {self.area.label()}",
        ]


def _scale(a: Annotation) -> tuple[float, float, LengthUnit]:
    spacing = a.image.pixel_spacing
    if spacing is None:
        return 1.0, 1.0, "px"
    return spacing[0], spacing[1], "mm"


def require_mm(a: Annotation) -> tuple[float, float]:
    """The (row, col) spacing in mm, or NoPixelSpacing naming the annotation and the image."""
    spacing = a.image.pixel_spacing
    if spacing is None:
        raise NoPixelSpacing(
            f"{a.what}: the image '{a.sop_instance_uid}' has no pixel spacing, so it cannot be "
            "measured in mm (its values are in pixels)"
        )
    return spacing


def _mm(a: Annotation, p: Point) -> tuple[float, float]:
    sr, sc, _ = _scale(a)
    return (p[0] * sr, p[1] * sc)


def length(a: Annotation) -> Quantity:
    """A length's (or an arrow's) distance: mm, or px without spacing."""
    if a.kind not in (Kind.LENGTH, Kind.ARROW):
        raise AnnotationError(f"{a.what} has no length")
    (r0, c0), (r1, c1) = (_mm(a, p) for p in a.points)
    return Quantity(math.hypot(r1 - r0, c1 - c0), _scale(a)[2])


def _direction(a: Annotation, p: Point, q: Point) -> tuple[float, float]:
    (r0, c0), (r1, c1) = _mm(a, p), _mm(a, q)
    return (r1 - r0, c1 - c0)


def _angle_between(u: tuple[float, float], v: tuple[float, float]) -> float:
    nu, nv = math.hypot(*u), math.hypot(*v)
    if nu == 0 or nv == 0:
        return math.nan
    cos = max(-1.0, min(1.0, (u[0] * v[0] + u[1] * v[1]) / (nu * nv)))
    return math.degrees(math.acos(cos))


def angle(a: Annotation) -> Quantity:
    """An angle (arm, vertex, arm) or a Cobb angle (two lines, each drawn in the same sense,
    e.g. left to right, so a Cobb angle over 90° is told from its supplement), in degrees.
    Taken in mm, so non-square pixels do not bend it; without spacing pixels are taken as
    square and the unit says so."""
    if a.kind is Kind.ANGLE:
        p0, vertex, p2 = a.points
        deg = _angle_between(_direction(a, vertex, p0), _direction(a, vertex, p2))
    elif a.kind is Kind.COBB:
        p0, p1, p2, p3 = a.points
        deg = _angle_between(_direction(a, p0, p1), _direction(a, p2, p3))
    else:
        raise AnnotationError(f"{a.what} has no angle")
    if math.isnan(deg):
        raise AnnotationError(f"{a.what}: an arm has no length, so there is no angle")
    return Quantity(deg, "°" if a.image.pixel_spacing else "° (square px assumed)")


def area(a: Annotation) -> Quantity:
    """An ROI's own area: mm², or px² without spacing."""
    sr, sc, unit = _scale(a)
    if a.kind is Kind.RECTANGLE or a.kind is Kind.ELLIPSE:
        (r0, c0), (r1, c1) = a.points
        box = abs(r1 - r0) * abs(c1 - c0) * sr * sc
        value = box if a.kind is Kind.RECTANGLE else math.pi / 4 * box
    elif a.kind is Kind.FREEHAND:
        rows = np.array([p[0] for p in a.points]) * sr
        cols = np.array([p[1] for p in a.points]) * sc
        value = 0.5 * abs(float(np.dot(rows, np.roll(cols, -1)) - np.dot(cols, np.roll(rows, -1))))
    else:
        raise AnnotationError(f"{a.what} has no area")
    return Quantity(value, "mm²" if unit == "mm" else "px²")


def roi_mask(a: Annotation, shape: tuple[int, int]) -> tuple[slice, slice, npt.NDArray[np.bool_]]:
    """The ROI's pixels inside an image of ``shape``: the rows and columns of its bounding box
    and, over that box, which pixel centres lie inside the outline."""
    if a.kind not in ROI_KINDS:
        raise AnnotationError(f"{a.what} is no region of interest")
    top, left, bottom, right = a.bounds()
    r0, c0 = max(math.floor(top), 0), max(math.floor(left), 0)
    r1, c1 = min(math.ceil(bottom), shape[0]), min(math.ceil(right), shape[1])
    rs, cs = slice(r0, max(r1, r0)), slice(c0, max(c1, c0))
    rr, cc = np.meshgrid(
        np.arange(rs.start, rs.stop) + 0.5, np.arange(cs.start, cs.stop) + 0.5, indexing="ij"
    )
    if a.kind is Kind.RECTANGLE:
        inside = (rr >= top) & (rr <= bottom) & (cc >= left) & (cc <= right)
    elif a.kind is Kind.ELLIPSE:
        cr, cc0 = (top + bottom) / 2, (left + right) / 2
        hr, hc = (bottom - top) / 2, (right - left) / 2
        if hr <= 0 or hc <= 0:
            inside = np.zeros(rr.shape, dtype=bool)
        else:
            inside = ((rr - cr) / hr) ** 2 + ((cc - cc0) / hc) ** 2 <= 1.0
    else:
        inside = _in_polygon(rr, cc, a.points)
    return rs, cs, inside


def _in_polygon(
    rr: npt.NDArray[np.float64], cc: npt.NDArray[np.float64], points: tuple[Point, ...]
) -> npt.NDArray[np.bool_]:
    """Even-odd rule over the closed outline (written here: a few lines of numpy, instead of
    a geometry library for one test)."""
    inside = np.zeros(rr.shape, dtype=bool)
    n = len(points)
    for i in range(n):
        (ra, ca), (rb, cb) = points[i], points[(i + 1) % n]
        if ra == rb:
            continue  # a horizontal edge is never crossed by a horizontal ray
        crosses = (ra > rr) != (rb > rr)
        col_at = ca + (rr - ra) * (cb - ca) / (rb - ra)
        inside ^= crosses & (cc < col_at)
    return inside


def roi_stats(a: Annotation, values: npt.NDArray[Any], units: str = "") -> RoiStats | None:
    """Mean, SD, min, max of the modality ``values`` (rows, cols[, channels]) inside the ROI,
    with its area; None when no pixel centre lies inside. Colour frames are measured on the
    mean of their channels (there is no modality unit then)."""
    shape = (int(values.shape[0]), int(values.shape[1]))
    rs, cs, inside = roi_mask(a, shape)
    region = np.asarray(values[rs, cs], dtype=np.float64)
    if region.ndim == 3:
        region = region.mean(axis=2)
        units = ""
    picked = region[inside]
    if picked.size == 0:
        return None
    return RoiStats(
        mean=float(picked.mean()),
        sd=float(picked.std()),
        minimum=float(picked.min()),
        maximum=float(picked.max()),
        pixels=int(picked.size),
        area=area(a),
        units=units,
    )


def probe(a: Annotation, values: npt.NDArray[Any], units: str = "") -> Quantity:
    """The modality value of the pixel under a probe's point (refused outside the image)."""
    if a.kind is not Kind.PROBE:
        raise AnnotationError(f"{a.what} is no point probe")
    ((row, col),) = a.points
    r, c = math.floor(row), math.floor(col)
    if not (0 <= r < values.shape[0] and 0 <= c < values.shape[1]):
        raise AnnotationError(
            f"{a.what}: point ({row:.1f}, {col:.1f}) lies outside the "
            f"{values.shape[0]}x{values.shape[1]} image"
        )
    value = np.asarray(values[r, c], dtype=np.float64)
    if value.ndim:
        return Quantity(float(value.mean()), "")
    return Quantity(float(value), units)


def label_lines(
    a: Annotation, values: npt.NDArray[Any] | None = None, units: str = ""
) -> list[str]:
    """The label's text: the user's note first, then what the tool measures (ROI statistics
    and probe values need the frame's modality ``values``; without them, the area only)."""
    lines = [a.text] if a.text else []
    if a.kind is Kind.LENGTH:
        lines.append(length(a).label())
    elif a.kind in (Kind.ANGLE, Kind.COBB):
        prefix = "Cobb " if a.kind is Kind.COBB else ""
        lines.append(prefix + angle(a).label())
    elif a.kind in ROI_KINDS:
        stats = roi_stats(a, values, units) if values is not None else None
        lines.extend(stats.lines() if stats is not None else [f"area {area(a).label()}"])
    elif a.kind is Kind.PROBE and values is not None:
        lines.append(probe(a, values, units).label())
    return lines
