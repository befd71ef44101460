"""MPR: axial, coronal, sagittal and oblique planes and thick slabs through one shared volume.

A ``Volume`` is the series' float32 voxels (modality units) with its validated patient-space
geometry (``core.imaging.geometry``); it is loaded once and every ``Reformat`` holds a reference
to the same read-only array (no per-plane copy). Only output images are cached, a few per
reformat (``cache_size`` entries and ``cache_bytes``, by default 1/50 of the volume: with four
MPR viewports the process stays near 1.1x of the volume, benchmarks/bench_mpr_memory.py).
A series that is not one plain regular stack is made one first (``plan_volume``: localizers
left out, irregular spacing resampled along the normal, a tilted gantry as a sheared affine;
what was done is in ``Volume.notes`` for the viewer to show; gaps are refused).

A ``Reformat`` is one plane orientation: in-plane unit axes ``u`` (image +x, left to right on
screen) and ``v`` (image +y, top to bottom) in patient mm, and the positions along the normal
``u x v`` that cover the volume, one ``Plane`` per index. Sampling is in physical space with
SQUARE pixels (``pixel_size``: by default the finest in-plane spacing of the series), so a
400 mm by 550 mm coronal plane is an image whose height/width ratio is 400/550. Interpolation is
trilinear (``core.viewer.resample``: numpy, separable for planes along the voxel axes, scipy's
``map_coordinates`` order 1 for oblique ones when installed; benchmarks/bench_reformat.py
compares it with a bare map_coordinates call). Each voxel fills its whole cell (edge values
hold to half a voxel beyond the outer voxel centres, as on the native slices); outside the
cells is the volume's lowest value (black on screen).

Orientation convention (radiological, as RadiAnt, Horos, OHIF): axial seen from the feet
(patient's right on the image's left, anterior at the top); coronal seen from the front (right
on the left, head at the top); sagittal seen from the patient's left (anterior on the left, head
at the top). DICOM patient axes are LPS: +x left, +y posterior, +z head.

A thick slab (MIP, MinIP, average over ``thickness_mm``) samples parallel planes at most one
voxel step apart (the plane's own step along the normal) on both sides of the plane and reduces
them one at a time, without stacking them. At the volume's ends the average counts outside
samples as the volume's lowest value.

Nothing here imports Qt; a viewport widget paints ``Reformat.frame(index, slab)`` through
``core.imaging.display.render`` like any other frame and maps mouse positions through
``Plane.to_patient`` (measurements in mm: ``Plane.pixel_spacing``; crosshair:
``Reformat.index_of``).
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from core.imaging.geometry import GeometryError, VolumeGeometry, VolumePlan, plan_volume
from core.imaging.index import Cancel
from core.imaging.memory import give_back_freed_memory
from core.imaging.model import Frame, Series, SliceRef
from core.imaging.pixels import gray_frame
from core.imaging.volume import first_slice, load_volume, slice_refs
from core.viewer.resample import Grid, sample_aligned, sample_general

Vec = npt.NDArray[np.float64]
Image = npt.NDArray[np.float32]
PlaneName = Literal["axial", "coronal", "sagittal", "oblique"]
SlabKind = Literal["mip", "minip", "avg"]

# (u, v): image +x and +y directions in LPS for the standard planes (see module docstring)
STANDARD_AXES: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    "axial": ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0)),
    "coronal": ((1.0, 0.0, 0.0), (0.0, 0.0, -1.0)),
    "sagittal": ((0.0, 1.0, 0.0), (0.0, 0.0, -1.0)),
}
SLAB_KINDS: tuple[SlabKind, ...] = ("mip", "minip", "avg")
# A reformat's image cache holds at most 1/CACHE_SHARE of its volume's bytes (at least
# CACHE_FLOOR): four MPR viewports then stay within the 1.2x of the volume
# (benchmarks/bench_mpr_memory.py); a 400-slice CT's coronal plane is ~3 MB, so two or three.
CACHE_SHARE = 50
CACHE_FLOOR = 8 * 1024 * 1024
SAME_SLICE = 1e-6  # a voxel slice this close (in gaps) to an acquired slice is a copy of it
TRIM_EVERY = 32  # slices stacked between two hand-backs of their freed memory (core.imaging.memory)

__all__ = [
    "STANDARD_AXES",
    "GeometryError",
    "Plane",
    "Reformat",
    "Slab",
    "Volume",
    "load_series_volume",
    "parse_slab",
    "volume_from_frames",
]


@dataclass(frozen=True)
class Slab:
    """A thick slab: ``kind`` of the samples within ``thickness_mm`` centred on the plane."""

    kind: SlabKind
    thickness_mm: float

    def __post_init__(self) -> None:
        if self.kind not in SLAB_KINDS:
            raise ValueError(f"slab kind '{self.kind}' is not one of {', '.join(SLAB_KINDS)}")
        if not (math.isfinite(self.thickness_mm) and self.thickness_mm > 0):
            raise ValueError(
                f"slab thickness must be a positive number of mm, not {self.thickness_mm}"
            )


def parse_slab(text: str) -> Slab:
    """``mip:10``, ``minip:5``, ``avg:2.5`` -> Slab; ValueError naming what is wrong."""
    kind, sep, mm = text.partition(":")
    if not sep:
        raise ValueError(f"slab '{text}' needs a thickness: KIND:MM, e.g. mip:10")
    try:
        thickness = float(mm)
    except ValueError:
        raise ValueError(f"slab '{text}': '{mm}' is not a thickness in mm") from None
    return Slab(kind.lower(), thickness)  # type: ignore[arg-type]  # checked in __post_init__


@dataclass(frozen=True, eq=False)
class Volume:
    """One series as voxels + geometry + what display needs; shared read-only by reformats."""

    values: Image  # (slices, rows, cols) float32 in modality units
    geometry: VolumeGeometry
    series_uid: str = ""
    modality: str = ""
    windows: tuple[tuple[float, float], ...] = ()  # the middle slice's file windows
    units: str = ""
    invert: bool = False  # MONOCHROME1
    voi_function: str = "LINEAR"
    frame_of_reference: str = ""  # positions comparable with other series (reference lines)
    # what was done to make it a regular volume (localizers left out, spacing resampled)
    notes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.values.shape != self.geometry.shape:
            raise ValueError(
                f"volume of shape {self.values.shape} does not match its geometry "
                f"{self.geometry.shape}"
            )
        if self.values.dtype != np.float32:
            raise ValueError(f"volume values must be float32, not {self.values.dtype}")
        view = self.values.view()  # read-only view: the caller keeps its own array as it was
        view.flags.writeable = False
        object.__setattr__(self, "values", view)

    @cached_property
    def background(self) -> float:
        """The lowest value (what lies outside the volume in a reformat: black)."""
        return float(self.values.min()) if self.values.size else 0.0

    @property
    def nbytes(self) -> int:
        return int(self.values.nbytes)


def _series_facts(series: Series, refs: Sequence[SliceRef]) -> dict[str, Any]:
    """What display needs, from the middle slice (the one the viewer's 'auto' window uses)."""
    middle = refs[first_slice(len(refs))].instance
    info = middle.pixel
    return {
        "series_uid": series.series_instance_uid,
        "modality": series.modality,
        "windows": info.windows if info is not None else (),
        "units": info.units if info is not None else "",
        "invert": middle.photometric.upper() == "MONOCHROME1",
        "voi_function": info.voi_function if info is not None else "LINEAR",
        "frame_of_reference": middle.frame_of_reference_uid,
    }


def load_series_volume(
    series: Series,
    workers: int | None = None,
    cancel: Cancel | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Volume:
    """Validate the series' geometry (before any pixel is read), then load it as a Volume:
    localizers left out, irregular spacing resampled (``core.imaging.geometry.plan_volume``;
    what was done is in ``Volume.notes``).

    GeometryError names the series and the cause; the loader's errors pass through.
    """
    refs = slice_refs(series)
    plan = plan_volume(refs, series.series_instance_uid)
    kept = [refs[i] for i in plan.kept]
    values = load_volume(series, workers=workers, cancel=cancel, progress=progress, refs=kept)
    if plan.resampled:
        values = _resampled(plan, list(values))
    return Volume(values, plan.geometry, notes=plan.notes, **_series_facts(series, kept))


def _resampled(plan: VolumePlan, slices: Sequence[Image]) -> Image:
    """The regular volume of ``plan`` from its kept slices (see ``VolumePlan``): each voxel
    slice the linear blend of the two acquired slices around it, a copy where it lies on one."""
    assert plan.lower is not None
    assert plan.weight is not None
    out = np.empty(plan.geometry.shape, dtype=np.float32)
    for j, (lo, w) in enumerate(zip(plan.lower, plan.weight, strict=True)):
        if w < SAME_SLICE:
            out[j] = slices[lo]
        elif w > 1 - SAME_SLICE:
            out[j] = slices[lo + 1]
        else:
            np.multiply(slices[lo], np.float32(1 - w), out=out[j])
            out[j] += slices[lo + 1] * np.float32(w)
    return out


def _coinciding(plan: VolumePlan) -> dict[int, int]:
    """Kept slice -> the voxel slice that is an unblended copy of it (``_resampled``)."""
    assert plan.lower is not None
    assert plan.weight is not None
    out: dict[int, int] = {}
    for j, (lo, w) in enumerate(zip(plan.lower, plan.weight, strict=True)):
        if w < SAME_SLICE:
            out.setdefault(int(lo), j)
        elif w > 1 - SAME_SLICE:
            out.setdefault(int(lo) + 1, j)
    return out


def volume_from_frames(
    series: Series, refs: Sequence[SliceRef], frames: Sequence[Frame | None]
) -> Volume:
    """The Volume of a series whose slices a viewer already decoded, WITHOUT a second copy:
    the voxels are stacked once and each Frame's ``values`` becomes a view of its slice of the
    volume (the frames' own arrays are then freed), so slices and reformats share one array.

    Localizers are left out and irregular spacing is resampled (``plan_volume``; said in
    ``Volume.notes``); after resampling, each frame whose slice lies on a voxel slice (all of
    them when the spacings are multiples of the finest, as 2.5 and 5 mm) becomes a view of it
    too; the others (a transition gap off the grid) keep their own arrays beside the volume.

    ``refs`` and ``frames`` are the viewer's (``ViewerState.slices`` / ``.frames``). Raises
    GeometryError (names the series and the cause) or ValueError (slices still loading, colour).
    """
    plan = plan_volume(refs, series.series_instance_uid)
    missing = sum(f is None for f in frames)
    if missing or len(frames) != len(refs):
        raise ValueError(
            f"series '{series.series_instance_uid}': {missing or 'some'} slice(s) not loaded yet"
        )
    kept = [frames[i] for i in plan.kept]
    if any(f is not None and f.is_color for f in kept):
        raise ValueError(f"series '{series.series_instance_uid}' is colour, not a volume")
    size = plan.geometry.shape[1:]
    for k, frame in zip(plan.kept, kept, strict=True):
        assert frame is not None
        if frame.values.shape != size:
            raise ValueError(
                f"series '{series.series_instance_uid}': slice {k} is {frame.shape}, not {size}"
            )
    if plan.resampled:
        values = _resampled(plan, [f.values for f in kept if f is not None])
        for k, j in _coinciding(plan).items():  # an acquired slice that IS a voxel slice
            frame = kept[k]
            assert frame is not None
            frame.values = values[j]  # the same pixels (copied unblended): one copy kept
        give_back_freed_memory()
    else:
        values = np.empty(plan.geometry.shape, dtype=np.float32)
        for k, frame in enumerate(kept):
            assert frame is not None
            values[k] = frame.values
            frame.values = values[k]  # its own array is freed here...
            if k % TRIM_EVERY == TRIM_EVERY - 1:
                give_back_freed_memory()  # ...and given back: the peak stays near one volume
        give_back_freed_memory()
    facts = _series_facts(series, [refs[i] for i in plan.kept])
    volume = Volume(values, plan.geometry, notes=plan.notes, **facts)
    # the frames already know their lowest value (a blend of two never goes below both): no
    # pass over the whole volume for it
    volume.__dict__["background"] = min(f.value_range[0] for f in kept if f is not None)
    return volume


@dataclass(frozen=True, eq=False)
class Plane:
    """One reformatted image's grid: pixel (row, col) <-> patient mm.

    Pixel centres: ``center + (col - (cols-1)/2) * pixel_size * u + (row - (rows-1)/2) *
    pixel_size * v``; the same convention as ``core.viewer.transform`` (x along columns).
    """

    center: Vec
    u: Vec
    v: Vec
    rows: int
    cols: int
    pixel_size: float

    @property
    def normal(self) -> Vec:
        return np.cross(self.u, self.v)

    @property
    def pixel_spacing(self) -> tuple[float, float]:
        """(row, column) spacing in mm, DICOM order: what ``core.viewer.measure`` takes."""
        return (self.pixel_size, self.pixel_size)

    @property
    def orientation(self) -> tuple[float, float, float, float, float, float]:
        """As ImageOrientationPatient, for ``core.viewer.orientation.edge_labels``."""
        return (*map(float, self.u), *map(float, self.v))  # type: ignore[return-value]

    @property
    def top_left(self) -> Vec:
        """Patient position of pixel (0, 0)'s centre."""
        return np.asarray(
            self.center
            - (self.cols - 1) / 2 * self.pixel_size * self.u
            - (self.rows - 1) / 2 * self.pixel_size * self.v,
            dtype=np.float64,
        )

    def to_patient(self, row: npt.ArrayLike, col: npt.ArrayLike) -> Vec:
        """Pixel (row, col) (scalars or arrays; fractional allowed) -> patient mm (..., 3)."""
        r = np.asarray(row, dtype=np.float64)[..., None]
        c = np.asarray(col, dtype=np.float64)[..., None]
        return np.asarray(
            self.top_left + c * self.pixel_size * self.u + r * self.pixel_size * self.v,
            dtype=np.float64,
        )

    def to_pixel(self, point: npt.ArrayLike) -> tuple[float, float, float]:
        """Patient mm -> (row, col, signed distance from the plane in mm)."""
        d = np.asarray(point, dtype=np.float64) - self.top_left
        return (
            float(d @ self.v) / self.pixel_size,
            float(d @ self.u) / self.pixel_size,
            float(d @ self.normal),
        )


def _unit(v: npt.ArrayLike, what: str) -> Vec:
    a = np.asarray(v, dtype=np.float64).reshape(3)
    norm = float(np.linalg.norm(a))
    if not math.isfinite(norm) or norm < 1e-9:
        raise ValueError(f"the {what} axis {tuple(a)} has no direction")
    return a / norm


@dataclass
class _Cache:
    """A few output images, least recently used dropped first, bounded by ``size`` entries and
    ``max_bytes`` (the newest image always stays: it is the one being shown)."""

    size: int
    max_bytes: int | None = None
    items: OrderedDict[Any, Image] = field(default_factory=OrderedDict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def get(self, key: Any) -> Image | None:
        with self.lock:
            image = self.items.get(key)
            if image is not None:
                self.items.move_to_end(key)
            return image

    @property
    def nbytes(self) -> int:
        return sum(int(image.nbytes) for image in self.items.values())

    def put(self, key: Any, image: Image) -> None:
        if self.size <= 0:
            return
        with self.lock:
            self.items[key] = image
            self.items.move_to_end(key)
            while len(self.items) > self.size or (
                self.max_bytes is not None and len(self.items) > 1 and self.nbytes > self.max_bytes
            ):
                self.items.popitem(last=False)


class Reformat:
    """One plane orientation through a shared ``Volume``: planes by index, images, slabs.

    ``name`` is 'axial', 'coronal', 'sagittal' (standard axes, covering the volume, centred on
    it) or 'oblique' (use ``Reformat.oblique``: any two perpendicular axes through a point).
    Index 0 is the plane furthest against the normal ``u x v``; ``count`` planes one ``step``
    apart cover the volume. Thread-safe for reading (a worker may render while the GUI paints).
    """

    def __init__(
        self,
        volume: Volume,
        name: PlaneName = "axial",
        *,
        u: npt.ArrayLike | None = None,
        v: npt.ArrayLike | None = None,
        center: npt.ArrayLike | None = None,
        pixel_size: float | None = None,
        cache_size: int = 8,
        cache_bytes: int | None = None,
    ) -> None:
        if name not in (*STANDARD_AXES, "oblique"):
            raise ValueError(f"plane '{name}' is not axial, coronal, sagittal or oblique")
        if name != "oblique":
            u, v = STANDARD_AXES[name]
        if u is None or v is None:
            raise ValueError("an oblique plane needs its two in-plane axes u and v")
        self.volume = volume
        self.name: PlaneName = name
        self.u = _unit(u, "u")
        v_unit = _unit(v, "v")
        if abs(float(self.u @ v_unit)) > 1e-3:
            raise ValueError("the plane's axes u and v must be perpendicular")
        self.v = _unit(v_unit - (v_unit @ self.u) * self.u, "v")  # exact orthogonality
        self.normal: Vec = np.cross(self.u, self.v)
        geometry = volume.geometry
        self.pixel_size = float(pixel_size or min(geometry.pixel_spacing))
        if not (math.isfinite(self.pixel_size) and self.pixel_size > 0):
            raise ValueError(f"pixel size must be a positive number of mm, not {pixel_size}")
        self._inverse = np.linalg.inv(geometry.matrix)
        if cache_bytes is None:
            cache_bytes = max(volume.nbytes // CACHE_SHARE, CACHE_FLOOR)
        self._cache = _Cache(cache_size, cache_bytes)
        corners = geometry.corners()
        anchor = geometry.center() if center is None else np.asarray(center, dtype=np.float64)
        rel = corners - anchor
        pu, pv, pn = rel @ self.u, rel @ self.v, rel @ self.normal
        self.cols = max(1, round((pu.max() - pu.min()) / self.pixel_size))
        self.rows = max(1, round((pv.max() - pv.min()) / self.pixel_size))
        # the image is centred on the volume's projection; the anchor stays on index 'origin'
        self._in_plane = anchor + (pu.max() + pu.min()) / 2 * self.u
        self._in_plane = self._in_plane + (pv.max() + pv.min()) / 2 * self.v
        natural = self._natural_step()
        if center is None:  # tile the volume's extent: the planes hit voxel centres
            extent = float(pn.max() - pn.min())
            self.count = max(1, round(extent / natural))
            self.step = extent / self.count
            self._first = float(pn.min()) + self.step / 2
        else:  # planes through the given point, one natural step apart
            self.step = natural
            lo, hi = math.ceil(pn.min() / natural), math.floor(pn.max() / natural)
            self.count = max(1, hi - lo + 1)
            self._first = lo * natural

    @classmethod
    def oblique(
        cls,
        volume: Volume,
        center: npt.ArrayLike,
        u: npt.ArrayLike,
        v: npt.ArrayLike,
        pixel_size: float | None = None,
        cache_size: int = 8,
        cache_bytes: int | None = None,
    ) -> Reformat:
        """The plane through ``center`` spanned by ``u`` (image +x) and ``v`` (image +y), e.g.
        the crosshair's rotated axes; ``index_of(center)`` is that plane."""
        return cls(
            volume,
            "oblique",
            u=u,
            v=v,
            center=center,
            pixel_size=pixel_size,
            cache_size=cache_size,
            cache_bytes=cache_bytes,
        )

    def _natural_step(self) -> float:
        """The voxel spacing along the normal: the voxel axis parallel to it, else the finest."""
        m = self.volume.geometry.matrix
        lengths = np.linalg.norm(m, axis=0)
        along = np.abs(self.normal @ m)
        best = int(np.argmax(along / lengths))
        if along[best] / lengths[best] > 0.999:
            return float(along[best])
        return float(min(self.volume.geometry.spacing))

    # --- geometry ------------------------------------------------------------------------
    @property
    def default_index(self) -> int:
        return self.count // 2

    def offset(self, index: int) -> float:
        """Signed distance (mm) of plane ``index`` from the anchor along the normal."""
        return self._first + index * self.step

    def plane(self, index: int | None = None) -> Plane:
        i = self.default_index if index is None else self._check(index)
        return Plane(
            center=self._in_plane + self.offset(i) * self.normal,
            u=self.u,
            v=self.v,
            rows=self.rows,
            cols=self.cols,
            pixel_size=self.pixel_size,
        )

    def index_of(self, point: npt.ArrayLike) -> int:
        """The plane index nearest a patient point (clamped): for the crosshair and linking."""
        d = float((np.asarray(point, dtype=np.float64) - self._in_plane) @ self.normal)
        return min(max(round((d - self._first) / self.step), 0), self.count - 1)

    def _check(self, index: int) -> int:
        if not 0 <= index < self.count:
            raise IndexError(f"{self.name} index {index} outside 0..{self.count - 1}")
        return index

    def grid(self, index: int, shift_mm: float = 0.0) -> Grid:
        """Plane ``index``'s pixels as voxel coordinates (k, r, c), moved ``shift_mm`` along
        the normal (a slab's sample planes)."""
        plane = self.plane(index)
        base = self._inverse @ (
            plane.top_left + shift_mm * self.normal - self.volume.geometry.origin
        )
        du = self._inverse @ (self.u * self.pixel_size)
        dv = self._inverse @ (self.v * self.pixel_size)
        return Grid(base, du, dv, self.rows, self.cols)

    # --- images --------------------------------------------------------------------------
    def _sample(self, grid: Grid, cval: float) -> Image:
        """Trilinear samples (``core.viewer.resample``: separable when the plane runs along
        the voxel axes); a voxel fills its cell, beyond the cells: ``cval``."""
        if grid.aligned_axes() is not None:
            return sample_aligned(self.volume.values, grid, cval)
        return sample_general(self.volume.values, grid, cval)

    def slab_offsets(self, slab: Slab) -> list[float]:
        """Sample offsets (mm) of a slab: one plane step apart, within half the thickness."""
        half = math.floor((slab.thickness_mm / 2 / self.step) + 1e-6)
        return [j * self.step for j in range(-half, half + 1)]

    def image(self, index: int | None = None, slab: Slab | None = None) -> Image:
        """The reformatted values (float32, modality units) of plane ``index`` (default middle);
        read-only (it may be cached and shared)."""
        i = self.default_index if index is None else self._check(index)
        key = (i, slab)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        background = self.volume.background
        if slab is None:
            out = self._sample(self.grid(i), background)
        else:
            out = self._slab(i, slab, background)
        out.flags.writeable = False
        self._cache.put(key, out)
        return out

    def _slab(self, index: int, slab: Slab, background: float) -> Image:
        cval = math.inf if slab.kind == "minip" else background
        out: Image | None = None
        for offset in self.slab_offsets(slab):
            sample = self._sample(self.grid(index, offset), cval)
            if out is None:
                out = sample
            elif slab.kind == "mip":
                np.maximum(out, sample, out=out)
            elif slab.kind == "minip":
                np.minimum(out, sample, out=out)
            else:
                np.add(out, sample, out=out)
        assert out is not None
        if slab.kind == "avg":
            np.divide(out, np.float32(len(self.slab_offsets(slab))), out=out)
        elif slab.kind == "minip":
            out[np.isinf(out)] = np.float32(background)
        return out

    def frame(self, index: int | None = None, slab: Slab | None = None) -> Frame:
        """Plane ``index`` as a Frame the display pipeline renders (square pixels in mm)."""
        vol = self.volume
        return gray_frame(
            self.image(index, slab),
            invert=vol.invert,
            windows=vol.windows,
            units=vol.units,
            spacing=(self.pixel_size, self.pixel_size),
            voi_function=vol.voi_function,
        )
