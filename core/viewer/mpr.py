"""What one viewport shows of a volume: which plane, where along it, which slab; evented.

A viewport cell showing a reformat holds an ``MprView`` over the series' one shared ``Volume``
(``SharedVolumes.get``: built once per series by ``core.viewer.reformat.volume_from_frames``
from the frames the viewer already decoded, which then become views of it: no second copy).
The widget subscribes to ``changed`` and paints ``frame()`` through the display pipeline with
its viewport's window; mouse positions map to patient mm through ``plane().to_patient``;
measurements take ``plane()`` as their spacing; reference lines take
``ImagePlane.from_reformat(view.plane())``; a crosshair click elsewhere calls ``goto``.

Oblique planes come from rotating the crosshair: ``rotate(axis, degrees)`` turns this view's
plane about an axis through the current plane's centre, or through a given point (the
crosshair; typically about another viewport's normal, so the plane turns as the line drawn in
that viewport turns). ``base_name`` remembers the standard plane it was turned from;
``reset_oblique`` goes back to it through the same point, ``tilt_degrees`` says how far it is.

Thick slabs (``set_slab``): ``SLAB_STEPS_MM`` are the thicknesses a viewer steps through
(``thicker``/``thinner``), ``slab_label`` is what the overlay prints ("MIP 10 mm").
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from psygnal import Signal

from core.imaging.model import Frame, Series, SliceRef
from core.viewer.reformat import Plane, PlaneName, Reformat, Slab, Volume, volume_from_frames

Vec = npt.NDArray[np.float64]
SLAB_STEPS_MM: tuple[float, ...] = (1.0, 2.0, 3.0, 5.0, 7.5, 10.0, 15.0, 20.0, 30.0, 50.0)
SLAB_NAMES: dict[str, str] = {"mip": "MIP", "minip": "MinIP", "avg": "Average"}


def rotated(vector: npt.ArrayLike, axis: npt.ArrayLike, degrees: float) -> Vec:
    """``vector`` turned by ``degrees`` about ``axis`` (right hand; Rodrigues' formula)."""
    v = np.asarray(vector, dtype=np.float64)
    k = np.asarray(axis, dtype=np.float64)
    norm = float(np.linalg.norm(k))
    if norm < 1e-9:
        raise ValueError(f"rotation axis {tuple(k)} has no direction")
    k = k / norm
    a = math.radians(degrees)
    return np.asarray(
        v * math.cos(a) + np.cross(k, v) * math.sin(a) + k * float(k @ v) * (1 - math.cos(a)),
        dtype=np.float64,
    )


class SharedVolumes:
    """One Volume per series for the whole reading room: every MprView of a series gets the
    same object, built once from the frames the viewer decoded (``volume_from_frames``).

    ``get`` may run on a worker (stacking 400 slices copies them once, ~0.1-0.3 s); two callers
    for one series wait for one build. ``drop`` when no viewport shows the series any more.
    """

    def __init__(self) -> None:
        self._volumes: dict[str, Volume] = {}
        self._lock = threading.Lock()

    def get(
        self, series: Series, refs: Sequence[SliceRef], frames: Sequence[Frame | None]
    ) -> Volume:
        """The series' Volume, built on first use (GeometryError / ValueError say why not)."""
        uid = series.series_instance_uid
        with self._lock:
            volume = self._volumes.get(uid)
            if volume is None:
                volume = volume_from_frames(series, refs, frames)
                self._volumes[uid] = volume
            return volume

    def drop(self, series_uid: str) -> None:
        with self._lock:
            self._volumes.pop(series_uid, None)

    def __contains__(self, series_uid: object) -> bool:
        return series_uid in self._volumes

    @property
    def nbytes(self) -> int:
        return sum(v.nbytes for v in self._volumes.values())


class MprView:
    """One viewport's reformat state over a shared Volume; ``changed`` fires on every change."""

    changed = Signal()

    def __init__(
        self, volume: Volume, plane: PlaneName = "axial", slab: Slab | None = None
    ) -> None:
        self.volume = volume
        self._standard: dict[str, Reformat] = {}  # one per standard plane: keeps its caches
        self._reformat = self._get(plane if plane != "oblique" else "axial")
        self.base_name: PlaneName = self._reformat.name  # the standard plane an oblique left
        self.index = self._reformat.default_index
        self.slab = slab

    def _get(self, name: str) -> Reformat:
        if name not in self._standard:
            self._standard[name] = Reformat(self.volume, name)  # type: ignore[arg-type]
        return self._standard[name]

    @property
    def reformat(self) -> Reformat:
        return self._reformat

    @property
    def plane_name(self) -> PlaneName:
        return self._reformat.name

    @property
    def count(self) -> int:
        return self._reformat.count

    def plane(self) -> Plane:
        return self._reformat.plane(self.index)

    def frame(self) -> Frame:
        """What to paint (modality units, square pixels of ``plane().pixel_size`` mm)."""
        return self._reformat.frame(self.index, self.slab)

    def set_plane(self, name: PlaneName, through: npt.ArrayLike | None = None) -> None:
        """Axial, coronal or sagittal, through the centre of the plane shown now (or through
        the point ``through``: the crosshair)."""
        if name == "oblique":
            raise ValueError("an oblique plane comes from rotate() or set_oblique()")
        centre = self.plane().center if through is None else through
        self._reformat = self._get(name)
        self.base_name = name
        self.index = self._reformat.index_of(centre)
        self.changed.emit()

    def set_oblique(self, center: npt.ArrayLike, u: npt.ArrayLike, v: npt.ArrayLike) -> None:
        self._reformat = Reformat.oblique(self.volume, center, u, v)
        self.index = self._reformat.index_of(center)
        self.changed.emit()

    def rotate(
        self, axis: npt.ArrayLike, degrees: float, through: npt.ArrayLike | None = None
    ) -> None:
        """Turn the plane about ``axis`` through its centre, or through the point ``through``
        (the crosshair: the turned plane passes exactly through it, although the plane shown
        before may have been up to half a step from it)."""
        plane = self.plane()
        pivot = plane.center if through is None else np.asarray(through, dtype=np.float64)
        self.set_oblique(pivot, rotated(plane.u, axis, degrees), rotated(plane.v, axis, degrees))

    @property
    def is_oblique(self) -> bool:
        return self._reformat.name == "oblique"

    def tilt_degrees(self) -> float:
        """The angle between this plane and the standard plane it was turned from."""
        base = self._get(self.base_name).normal
        cos = abs(float(base @ self._reformat.normal))
        return math.degrees(math.acos(min(cos, 1.0)))

    def reset_oblique(self, through: npt.ArrayLike | None = None) -> None:
        """Back to the standard plane it was turned from, through the same centre (or the
        point ``through``: the crosshair it was turned about)."""
        if self.is_oblique:
            self.set_plane(self.base_name, through)

    def set_index(self, index: int) -> None:
        index = min(max(index, 0), self.count - 1)
        if index != self.index:
            self.index = index
            self.changed.emit()

    def step(self, delta: int) -> None:
        self.set_index(self.index + delta)

    def goto(self, point: npt.ArrayLike) -> None:
        """Show the plane through a patient point (crosshair, linked scrolling)."""
        self.set_index(self._reformat.index_of(point))

    def set_slab(self, slab: Slab | None) -> None:
        if slab != self.slab:
            self.slab = slab
            self.changed.emit()

    def slab_label(self) -> str:
        """'MIP 10 mm', 'MinIP 5 mm', 'Average 2.5 mm'; '' for a thin plane."""
        if self.slab is None:
            return ""
        return f"{SLAB_NAMES[self.slab.kind]} {self.slab.thickness_mm:g} mm"

    def thicker(self, steps: int = 1) -> None:
        """Step the slab's thickness through ``SLAB_STEPS_MM`` (no slab: nothing changes)."""
        if self.slab is None:
            return
        now = self.slab.thickness_mm
        at = min(range(len(SLAB_STEPS_MM)), key=lambda i: abs(SLAB_STEPS_MM[i] - now))
        # between two steps, the nearest one on the way counts as the first step
        if steps > 0 and SLAB_STEPS_MM[at] > now:
            steps -= 1
        elif steps < 0 and SLAB_STEPS_MM[at] < now:
            steps += 1
        to = SLAB_STEPS_MM[min(max(at + steps, 0), len(SLAB_STEPS_MM) - 1)]
        self.set_slab(Slab(self.slab.kind, to))
