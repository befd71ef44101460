"""A series' voxel grid in patient space (the affine), validated before anything is reformatted.

A reformat (coronal, sagittal, oblique, thick slab) samples the volume in millimetres, so it is
only as right as the affine that maps a voxel index to a patient position. That affine is built
from every slice's ImagePositionPatient, ImageOrientationPatient and PixelSpacing, and checked:

- one orientation and one pixel spacing for every slice, one image size;
- slices on one straight line at one constant step (residual under ``POSITION_TOLERANCE_MM``
  plus 1 % of the step). A gap that is a whole multiple of the usual step is reported as missing
  slices; any other varying gap as irregular spacing; two slices at one position as such. These
  are REFUSED (``GeometryError`` names the series and the cause): interpolating across a hole
  would draw tissue that was never imaged, and the fix is to load the complete series.
- gantry / detector tilt (the step between slices is not along the slice normal, as in a CT
  acquired with a tilted gantry) is HANDLED, not refused: the affine's third column is the real
  step vector (a shear), so sampling through its inverse puts every voxel where it was in the
  patient and a reformat of a tilted acquisition is drawn undistorted. ``tilt_degrees`` says how
  much shear there was (the viewer can show it).

Index order is numpy's: (k, r, c) = (slice, row, column); patient axes are DICOM's LPS
(+x the patient's left, +y posterior, +z head). Nothing here reads pixels or imports Qt.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from core.imaging.model import SliceRef

POSITION_TOLERANCE_MM = 0.05  # DICOM positions are often written with two decimals
_ORIENTATION_TOLERANCE = 1e-3
_SPACING_TOLERANCE = 1e-3  # relative

Vec = npt.NDArray[np.float64]


class GeometryError(ValueError):
    """A series that cannot be reformatted without distortion: names the series and the cause."""

    def __init__(self, series: str, cause: str) -> None:
        self.series = series
        self.cause = cause
        super().__init__(f"series '{series}' cannot be reformatted: {cause}")


@dataclass(frozen=True, eq=False)
class VolumeGeometry:
    """Voxel (k, r, c) -> patient mm: ``origin + c*dc*row_dir + r*dr*col_dir + k*step``.

    ``row_dir`` is the direction of increasing column (DICOM's first orientation triplet),
    ``col_dir`` that of increasing row; ``step`` is the patient-space vector from one slice to
    the next (along ``normal`` unless the gantry was tilted).
    """

    shape: tuple[int, int, int]  # (slices, rows, cols)
    origin: Vec  # centre of voxel (0, 0, 0)
    row_dir: Vec
    col_dir: Vec
    step: Vec
    pixel_spacing: tuple[float, float]  # (row spacing, column spacing), DICOM order

    @property
    def normal(self) -> Vec:
        n = np.cross(self.row_dir, self.col_dir)
        return n / float(np.linalg.norm(n))

    @property
    def slice_spacing(self) -> float:
        """Distance between slices measured along the normal (mm)."""
        return abs(float(np.dot(self.step, self.normal)))

    @property
    def spacing(self) -> tuple[float, float, float]:
        """(slice, row, column) spacing in mm; the slice one along the normal."""
        return (self.slice_spacing, self.pixel_spacing[0], self.pixel_spacing[1])

    @property
    def tilt_degrees(self) -> float:
        """Angle between the slice step and the normal: 0 unless the gantry was tilted."""
        norm = float(np.linalg.norm(self.step))
        if norm == 0:
            return 0.0
        cos = min(1.0, abs(float(np.dot(self.step, self.normal))) / norm)
        return math.degrees(math.acos(cos))

    @property
    def matrix(self) -> Vec:
        """3x3 matrix whose columns are the patient-space vectors of one step in k, r and c."""
        dr, dc = self.pixel_spacing
        return np.column_stack((self.step, self.col_dir * dr, self.row_dir * dc))

    @property
    def affine(self) -> Vec:
        """4x4 homogeneous (k, r, c, 1) -> (x, y, z, 1)."""
        a = np.eye(4)
        a[:3, :3] = self.matrix
        a[:3, 3] = self.origin
        return a

    def to_patient(self, index: npt.ArrayLike) -> Vec:
        """Voxel index (k, r, c), or an (..., 3) array of them, -> patient mm."""
        idx = np.asarray(index, dtype=np.float64)
        return np.asarray(idx @ self.matrix.T + self.origin, dtype=np.float64)

    def to_index(self, point: npt.ArrayLike) -> Vec:
        """Patient mm (x, y, z), or an (..., 3) array, -> fractional voxel index (k, r, c)."""
        p = np.asarray(point, dtype=np.float64) - self.origin
        return np.asarray(p @ np.linalg.inv(self.matrix).T, dtype=np.float64)

    def corners(self) -> Vec:
        """The 8 outer corners of the voxel grid (voxel edges, not centres), in patient mm."""
        n, rows, cols = self.shape
        ks, rs, cs = (-0.5, n - 0.5), (-0.5, rows - 0.5), (-0.5, cols - 0.5)
        grid = np.array([(k, r, c) for k in ks for r in rs for c in cs], dtype=np.float64)
        return self.to_patient(grid)

    def center(self) -> Vec:
        n, rows, cols = self.shape
        return self.to_patient(((n - 1) / 2, (rows - 1) / 2, (cols - 1) / 2))


def _unit(v: npt.ArrayLike) -> Vec:
    a = np.asarray(v, dtype=np.float64)
    norm = float(np.linalg.norm(a))
    return a / norm if norm > 0 else a


def _position(ref: SliceRef) -> tuple[float, float, float] | None:
    inst, frame = ref
    if inst.frame_positions is not None and 0 <= frame < len(inst.frame_positions):
        return inst.frame_positions[frame]
    return inst.image_position


def geometry_of(refs: Sequence[SliceRef], series: str = "") -> VolumeGeometry:
    """The validated geometry of slices in display order (``core.imaging.volume.slice_refs``).

    Raises GeometryError naming ``series`` (default: the first slice's Series Instance UID) and
    the cause; see the module docstring for what is refused and what is handled.
    """
    name = series or (refs[0].instance.series_instance_uid if refs else "") or "?"
    if len(refs) < 2:
        raise GeometryError(name, f"it has {len(refs)} slice(s); a volume needs at least 2")
    missing = [
        what
        for what, ok in (
            ("ImagePositionPatient", all(_position(r) is not None for r in refs)),
            ("ImageOrientationPatient", all(r.instance.image_orientation for r in refs)),
            ("PixelSpacing", all(r.instance.pixel_spacing for r in refs)),
        )
        if not ok
    ]
    if missing:
        raise GeometryError(name, f"some slices have no {' or '.join(missing)}")
    sizes = {(r.instance.rows, r.instance.columns) for r in refs}
    if len(sizes) != 1 or None in next(iter(sizes)):
        raise GeometryError(
            name, f"its slices have different image sizes {sorted(map(str, sizes))}"
        )
    orientations = np.array([r.instance.image_orientation for r in refs], dtype=np.float64)
    if np.abs(orientations - orientations[0]).max() > _ORIENTATION_TOLERANCE:
        raise GeometryError(name, "its slices have mixed orientations (ImageOrientationPatient)")
    spacings = np.array([r.instance.pixel_spacing for r in refs], dtype=np.float64)
    if np.abs(spacings / spacings[0] - 1).max() > _SPACING_TOLERANCE:
        lo, hi = spacings.min(axis=0), spacings.max(axis=0)
        raise GeometryError(
            name,
            f"its slices have mixed pixel spacings (from {lo[0]:g}x{lo[1]:g} "
            f"to {hi[0]:g}x{hi[1]:g} mm)",
        )
    row_dir, col_dir = _unit(orientations[0][:3]), _unit(orientations[0][3:])
    if abs(float(np.dot(row_dir, col_dir))) > _ORIENTATION_TOLERANCE:
        raise GeometryError(name, "its row and column directions are not perpendicular")
    positions = np.array([_position(r) for r in refs], dtype=np.float64)
    origin, step = _regular_step(positions, row_dir, col_dir, name)
    rows, cols = next(iter(sizes))
    assert rows is not None
    assert cols is not None
    return VolumeGeometry(
        shape=(len(refs), rows, cols),
        origin=origin,
        row_dir=row_dir,
        col_dir=col_dir,
        step=step,
        pixel_spacing=(float(spacings[0][0]), float(spacings[0][1])),
    )


def _regular_step(positions: Vec, row_dir: Vec, col_dir: Vec, name: str) -> tuple[Vec, Vec]:
    """(first slice's fitted position, constant slice-to-slice vector), or GeometryError."""
    normal = _unit(np.cross(row_dir, col_dir))
    along = (positions - positions[0]) @ normal
    gaps = np.diff(along)
    places = np.unique(np.round(along / POSITION_TOLERANCE_MM).astype(np.int64))
    if 1 < len(places) < len(along) and len(along) % len(places) == 0:
        repeats = len(along) // len(places)
        raise GeometryError(
            name,
            f"it holds {repeats} volumes at the same {len(places)} positions (echoes, phases "
            "or time points); a reformat needs one volume",
        )
    if np.any(np.abs(gaps) <= POSITION_TOLERANCE_MM):
        i = int(np.argmin(np.abs(gaps)))
        raise GeometryError(
            name, f"slices {i} and {i + 1} are at the same position ({along[i]:.2f} mm)"
        )
    if np.any(gaps < 0) and np.any(gaps > 0):
        raise GeometryError(name, "its slices are not in order along the slice normal")
    usual = float(np.median(np.abs(gaps)))
    tolerance = POSITION_TOLERANCE_MM + 0.01 * usual
    off = np.abs(np.abs(gaps) - usual) > tolerance
    if np.any(off):
        i = int(np.argmax(off))
        ratio = abs(gaps[i]) / usual
        near_whole = abs(ratio - round(ratio)) * usual <= tolerance and round(ratio) >= 2
        if near_whole and np.all(~off | (np.abs(gaps) > usual)):
            lost = int(sum(round(abs(g) / usual) - 1 for g in gaps[off]))
            raise GeometryError(
                name,
                f"{lost} slice(s) missing: a gap of {abs(gaps[i]):.2f} mm after slice {i} "
                f"where the others are {usual:.2f} mm",
            )
        raise GeometryError(
            name,
            f"irregular slice spacing: gaps from {np.abs(gaps).min():.2f} to "
            f"{np.abs(gaps).max():.2f} mm (usual {usual:.2f} mm)",
        )
    n = len(positions)
    k = np.arange(n, dtype=np.float64)
    # least-squares straight line through the positions: p_k = p_0 + k * step
    slope, intercept = np.polyfit(k, positions, 1)
    step = np.asarray(slope, dtype=np.float64)
    origin = np.asarray(intercept, dtype=np.float64)
    fitted = origin + np.outer(k, step)
    residual = float(np.linalg.norm(positions - fitted, axis=1).max())
    if residual > tolerance:
        raise GeometryError(
            name,
            f"its slice positions do not lie on one straight line (off by up to {residual:.2f} "
            "mm; a varying gantry tilt?)",
        )
    return origin, step
