"""The open studies, the current series and its loaded frames, as an evented plain object.

Loading happens elsewhere (a worker in desktop/, or a script): it calls ``set_frame`` as
slices arrive, in any order, and views repaint on ``frame_loaded``. Nothing here does I/O.
"""

from __future__ import annotations

import numpy as np
from psygnal import Signal

from core.imaging.model import (
    Frame,
    Instance,
    LoadError,
    Patient,
    Series,
    SliceRef,
    Study,
    StudyIndex,
)
from core.imaging.volume import slice_refs
from core.viewer import release
from core.viewer.measure import Measurement
from core.viewer.presets import AUTO, REGION, PresetBook, PresetError, preset_for_key, window_for
from core.viewer.release import release_later
from core.viewer.viewport import Viewport


def _key(ref: SliceRef) -> tuple[str, int]:
    """What identifies a slice across re-sorts: instance paths are unique within an index."""
    return ref.instance.path, ref.frame


def slice_position(instance: Instance, frame: int = 0) -> float | None:
    """Position along the slice normal in mm (ImagePositionPatient . normal), else SliceLocation.

    For an enhanced multi-frame instance, ``frame``'s own position (PlanePositionSequence)."""
    position = instance.image_position
    if instance.frame_positions is not None and 0 <= frame < len(instance.frame_positions):
        position = instance.frame_positions[frame]
    if position is not None and instance.image_orientation is not None:
        o = instance.image_orientation
        normal = np.cross(np.array(o[:3]), np.array(o[3:]))
        return float(np.dot(np.array(position), normal))
    return instance.slice_location


def merge_index(into: StudyIndex, new: StudyIndex) -> None:
    """Add patients/studies/series (and new instances of open series) of ``new`` to ``into``."""
    from core.imaging.index import merge

    merge(into, new)


