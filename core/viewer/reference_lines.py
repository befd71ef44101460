"""Image planes in patient space, where one plane cuts another, and the slice nearest a point.

Reference lines show, in one viewport, where another viewport's current plane cuts it: the
intersection line of the two planes, clipped to this image's rectangle, in this image's
coordinates (``core.viewer.transform``'s convention: (0, 0) is the top-left corner of the first
pixel, x along columns, y along rows, so the painter draws it with the same matrix as the image).
Both planes must share a Frame of Reference (positions in the same patient space); parallel
planes do not cut each other and give no line.

The crosshair is the reverse question: which slice of a stack is nearest a 3D point (the
distance along that stack's normal), so every linked viewport can jump to the clicked point.

``ImagePlane`` is deliberately small (origin, two in-plane unit axes, spacing, size): an acquired
slice (``from_instance``), a plane of ``core.viewer.reformat`` (``from_reformat``) and any plane
given by its centre and in-plane axes (``from_centre``) are the same thing here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Protocol

import numpy as np
import numpy.typing as npt

from core.imaging.model import Instance, SliceRef

Vec = npt.NDArray[np.float64]
Point2 = tuple[float, float]
Segment = tuple[Point2, Point2]

_PARALLEL = 1e-6  # |n1 x n2| below this: the planes are parallel (no line)


@dataclass(frozen=True)
class ImagePlane:
    """A rectangle of pixels in patient space (mm), DICOM style.

    ``origin`` is the centre of the first pixel (ImagePositionPatient); ``row_dir`` the unit
    direction of increasing column (image +x), ``col_dir`` of increasing row (image +y);
    ``spacing`` is (row spacing, column spacing) like PixelSpacing; ``size`` is (rows, cols).
    """

    origin: tuple[float, float, float]
    row_dir: tuple[float, float, float]
    col_dir: tuple[float, float, float]
    spacing: tuple[float, float]
    size: tuple[int, int]
    frame_of_reference: str = ""

    @cached_property
    def normal(self) -> Vec:
        r, c = self.row_dir, self.col_dir
        n = np.array(
            [r[1] * c[2] - r[2] * c[1], r[2] * c[0] - r[0] * c[2], r[0] * c[1] - r[1] * c[0]]
        )
        return n / float(np.linalg.norm(n))

    def to_patient(self, x: float, y: float) -> Vec:
        """Image coordinates (pixel corners at integers) -> patient mm."""
        dy, dx = self.spacing
        return (
            np.asarray(self.origin, dtype=np.float64)
            + (x - 0.5) * dx * np.asarray(self.row_dir)
            + (y - 0.5) * dy * np.asarray(self.col_dir)
        )

    def to_image(self, point: Sequence[float] | Vec) -> Point2:
        """Patient mm -> image coordinates of its projection onto this plane."""
        d = np.asarray(point, dtype=np.float64) - np.asarray(self.origin)
        dy, dx = self.spacing
        return (
            float(d @ np.asarray(self.row_dir)) / dx + 0.5,
            float(d @ np.asarray(self.col_dir)) / dy + 0.5,
        )

    @property
    def centre(self) -> Vec:
        rows, cols = self.size
        return self.to_patient(cols / 2, rows / 2)

    def distance(self, point: Sequence[float] | Vec) -> float:
        """Signed distance of a point from this plane along its normal, in mm."""
        return float((np.asarray(point, dtype=np.float64) - np.asarray(self.origin)) @ self.normal)

    @classmethod
    def from_instance(cls, instance: Instance, frame: int = 0) -> ImagePlane | None:
        """The plane of one slice, or None when its header lacks position/orientation/size."""
        position = instance.image_position
        if instance.frame_positions is not None and 0 <= frame < len(instance.frame_positions):
            position = instance.frame_positions[frame]
        o = instance.image_orientation
        if position is None or o is None or instance.rows is None or instance.columns is None:
            return None
        row, col = np.asarray(o[:3], dtype=np.float64), np.asarray(o[3:], dtype=np.float64)
        if np.linalg.norm(np.cross(row, col)) < 1e-3:
            return None  # degenerate orientation: no plane to speak of
        row, col = row / np.linalg.norm(row), col / np.linalg.norm(col)
        return cls(
            origin=(float(position[0]), float(position[1]), float(position[2])),
            row_dir=(float(row[0]), float(row[1]), float(row[2])),
            col_dir=(float(col[0]), float(col[1]), float(col[2])),
            spacing=instance.pixel_spacing or (1.0, 1.0),
            size=(instance.rows, instance.columns),
            frame_of_reference=instance.frame_of_reference_uid,
        )

    @classmethod
    def from_centre(
        cls,
        centre: Sequence[float] | Vec,
        row_dir: Sequence[float] | Vec,
        col_dir: Sequence[float] | Vec,
        spacing: tuple[float, float],
        size: tuple[int, int],
        frame_of_reference: str = "",
    ) -> ImagePlane:
        """A reformatted plane given by its centre and in-plane axes (patient mm)."""
        r = np.asarray(row_dir, dtype=np.float64)
        c = np.asarray(col_dir, dtype=np.float64)
        r, c = r / np.linalg.norm(r), c / np.linalg.norm(c)
        rows, cols = size
        dy, dx = spacing
        origin = np.asarray(centre, dtype=np.float64) - (cols / 2 - 0.5) * dx * r
        origin = origin - (rows / 2 - 0.5) * dy * c
        return cls(
            origin=(float(origin[0]), float(origin[1]), float(origin[2])),
            row_dir=(float(r[0]), float(r[1]), float(r[2])),
            col_dir=(float(c[0]), float(c[1]), float(c[2])),
            spacing=spacing,
            size=size,
            frame_of_reference=frame_of_reference,
        )

    @classmethod
    def from_reformat(cls, plane: ReformatPlane, frame_of_reference: str = "") -> ImagePlane:
        """A plane of ``core.viewer.reformat`` (pixel (0, 0)'s centre at ``top_left``)."""
        o, u, v = plane.top_left, plane.u, plane.v
        return cls(
            origin=(float(o[0]), float(o[1]), float(o[2])),
            row_dir=(float(u[0]), float(u[1]), float(u[2])),
            col_dir=(float(v[0]), float(v[1]), float(v[2])),
            spacing=(plane.pixel_size, plane.pixel_size),
            size=(plane.rows, plane.cols),
            frame_of_reference=frame_of_reference,
        )


class ReformatPlane(Protocol):
    """What ``from_reformat`` reads of ``core.viewer.reformat.Plane`` (no import needed)."""

    @property
    def top_left(self) -> Vec: ...
    @property
    def u(self) -> Vec: ...
    @property
    def v(self) -> Vec: ...
    @property
    def rows(self) -> int: ...
    @property
    def cols(self) -> int: ...
    @property
    def pixel_size(self) -> float: ...


def stack_planes(slices: Sequence[SliceRef]) -> list[ImagePlane | None]:
    """The plane of each slice of a series in display order (None where the header lacks it)."""
    return [ImagePlane.from_instance(ref.instance, ref.frame) for ref in slices]


def same_frame(a: ImagePlane, b: ImagePlane) -> bool:
    """Whether two planes' positions are comparable: one non-empty Frame of Reference UID."""
    return bool(a.frame_of_reference) and a.frame_of_reference == b.frame_of_reference


def _clip(p: Vec, d: Vec, width: float, height: float) -> Segment | None:
    """The part of the line p + t d inside [0, width] x [0, height] (Liang-Barsky)."""
    t0, t1 = -np.inf, np.inf
    for pi, di, lo, hi in ((p[0], d[0], 0.0, width), (p[1], d[1], 0.0, height)):
        if abs(di) < 1e-12:
            if pi < lo or pi > hi:
                return None
            continue
        a, b = (lo - pi) / di, (hi - pi) / di
        t0, t1 = max(t0, min(a, b)), min(t1, max(a, b))
    if t0 > t1:
        return None
    a_pt, b_pt = p + t0 * d, p + t1 * d
    return (float(a_pt[0]), float(a_pt[1])), (float(b_pt[0]), float(b_pt[1]))


def reference_line(target: ImagePlane, other: ImagePlane) -> Segment | None:
    """Where ``other`` cuts ``target``, as a segment in ``target``'s image coordinates.

    None when the planes are parallel, in different Frames of Reference, or meet outside
    ``target``'s rectangle. (A line drawn between unrelated patient spaces would be a lie.)
    """
    if not same_frame(target, other):
        return None
    n1, n2 = target.normal, other.normal
    direction = np.cross(n1, n2)
    if np.linalg.norm(direction) < _PARALLEL:
        return None
    # In target's plane, points q = origin + a r + b c with n2 . (q - other.origin) = 0.
    r, c = np.asarray(target.row_dir), np.asarray(target.col_dir)
    o1 = np.asarray(target.origin, dtype=np.float64)
    k = float(n2 @ (np.asarray(other.origin) - o1))
    ar, ac = float(n2 @ r), float(n2 @ c)
    dy, dx = target.spacing
    # a point on the line in image coordinates: solve ar * u + ac * v = k (u, v in mm)
    if abs(ar) >= abs(ac):
        u, v = k / ar, 0.0
    else:
        u, v = 0.0, k / ac
    p = np.array([u / dx + 0.5, v / dy + 0.5])
    d = np.array([-ac / dx, ar / dy])  # along the line (perpendicular to (ar, ac) in mm)
    rows, cols = target.size
    return _clip(p, d, float(cols), float(rows))


class PlaneStack:
    """A stack's planes with their origins and normals as arrays: the nearest slice to a point
    is one vectorised step (scrolling linked viewports asks it on every wheel notch)."""

    def __init__(self, planes: Sequence[ImagePlane | None]) -> None:
        self.planes = list(planes)
        self.known = np.array([i for i, p in enumerate(self.planes) if p is not None], dtype=int)
        known = [p for p in self.planes if p is not None]
        self.origins = np.array([p.origin for p in known], dtype=np.float64).reshape(-1, 3)
        self.normals = np.array([p.normal for p in known], dtype=np.float64).reshape(-1, 3)
        self._spacing: float | None = None

    def __len__(self) -> int:
        return len(self.planes)

    def __getitem__(self, i: int) -> ImagePlane | None:
        return self.planes[i]

    def first(self) -> ImagePlane | None:
        return next((p for p in self.planes if p is not None), None)

    def spacing(self) -> float:
        """The median distance between neighbouring planes along the normal (mm); a single
        slice counts as its larger pixel spacing thick (no better guess without neighbours)."""
        if self._spacing is None:
            if len(self.origins) > 1:
                gap = float(np.median(np.abs(np.diff(self.origins @ self.normals[0]))))
                self._spacing = gap if gap > 0 else 1.0
            else:
                first = self.first()
                self._spacing = max(first.spacing) if first is not None else 1.0
        return self._spacing

    def nearest(self, point: Sequence[float] | Vec) -> int | None:
        """The index of the slice whose plane is nearest ``point`` (None without geometry)."""
        if not len(self.known):
            return None
        p = np.asarray(point, dtype=np.float64)
        d = np.abs(np.einsum("ij,ij->i", self.origins - p, self.normals))
        return int(self.known[int(np.argmin(d))])


def nearest_slice(planes: Sequence[ImagePlane | None], point: Sequence[float] | Vec) -> int | None:
    """The index of the slice whose plane is nearest ``point`` (None without geometry)."""
    stack = planes if isinstance(planes, PlaneStack) else PlaneStack(planes)
    return stack.nearest(point)


def first_last_lines(target: ImagePlane, planes: Sequence[ImagePlane | None]) -> list[Segment]:
    """The reference lines of a stack's first and last slices on ``target`` (on demand)."""
    known = [p for p in planes if p is not None]
    if not known:
        return []
    ends = [known[0]] if len(known) == 1 else [known[0], known[-1]]
    return [s for s in (reference_line(target, p) for p in ends) if s is not None]
