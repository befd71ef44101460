"""Link groups: viewports that scroll, window and zoom together, each link switchable.

Scrolling: when one member shows another slice, every other member goes to the slice at the
same anatomical position if both series share a Frame of Reference and their slices are
(nearly) parallel: the slice of the target whose plane is nearest the source slice's centre,
measured along the target's normal, so two series with different slice spacing meet at the
same place within half a target slice. Otherwise (different Frame of Reference - a prior
study -, no geometry, or crossing planes) by index. Each member carries a user-set offset: in mm
for position linking, in slices for index linking; ``capture_offsets`` records the members'
present relative positions as the offsets ("link here", after aligning a prior by hand).

Window/level is copied between members of the same modality only (a CT window on an MR whites
it out); zoom is copied scaled by the pixel spacings, so linked images show the same mm per
screen pixel; pan is copied as is.

No feedback loops: a group ignores the events it causes itself while it propagates one change.
Planes come from the slices' headers (``reference_lines.stack_planes``); a viewport showing a
reformat supplies its planes through the ``planes`` callable given to the group.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from psygnal import Signal

from core.viewer.reference_lines import ImagePlane, PlaneStack, same_frame, stack_planes
from core.viewer.state import ViewerState

PlaneSource = Callable[[ViewerState], Sequence[ImagePlane | None]]
_PARALLEL_COS = 0.9  # normals within ~25 degrees: "the same orientation" for position linking


@dataclass
class Member:
    state: ViewerState
    offset_mm: float = 0.0  # position linking: this member sits offset_mm further along its normal
    offset_slices: int = 0  # index linking: this member sits offset_slices further
    handlers: tuple[tuple[Any, Callable[..., None]], ...] = ()


def _planes_from_headers(state: ViewerState) -> Sequence[ImagePlane | None]:
    return stack_planes(state.slices)


class _Cache:
    """Planes per state, recomputed when its series or slice list changes."""

    def __init__(self, source: PlaneSource) -> None:
        self.source = source
        self._memo: dict[int, tuple[tuple[str, int, int], PlaneStack]] = {}

    def get(self, state: ViewerState) -> PlaneStack:
        uid = state.series.series_instance_uid if state.series is not None else ""
        key = (uid, len(state.slices), id(state.slices))
        hit = self._memo.get(id(state))
        if hit is None or hit[0] != key:
            hit = (key, PlaneStack(self.source(state)))
            self._memo[id(state)] = hit
        return hit[1]


class LinkGroup:
    """Viewports linked together; ``scroll``, ``window`` and ``zoom_pan`` switch each link."""

    changed = Signal()  # members, links or offsets changed

    def __init__(
        self,
        states: Sequence[ViewerState] = (),
        *,
        scroll: bool = True,
        window: bool = True,
        zoom_pan: bool = True,
        planes: PlaneSource | None = None,
    ) -> None:
        self.members: list[Member] = []
        self.scroll, self.window, self.zoom_pan = scroll, window, zoom_pan
        self._planes = _Cache(planes or _planes_from_headers)
        self._busy = False
        for s in states:
            self.add(s)

    # --- membership ----------------------------------------------------------------------
    def _member(self, state: ViewerState) -> Member:
        for m in self.members:
            if m.state is state:
                return m
        raise KeyError("that viewport is not in this link group")

    def __contains__(self, state: object) -> bool:
        return any(m.state is state for m in self.members)

    def add(self, state: ViewerState) -> None:
        if state in self:
            return
        ev = state.viewport.events
        handlers = (
            (ev.slice_index, lambda *_: self._on_slice(state)),
            (ev.window_center, lambda *_: self._on_window(state)),
            (ev.window_width, lambda *_: self._on_window(state)),
            (ev.preset, lambda *_: self._on_window(state)),
            (ev.zoom, lambda *_: self._on_zoom(state)),
            (ev.fit, lambda *_: self._on_zoom(state)),
            (ev.pan, lambda *_: self._on_zoom(state)),
        )
        for signal, fn in handlers:
            signal.connect(fn)
        self.members.append(Member(state, handlers=handlers))
        self.changed.emit()

    def remove(self, state: ViewerState) -> None:
        m = self._member(state)
        for signal, fn in m.handlers:
            signal.disconnect(fn)
        self.members.remove(m)
        self.changed.emit()

    def set_links(
        self,
        *,
        scroll: bool | None = None,
        window: bool | None = None,
        zoom_pan: bool | None = None,
    ) -> None:
        """Switch links on or off (None leaves one as it is)."""
        if scroll is not None:
            self.scroll = scroll
        if window is not None:
            self.window = window
        if zoom_pan is not None:
            self.zoom_pan = zoom_pan
        self.changed.emit()

    # --- geometry ------------------------------------------------------------------------
    def planes(self, state: ViewerState) -> PlaneStack:
        return self._planes.get(state)

    def current_plane(self, state: ViewerState) -> ImagePlane | None:
        planes = self.planes(state)
        i = state.viewport.slice_index
        return planes[i] if 0 <= i < len(planes) else None

    def by_position(self, a: ViewerState, b: ViewerState) -> bool:
        """Whether a and b link by anatomical position (same FoR, parallel slices)."""
        pa, pb = self.current_plane(a), self.current_plane(b)
        if pa is None or pb is None or not same_frame(pa, pb):
            return False
        return abs(float(pa.normal @ pb.normal)) >= _PARALLEL_COS

    def _position_target(self, src: Member, dst: Member) -> int | None:
        plane = self.current_plane(src.state)
        planes = self.planes(dst.state)
        ref = planes.first()
        if plane is None or ref is None:
            return None
        n = ref.normal
        sign = 1.0 if float(plane.normal @ n) >= 0 else -1.0
        # where the source would be without its offset, then where the target wants to be
        point = plane.centre - src.offset_mm * sign * n + dst.offset_mm * n
        return planes.nearest(point)

    def _index_target(self, src: Member, dst: Member) -> int:
        return src.state.viewport.slice_index - src.offset_slices + dst.offset_slices

    # --- propagation -----------------------------------------------------------------------
    def _propagate(self, source: ViewerState, apply: Callable[[Member, Member], None]) -> None:
        if self._busy or source not in self:
            return
        self._busy = True
        try:
            src = self._member(source)
            for dst in self.members:
                if dst is not src and dst.state.series is not None:
                    apply(src, dst)
        finally:
            self._busy = False

    def _on_slice(self, state: ViewerState) -> None:
        if self.scroll:
            self._propagate(state, self._scroll_one)

    def _scroll_one(self, src: Member, dst: Member) -> None:
        target = None
        if self.by_position(src.state, dst.state):
            target = self._position_target(src, dst)
        if target is None:
            target = self._index_target(src, dst)
        dst.state.set_slice(target)

    def _on_window(self, state: ViewerState) -> None:
        if self.window:
            self._propagate(state, self._window_one)

    @staticmethod
    def _window_one(src: Member, dst: Member) -> None:
        a, b = src.state.series, dst.state.series
        if a is None or b is None or a.modality.upper() != b.modality.upper():
            return
        vp = src.state.viewport
        dst.state.viewport.set_window(vp.window_center, vp.window_width, preset=vp.preset)

    def _on_zoom(self, state: ViewerState) -> None:
        if self.zoom_pan:
            self._propagate(state, self._zoom_one)

    @staticmethod
    def _spacing(state: ViewerState) -> float | None:
        ref = state.current_slice()
        spacing = ref.instance.pixel_spacing if ref is not None else None
        return spacing[1] if spacing else None

    def _zoom_one(self, src: Member, dst: Member) -> None:
        vp = src.state.viewport
        zoom = vp.zoom
        a, b = self._spacing(src.state), self._spacing(dst.state)
        if a and b:
            zoom = vp.zoom * b / a  # same mm per screen pixel
        zoom = float(np.clip(zoom, 1 / 64, 64.0))
        dst.state.viewport.update({"zoom": zoom, "fit": vp.fit, "pan": vp.pan})

    # --- offsets and the crosshair ---------------------------------------------------------
    def set_offset(
        self, state: ViewerState, *, mm: float | None = None, slices: int | None = None
    ) -> None:
        """The user's offset for one member (mm for position linking, slices for index)."""
        m = self._member(state)
        if mm is not None:
            m.offset_mm = float(mm)
        if slices is not None:
            m.offset_slices = int(slices)
        self.changed.emit()

    def capture_offsets(self) -> None:
        """Keep the members where they are now: their present differences become the offsets."""
        if not self.members:
            return
        ref = self.members[0]
        ref.offset_mm, ref.offset_slices = 0.0, 0
        ref_plane = self.current_plane(ref.state)
        for m in self.members[1:]:
            m.offset_slices = m.state.viewport.slice_index - ref.state.viewport.slice_index
            plane = self.current_plane(m.state)
            if ref_plane is not None and plane is not None and self.by_position(ref.state, m.state):
                m.offset_mm = float((plane.centre - ref_plane.centre) @ plane.normal)
            else:
                m.offset_mm = 0.0
        self.changed.emit()

    def goto_point(
        self, point: Sequence[float] | npt.NDArray[np.float64], frame_of_reference: str
    ) -> list[ViewerState]:
        """The crosshair: every member in that Frame of Reference goes to the slice nearest
        ``point`` (patient mm). Returns the members moved; others (another FoR) stay."""
        moved: list[ViewerState] = []
        self._busy = True
        try:
            for m in self.members:
                planes = self.planes(m.state)
                ref = planes.first()
                if ref is None or not frame_of_reference:
                    continue
                if ref.frame_of_reference != frame_of_reference:
                    continue
                j = planes.nearest(np.asarray(point, dtype=np.float64))
                if j is not None:
                    m.state.set_slice(j)
                    moved.append(m.state)
        finally:
            self._busy = False
        return moved