class ViewerState:
    """What the viewer shows; every change is announced through a psygnal signal."""

    index_changed = Signal(object)  # the merged StudyIndex
    errors_added = Signal(list)  # list[LoadError], only the new ones
    series_changed = Signal(object)  # Series | None; also when its slice list is refreshed
    frame_loaded = Signal(int)  # slice index now available
    load_progress = Signal(int, int)  # (loaded, total)
    measurements_changed = Signal()
    hide_phi_changed = Signal(bool)
    # a view painted this slice with its own frame (a loader waiting for the first paint goes on)
    frame_shown = Signal(int)

    def __init__(self, presets: PresetBook | None = None) -> None:
        self.index = StudyIndex()
        self.presets = presets or PresetBook()  # the user's own window presets
        release.start()  # before any series loads (core.viewer.release)
        self.viewport = Viewport()
        self.series: Series | None = None
        self.slices: list[SliceRef] = []
        self.frames: list[Frame | None] = []
        self.measurements: list[Measurement] = []
        self.failed: dict[int, str] = {}  # slice index -> why it cannot be shown
        self._loaded = 0
        self._hide_phi = False

    # --- studies -------------------------------------------------------------------------
    def add_index(self, new: StudyIndex) -> None:
        merge_index(self.index, new)
        if new.errors or new.warnings:
            self.errors_added.emit(list(new.errors) + list(new.warnings))
        self.index_changed.emit(self.index)

    def add_errors(self, errors: list[LoadError]) -> None:
        self.index.errors.extend(errors)
        self.errors_added.emit(list(errors))

    def find_series(self, series_uid: str) -> tuple[Patient, Study, Series]:
        for patient, study, series in self.index.iter_series():
            if series.series_instance_uid == series_uid:
                return patient, study, series
        raise KeyError(f"series '{series_uid}' is not in the open studies")

    def context(self) -> tuple[Patient, Study] | None:
        """Patient and study of the current series (for the overlay)."""
        if self.series is None:
            return None
        patient, study, _ = self.find_series(self.series.series_instance_uid)
        return patient, study

    # --- current series ------------------------------------------------------------------
    def set_series(self, series: Series | None) -> None:
        """Make a series current: no frame loaded yet, slice in the middle, geometry reset."""
        self.series = series
        self.slices = slice_refs(series) if series is not None else []
        release_later(self.frames)  # hundreds of MB: freed off this (the GUI) thread
        self.frames = [None] * len(self.slices)
        self._loaded = 0
        self.failed = {}
        self.measurements = []
        vp = self.viewport
        vp.update({"cine_playing": False, "preset": AUTO, "invert": False})
        vp.reset_geometry()
        vp.slice_index = len(self.slices) // 2 if len(self.slices) > 2 else 0
        self.series_changed.emit(series)
        self.measurements_changed.emit()

    def refresh_slices(self) -> list[int]:
        """Recompute the slice list after the current series gained or re-sorted instances
        (indexing finished after a provisional first image, or more files were opened).

        Loaded frames and measurements follow their (instance, frame), so they stay on the right
        image; the slice on screen stays on screen at its new position; window, zoom and pan are
        kept. ``series_changed`` fires again (slider range, caches). Returns the slice indices
        still to load.
        """
        series = self.series
        if series is None:
            return []
        new = slice_refs(series)
        where = {_key(r): i for i, r in enumerate(new)}
        frames: list[Frame | None] = [None] * len(new)
        for ref, frame in zip(self.slices, self.frames, strict=True):
            j = where.get(_key(ref))
            if j is not None and frame is not None:
                frames[j] = frame
        kept: list[Measurement] = []
        for m in self.measurements:
            j = (
                where.get(_key(self.slices[m.slice_index]))
                if m.slice_index < len(self.slices)
                else None
            )
            if j is not None:
                m.slice_index = j
                kept.append(m)
        current = self.current_slice()
        target = where.get(_key(current)) if current is not None else None
        if target is None:
            target = len(new) // 2 if len(new) > 2 else 0
        self.slices, self.frames, self.measurements = new, frames, kept
        self._loaded = sum(f is not None for f in frames)
        self.failed = {}  # slices still missing are tried again
        self.viewport.slice_index = target
        self.series_changed.emit(series)
        self.measurements_changed.emit()
        return [i for i, f in enumerate(frames) if f is None]

    @property
    def slice_count(self) -> int:
        return len(self.slices)

    @property
    def loaded_count(self) -> int:
        return self._loaded  # kept up to date by set_frame: O(1) per arriving slice

    def set_frames(self, items: list[tuple[int, Frame]]) -> None:
        """Store a batch of decoded slices: ``frame_loaded`` for each, ``load_progress`` once."""
        for index, frame in items:
            self.set_frame(index, frame, progress=False)
        if items:
            self.load_progress.emit(self.loaded_count, len(self.frames))

    def set_frame(self, index: int, frame: Frame, progress: bool = True) -> None:
        """Store a decoded slice; the first one of a series sets the 'auto' window."""
        if not 0 <= index < len(self.frames):
            raise IndexError(f"slice {index} outside series of {len(self.frames)} slices")
        first = self._loaded == 0
        if self.frames[index] is None:
            self._loaded += 1
        self.frames[index] = frame
        if first and self.viewport.preset == AUTO and not frame.is_color:
            center, width = window_for(AUTO, frame)
            self.viewport.set_window(center, width, preset=AUTO)
        self.frame_loaded.emit(index)
        if progress:
            self.load_progress.emit(self.loaded_count, len(self.frames))

    @property
    def settled_count(self) -> int:
        """Slices whose load has ended: decoded, or failed with a reason."""
        return self._loaded + len(self.failed)

    def mark_failed(self, index: int, reason: str) -> None:
        """A slice that cannot be decoded: shown as such, never as a neighbour's pixels."""
        if 0 <= index < len(self.frames) and self.frames[index] is None:
            self.failed[index] = reason
            self.frame_loaded.emit(index)
            self.load_progress.emit(self.loaded_count, len(self.frames))

    def current_failure(self) -> str | None:
        return self.failed.get(self.viewport.slice_index)

    def current_frame(self) -> Frame | None:
        i = self.viewport.slice_index
        return self.frames[i] if 0 <= i < len(self.frames) else None

    def current_slice(self) -> SliceRef | None:
        i = self.viewport.slice_index
        return self.slices[i] if 0 <= i < len(self.slices) else None

    def nearest_loaded(self, index: int) -> Frame | None:
        """The loaded frame nearest to a slice (shown while that slice is still loading)."""
        for d in range(len(self.frames)):
            for j in (index - d, index + d):
                if 0 <= j < len(self.frames) and self.frames[j] is not None:
                    return self.frames[j]
        return None

    def set_slice(self, index: int) -> None:
        if self.slices:
            self.viewport.slice_index = min(max(index, 0), len(self.slices) - 1)

    def step_slice(self, delta: int, wrap: bool = False) -> None:
        n = len(self.slices)
        if not n:
            return
        i = self.viewport.slice_index + delta
        self.set_slice(i % n if wrap else i)

    @property
    def modality(self) -> str:
        """The current series' modality ("" with none): it decides which presets apply."""
        return self.series.modality if self.series is not None else ""

    def apply_preset(self, name: str) -> None:
        """Apply a window preset by name ('auto' uses the current slice's own window); a preset
        of another modality (the CT brain window on an MR) raises PresetError."""
        frame = self.current_frame() or self.nearest_loaded(self.viewport.slice_index)
        center, width = window_for(name, frame, self.modality, self.presets.presets)
        self.viewport.set_window(center, width, preset=name)

    def apply_preset_key(self, key: int) -> None:
        """Key 0: 'auto'; keys 1..9: the current modality's presets in order (PresetError when
        it has fewer). A key never reaches another modality's preset."""
        if key == 0:
            self.apply_preset(AUTO)
            return
        preset = preset_for_key(self.modality, key, self.presets.presets)
        if preset is None:
            shown = self.modality or "this image"
            raise PresetError(f"no window preset on key {key} for {shown}")
        self.apply_preset(preset.name)

    def window_from_region(self, rows: tuple[int, int], cols: tuple[int, int]) -> None:
        """Set the window from a rectangle of the current slice (its robust min/max)."""
        from core.imaging.presets import region_window

        frame = self.current_frame()
        if frame is None or frame.is_color:
            raise PresetError("a window from a region needs a loaded grayscale image")
        center, width = region_window(frame.values, rows, cols)
        self.viewport.set_window(center, width, preset=REGION)

    # --- measurements --------------------------------------------------------------------
    def add_measurement(self, m: Measurement) -> None:
        self.measurements.append(m)
        self.measurements_changed.emit()

    def clear_measurements(self) -> None:
        self.measurements = []
        self.measurements_changed.emit()

    def measurements_on_slice(self, index: int) -> list[Measurement]:
        return [m for m in self.measurements if m.slice_index == index]

    # --- identifying text ----------------------------------------------------------------
    @property
    def hide_phi(self) -> bool:
        return self._hide_phi

    @hide_phi.setter
    def hide_phi(self, value: bool) -> None:
        if value != self._hide_phi:
            self._hide_phi = value
            self.hide_phi_changed.emit(value)
