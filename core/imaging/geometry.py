"""A series' voxel grid in patient space (the affine), validated before anything is reformatted.

A reformat (coronal, sagittal, oblique, thick slab) samples the volume in millimetres, so it is
only as right as the affine that maps a voxel index to a patient position. That affine is built
from every slice's ImagePositionPatient, ImageOrientationPatient and PixelSpacing, and checked:

- one orientation and one pixel spacing for every slice, one image size. A LOCALIZER (scout)
  mixed into the series, i.e. a few images (fewer than half) of another orientation, size or
  pixel spacing whose ImageType says LOCALIZER, is LEFT OUT with a note naming how many; any
  other mix is refused.
- slices on one straight line, in order, no two at one position, no repeated volumes.
- Spacing. Regular (every gap within ``POSITION_TOLERANCE_MM`` plus 1 % of the median gap):
  the slices are the voxel slices. Otherwise the gaps are cut into runs of equal gaps (a
  "regular run" has two or more), as when a CT's reconstruction interval changes (2.5 mm here,
  5 mm there). The rule, for each gap that belongs to no regular run (an "odd" gap):
    * longer than ``MAX_GAP_RATIO`` (1.5) times the local spacing (the coarser regular run
      beside it) -> REFUSED as missing slices, naming the gap's slice and positions:
      interpolating across a hole would draw tissue that was never imaged;
    * a regular run must lie on each side of it that has slices (a series end needs none);
      two odd gaps in a row (one slice moved: a longer then a shorter gap) -> REFUSED as
      irregular spacing (a slice out of place);
    * otherwise (a transition between runs, or an odd gap at an end) it is accepted.
  An accepted irregular series is RESAMPLED along the normal onto a regular grid from the
  first to the last slice, at the finest regular run's spacing (adjusted to end on the last
  slice): each voxel slice is the linear blend of the two acquired slices on either side of it
  by their actual positions (``VolumePlan.lower``/``weight``), so never across a gap longer
  than 1.5 local spacings.
- gantry / detector tilt (the step between slices is not along the slice normal, as in a CT
  acquired with a tilted gantry) is HANDLED, not refused: the affine's third column is the real
  step vector (a shear), so sampling through its inverse puts every voxel where it was in the
  patient and a reformat of a tilted acquisition is drawn undistorted. ``tilt_degrees`` says how
  much shear there was (the viewer can show it). Tilted AND irregularly spaced: the step
  direction is the line fitted through the positions against their distance along the normal.

Index order is numpy's: (k, r, c) = (slice, row, column); patient axes are DICOM's LPS
(+x the patient's left, +y posterior, +z head). Nothing here reads pixels or imports Qt (only
the headers of the few slices that do not fit, for their ImageType).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from core.imaging.model import Instance, SliceRef

POSITION_TOLERANCE_MM = 0.05  # DICOM positions are often written with two decimals
_ORIENTATION_TOLERANCE = 1e-3
_SPACING_TOLERANCE = 1e-3  # relative
MAX_GAP_RATIO = 1.5  # a gap longer than this many local spacings is slices missing

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


@dataclass(frozen=True, eq=False)
class VolumePlan:
    """How a series' slices become a Volume on a regular grid (``plan_volume``).

    ``kept``: indices into the slices given (display order) that make the volume; the others
    (localizers) are left out and said in ``notes``. ``lower``/``weight`` are None for a plain
    stack (volume slice k is kept slice k); after resampling, volume slice j is
    ``(1 - weight[j]) * kept[lower[j]] + weight[j] * kept[lower[j] + 1]`` (linear along the
    slice normal between the two nearest slices, by their actual positions).
    """

    geometry: VolumeGeometry
    kept: tuple[int, ...]
    total: int  # how many slices were given
    lower: npt.NDArray[np.intp] | None = None
    weight: npt.NDArray[np.float64] | None = None
    notes: tuple[str, ...] = ()

    @property
    def resampled(self) -> bool:
        return self.lower is not None

    @property
    def plain(self) -> bool:
        """Every slice given is one voxel slice, in order: the volume can be their stack."""
        return not self.resampled and len(self.kept) == self.total


def geometry_of(refs: Sequence[SliceRef], series: str = "") -> VolumeGeometry:
    """The validated geometry of slices in display order (``core.imaging.volume.slice_refs``)
    when they are one plain stack (every slice a voxel slice, regular spacing, none left out).

    Raises GeometryError naming ``series`` (default: the first slice's Series Instance UID) and
    the cause; a series that needs resampling or leaves out a localizer is refused here (use
    ``plan_volume``).
    """
    plan = plan_volume(refs, series)
    if not plan.plain:
        name = series or refs[0].instance.series_instance_uid or "?"
        raise GeometryError(name, f"it is not one plain stack ({'; '.join(plan.notes)})")
    return plan.geometry


def plan_volume(refs: Sequence[SliceRef], series: str = "") -> VolumePlan:
    """Validate the slices (display order) and say how they make a regular volume.

    Localizers are left out (``_leave_out_localizers``), irregular spacing is resampled
    (``_stack_axis``); see the module docstring for what is refused. Raises GeometryError
    naming ``series`` (default: the first slice's Series Instance UID) and the cause.
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
    kept, notes, hint = _leave_out_localizers(refs)
    use = [refs[i] for i in kept]
    if len(use) < 2:
        raise GeometryError(
            name, f"it has {len(use)} slice(s) besides localizers; a volume needs 2"
        )
    sizes = {(r.instance.rows, r.instance.columns) for r in use}
    if len(sizes) != 1 or None in next(iter(sizes)):
        raise GeometryError(
            name, f"its slices have different image sizes {sorted(map(str, sizes))}{hint}"
        )
    orientations = np.array([r.instance.image_orientation for r in use], dtype=np.float64)
    if np.abs(orientations - orientations[0]).max() > _ORIENTATION_TOLERANCE:
        raise GeometryError(
            name, f"its slices have mixed orientations (ImageOrientationPatient){hint}"
        )
    spacings = np.array([r.instance.pixel_spacing for r in use], dtype=np.float64)
    if np.abs(spacings / spacings[0] - 1).max() > _SPACING_TOLERANCE:
        lo, hi = spacings.min(axis=0), spacings.max(axis=0)
        raise GeometryError(
            name,
            f"its slices have mixed pixel spacings (from {lo[0]:g}x{lo[1]:g} "
            f"to {hi[0]:g}x{hi[1]:g} mm){hint}",
        )
    row_dir, col_dir = _unit(orientations[0][:3]), _unit(orientations[0][3:])
    if abs(float(np.dot(row_dir, col_dir))) > _ORIENTATION_TOLERANCE:
        raise GeometryError(name, "its row and column directions are not perpendicular")
    positions = np.array([_position(r) for r in use], dtype=np.float64)
    axis = _stack_axis(positions, row_dir, col_dir, name)
    rows, cols = next(iter(sizes))
    assert rows is not None
    assert cols is not None
    geometry = VolumeGeometry(
        shape=(axis.count, rows, cols),
        origin=axis.origin,
        row_dir=row_dir,
        col_dir=col_dir,
        step=axis.step,
        pixel_spacing=(float(spacings[0][0]), float(spacings[0][1])),
    )
    return VolumePlan(
        geometry,
        tuple(kept),
        len(refs),
        axis.lower,
        axis.weight,
        (*notes, *([axis.note] if axis.note else [])),
    )


def is_localizer(instance: Instance) -> bool:
    """ImageType (0008,0008) holds LOCALIZER (a scout; for CT its value 3 is AXIAL or
    LOCALIZER). Not indexed, so the header is read: call it for a few odd slices only."""
    if instance.is_plain_image:
        return False
    from core.imaging.sources import read_dataset

    try:
        value = read_dataset(instance.path).get("ImageType")
    except ValueError:
        return False  # unreadable: not known to be a localizer, so the series stays refused
    values = [value] if isinstance(value, str) else list(value or [])
    return any(str(v).strip().upper() == "LOCALIZER" for v in values)


def _leave_out_localizers(refs: Sequence[SliceRef]) -> tuple[list[int], list[str], str]:
    """(indices kept, notes, hint for a refusal): the slices that do not fit the series' main
    stack (another orientation, image size or pixel spacing) are left out when every one of
    them is a localizer (``is_localizer``) and they are fewer than half; otherwise all are kept,
    the checks after this refuse the mix as before, and the hint says why they stayed."""

    def key(r: SliceRef) -> tuple[object, ...]:
        i = r.instance
        return (
            i.rows,
            i.columns,
            *np.round(i.image_orientation or (), 2),
            *(i.pixel_spacing or ()),
        )

    keys = [key(r) for r in refs]
    common = max(set(keys), key=keys.count)
    main = refs[keys.index(common)].instance
    assert main.image_orientation is not None
    assert main.pixel_spacing is not None
    o0, s0 = np.asarray(main.image_orientation), np.asarray(main.pixel_spacing)

    def fits(r: SliceRef) -> bool:
        i = r.instance
        return (
            (i.rows, i.columns) == (main.rows, main.columns)
            and np.abs(np.asarray(i.image_orientation) - o0).max() <= _ORIENTATION_TOLERANCE
            and np.abs(np.asarray(i.pixel_spacing) / s0 - 1).max() <= _SPACING_TOLERANCE
        )

    odd = [k for k, r in enumerate(refs) if not fits(r)]
    everything = list(range(len(refs)))
    if not odd or 2 * len(odd) >= len(refs):
        return everything, [], ""
    instances = {id(refs[k].instance): refs[k].instance for k in odd}
    numbers = sorted(str(i.instance_number) for i in instances.values() if i.instance_number)
    which = f" (instance number {', '.join(numbers)})" if numbers else ""
    if not all(is_localizer(i) for i in instances.values()):
        return (
            everything,
            [],
            f"; {len(instances)} image(s) unlike the others{which} are not marked LOCALIZER "
            "in their ImageType, so they are not left out",
        )
    note = (
        f"{len(instances)} localizer image(s) left out of the volume{which}: ImageType "
        "LOCALIZER, another orientation or size than the series' slices"
    )
    return [k for k in everything if k not in set(odd)], [note], ""


@dataclass(frozen=True)
class _Axis:
    """The volume's slice axis: first voxel slice, step vector, count and the resampling."""

    origin: Vec
    step: Vec
    count: int
    lower: npt.NDArray[np.intp] | None = None
    weight: npt.NDArray[np.float64] | None = None
    note: str = ""


def _stack_axis(positions: Vec, row_dir: Vec, col_dir: Vec, name: str) -> _Axis:
    """The slice axis of slices at ``positions`` (display order), or GeometryError.

    Regular spacing: the least-squares line through the positions. Irregular spacing is
    checked by ``_check_gaps`` and resampled by ``_resampled_axis``.
    """
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
    if np.any(np.abs(np.abs(gaps) - usual) > tolerance):
        spacing = _check_gaps(np.abs(gaps), positions @ normal, usual, name)
        return _resampled_axis(positions, np.abs(along), spacing, name)
    n = len(positions)
    k = np.arange(n, dtype=np.float64)
    # least-squares straight line through the positions: p_k = p_0 + k * step
    slope, intercept = np.polyfit(k, positions, 1)
    step = np.asarray(slope, dtype=np.float64)
    origin = np.asarray(intercept, dtype=np.float64)
    _check_line(positions, origin + np.outer(k, step), tolerance, name)
    return _Axis(origin, step, n)


def _check_line(positions: Vec, fitted: Vec, tolerance: float, name: str) -> None:
    residual = float(np.linalg.norm(positions - fitted, axis=1).max())
    if residual > tolerance:
        raise GeometryError(
            name,
            f"its slice positions do not lie on one straight line (off by up to {residual:.2f} "
            "mm; a varying gantry tilt?)",
        )


def _runs(gaps: Vec) -> list[tuple[int, int]]:
    """Half-open index ranges of consecutive gaps equal (within tolerance) to their first."""
    runs, start = [], 0
    for i in range(1, len(gaps) + 1):
        if i == len(gaps) or abs(gaps[i] - gaps[start]) > (
            POSITION_TOLERANCE_MM + 0.01 * gaps[start]
        ):
            runs.append((start, i))
            start = i
    return runs


def _check_gaps(gaps: Vec, places: Vec, usual: float, name: str) -> float:
    """The finest regular spacing of an irregularly spaced series that can be resampled, or
    GeometryError for missing or misplaced slices (the rule: module docstring)."""
    runs = _runs(gaps)
    spacing_of = {
        (a, b): float(np.mean(gaps[a:b])) for a, b in runs if b - a >= 2
    }  # regular runs: two or more equal gaps
    irregular = (
        f"irregular slice spacing: gaps from {gaps.min():.2f} to {gaps.max():.2f} mm "
        f"(usual {usual:.2f} mm)"
    )
    if not spacing_of:
        raise GeometryError(name, f"{irregular}, with no run of equal gaps")
    missing: list[tuple[int, float]] = []
    misplaced: list[int] = []
    for j, (a, b) in enumerate(runs):
        if b - a >= 2:
            continue
        left = spacing_of.get(runs[j - 1]) if j > 0 else None
        right = spacing_of.get(runs[j + 1]) if j + 1 < len(runs) else None
        near = [s for s in (left, right) if s is not None]
        if not near:
            misplaced.append(a)
            continue
        local = max(near)
        tol = POSITION_TOLERANCE_MM + 0.01 * local
        if gaps[a] > MAX_GAP_RATIO * local + tol:
            missing.append((a, local))
        elif (j > 0 and left is None) or (j + 1 < len(runs) and right is None):
            misplaced.append(a)  # two odd gaps in a row: a slice out of place, not a change
    if missing:
        i, local = missing[0]
        lost = sum(max(1, round(gaps[g] / s) - 1) for g, s in missing)
        more = f"; {len(missing) - 1} more gap(s)" if len(missing) > 1 else ""
        raise GeometryError(
            name,
            f"{lost} slice(s) missing: a gap of {gaps[i]:.2f} mm after slice {i} where the "
            f"others are {local:.2f} mm (between slice positions {places[i]:.2f} and "
            f"{places[i + 1]:.2f} mm along the normal{more})",
        )
    if misplaced:
        after = ", ".join(str(i) for i in misplaced[:5])
        raise GeometryError(
            name,
            f"{irregular}: the gap(s) after slice(s) {after} fit no run of equal gaps "
            "(a slice out of place?)",
        )
    return min(spacing_of.values())


def _resampled_axis(positions: Vec, along: Vec, spacing: float, name: str) -> _Axis:
    """A regular axis ``spacing`` mm apart (adjusted to end on the last slice) over slices at
    distances ``along`` (increasing, from 0) on one straight line, and the two slices each
    voxel slice blends (linear in the distance along the normal)."""
    n = len(along)
    count = max(2, round(float(along[-1]) / spacing) + 1)
    delta = float(along[-1]) / (count - 1)
    # p = a + s * b: the line through the positions, s the distance along the normal
    design = np.column_stack((np.ones(n), along))
    (a, b), *_ = np.linalg.lstsq(design, positions, rcond=None)
    _check_line(positions, a + np.outer(along, b), POSITION_TOLERANCE_MM + 0.01 * spacing, name)
    targets = np.arange(count, dtype=np.float64) * delta
    lower = np.clip(np.searchsorted(along, targets, side="right") - 1, 0, n - 2).astype(np.intp)
    weight = np.clip((targets - along[lower]) / (along[lower + 1] - along[lower]), 0.0, 1.0)
    runs = sorted({round(float(g), 2) for g in np.diff(along)})
    shown = ", ".join(f"{g:.2f}" for g in runs[:4]) + (", ..." if len(runs) > 4 else "")
    note = (
        f"irregular slice spacing ({shown} mm) resampled along the normal: {n} slices to "
        f"{count} slices {delta:.2f} mm apart"
    )
    return _Axis(
        np.asarray(a, np.float64), np.asarray(b * delta, np.float64), count, lower, weight, note
    )
