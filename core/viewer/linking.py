"""Link groups: viewports that scroll, window and zoom together, each link switchable.

Scrolling: when one member shows another slice, every other member goes to the slice at the
same anatomical position if both series share a Frame of Reference and their slices are
(nearly) parallel: the slice of the target whose plane is nearest the source slice's centre,
measured along the target's normal, so two series with different slice spacing meet at the
same place within half a target slice. Crossing planes of one Frame of Reference do not move
each other (an axial index means nothing to a coronal stack; the reference lines show where
one cuts the other). Otherwise (different Frame of Reference - a prior study -, or no
geometry) by index. Each member carries a user-set offset: in mm
for position linking, in slices for index linking; ``capture_offsets`` records the members'
present relative positions as the offsets ("link here", after aligning a prior by hand).

Window/level is copied between members of the same modality only (a CT window on an MR whites
it out); zoom is copied scaled by the pixel spacings, so linked images show the same mm per
screen pixel; pan is copied as is.

Each member can leave the links and come back (``set_linked``): an unlinked member neither
drives the others nor follows them, nor goes to the crosshair.

Reformats: a member whose viewport paints a reformat (``set_reformat`` with its ``MprView``) is
at the view's plane, not at its series' acquired slice. It links by position only: scrolling it
moves the members whose current plane is parallel to it in the same Frame of Reference (other
cells of that orientation, acquired or reformatted), and a parallel member scrolled elsewhere
moves it (``MprView.goto``); crossing planes do not move (their reference lines follow). An
index has no meaning between a reformat and a stack, so a reformat never links by index.

The crosshair (``goto_point``) moves every linked member of the point's Frame of Reference
through the point (a reformat by ``goto``, a stack to its nearest slice) and keeps the point
(``crosshair``), so each viewport whose plane holds it within half a slice (``holds``) marks it.

No feedback loops: a group ignores the events it causes itself while it propagates one change.
Planes come from the slices' headers (``reference_lines.stack_planes``) unless a ``planes``
callable is given to the group.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
from psygnal import Signal

from core.viewer.reference_lines import ImagePlane, PlaneStack, Vec, same_frame, stack_planes
from core.viewer.state import ViewerState

if TYPE_CHECKING:
    from core.viewer.mpr import MprView

PlaneSource = Callable[[ViewerState], Sequence[ImagePlane | None]]
_PARALLEL_COS = 0.9  # normals within ~25 degrees: "the same orientation" for position linking


@dataclass
class Member:
    state: ViewerState
    offset_mm: float = 0.0  # position linking: this member sits offset_mm further along its normal
    offset_slices: int = 0  # index linking: this member sits offset_slices further
    handlers: tuple[tuple[Any, Callable[..., None]], ...] = ()
    linked: bool = True  # False: the viewport left the links (keeps its offsets for its return)
    view: MprView | None = None  # the reformat this viewport paints, if any
    # the view's (reformat, index) last seen: a scroll is another index of the same reformat;
    # another plane or an oblique turn replaces the reformat and moves nobody else
    view_key: tuple[int, int] = (0, -1)
    view_handler: Callable[[], None] | None = None


@dataclass(frozen=True)
class Crosshair:
    """The last crosshair point (patient mm) and the Frame of Reference it belongs to."""

    point: tuple[float, float, float]
    frame_of_reference: str


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

    changed = Signal()  # members, links, offsets or the crosshair changed

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
        self.crosshair: Crosshair | None = None
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
            (state.series_changed, lambda *_: self.set_reformat(state, None)),
        )
        for signal, fn in handlers:
            signal.connect(fn)
        self.members.append(Member(state, handlers=handlers))
        self.changed.emit()

    def remove(self, state: ViewerState) -> None:
        m = self._member(state)
        self._detach_view(m)
        for signal, fn in m.handlers:
            signal.disconnect(fn)
        self.members.remove(m)
        self.changed.emit()

    def set_linked(self, state: ViewerState, on: bool) -> None:
        """Let one viewport leave the links (False) or rejoin them (True)."""
        m = self._member(state)
        if m.linked != on:
            m.linked = on
            self.changed.emit()

    def is_linked(self, state: ViewerState) -> bool:
        return self._member(state).linked

    def offsets(self, state: ViewerState) -> tuple[float, int]:
        """One member's (mm, slices) offsets."""
        m = self._member(state)
        return m.offset_mm, m.offset_slices

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

    # --- reformats -----------------------------------------------------------------------
    def set_reformat(self, state: ViewerState, view: MprView | None) -> None:
        """The reformat a member's viewport paints now (None: its acquired slices). A series
        change forgets it: the viewport builds a new view for the new series."""
        m = self._member(state)
        if m.view is view:
            return
        self._detach_view(m)
        if view is not None:
            m.view, m.view_key = view, (id(view.reformat), view.index)
            m.view_handler = lambda: self._on_view(m)
            view.changed.connect(m.view_handler)

    def reformat(self, state: ViewerState) -> MprView | None:
        return self._member(state).view

    @staticmethod
    def _detach_view(m: Member) -> None:
        if m.view is not None and m.view_handler is not None:
            m.view.changed.disconnect(m.view_handler)
        m.view, m.view_handler, m.view_key = None, None, (0, -1)

    def _on_view(self, m: Member) -> None:
        view = m.view
        if view is None:
            return
        old, m.view_key = m.view_key, (id(view.reformat), view.index)
        if self.scroll and old[0] == m.view_key[0] and old[1] != view.index:  # a scroll
            self._propagate(m.state, self._scroll_one)

    # --- geometry ------------------------------------------------------------------------
    def planes(self, state: ViewerState) -> PlaneStack:
        """The member's acquired slices' planes (its series, whatever its viewport paints)."""
        return self._planes.get(state)

    @staticmethod
    def frame_of_reference(state: ViewerState) -> str:
        if not state.slices:
            return ""
        return state.slices[0].instance.frame_of_reference_uid or ""

    def current_plane(self, state: ViewerState) -> ImagePlane | None:
        """The plane the member's viewport shows now: its reformat's, else its slice's."""
        view = self._member(state).view if state in self else None
        if view is not None:
            return ImagePlane.from_reformat(view.plane(), self.frame_of_reference(state))
        planes = self.planes(state)
        i = state.viewport.slice_index
        return planes[i] if 0 <= i < len(planes) else None

    def half_slice(self, state: ViewerState) -> float:
        """Half the distance between the member's neighbouring planes (mm), or half its thick
        slab when it shows one: how far from its current plane a point is still in the image."""
        view = self._member(state).view if state in self else None
        if view is not None:
            slab = view.slab.thickness_mm if view.slab is not None else 0.0
            return max(view.reformat.step, slab) / 2
        return self.planes(state).spacing() / 2

    def holds(self, state: ViewerState, point: Sequence[float] | Vec) -> bool:
        """Whether the member's current plane passes within half a slice of ``point``."""
        plane = self.current_plane(state)
        if plane is None:
            return False
        return abs(plane.distance(point)) <= self.half_slice(state) + 1e-6

    def by_position(self, a: ViewerState, b: ViewerState) -> bool:
        """Whether a and b link by anatomical position (same FoR, parallel slices)."""
        pa, pb = self.current_plane(a), self.current_plane(b)
        if pa is None or pb is None or not same_frame(pa, pb):
            return False
        return abs(float(pa.normal @ pb.normal)) >= _PARALLEL_COS

    def _position_point(self, src: Member, dst: Member) -> Vec | None:
        """Where ``dst`` wants to be when ``src`` is where it is (offsets included)."""
        plane, target = self.current_plane(src.state), self.current_plane(dst.state)
        if dst.view is None:
            target = self.planes(dst.state).first()
        if plane is None or target is None:
            return None
        n = target.normal
        sign = 1.0 if float(plane.normal @ n) >= 0 else -1.0
        # where the source would be without its offset, then where the target wants to be
        return np.asarray(
            plane.centre - src.offset_mm * sign * n + dst.offset_mm * n, dtype=np.float64
        )

    def _index_target(self, src: Member, dst: Member) -> int:
        return src.state.viewport.slice_index - src.offset_slices + dst.offset_slices

    @staticmethod
    def _goto(m: Member, stack: PlaneStack, point: Vec) -> bool:
        """Move one member through ``point``; False when it has no geometry for it."""
        if m.view is not None:
            m.view.goto(point)
            return True
        j = stack.nearest(point)
        if j is None:
            return False
        m.state.set_slice(j)
        return True

    # --- propagation -----------------------------------------------------------------------
    def _propagate(self, source: ViewerState, apply: Callable[[Member, Member], None]) -> None:
        if self._busy or source not in self:
            return
        src = self._member(source)
        if not src.linked:
            return
        self._busy = True
        try:
            for dst in self.members:
                if dst is not src and dst.linked and dst.state.series is not None:
                    apply(src, dst)
        finally:
            self._busy = False

    def _on_slice(self, state: ViewerState) -> None:
        if self.scroll and self._member(state).view is None:  # a reformat scrolls its view
            self._propagate(state, self._scroll_one)

    def _scroll_one(self, src: Member, dst: Member) -> None:
        a, b = self.current_plane(src.state), self.current_plane(dst.state)
        if a is not None and b is not None and same_frame(a, b):
            if abs(float(a.normal @ b.normal)) >= _PARALLEL_COS:
                point = self._position_point(src, dst)
                if point is not None:
                    self._goto(dst, self.planes(dst.state), point)
            return  # crossing planes of one patient space: the reference lines show where
        if src.view is None and dst.view is None:  # by index: stacks only
            dst.state.set_slice(self._index_target(src, dst))

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
    def _spacing(m: Member) -> float | None:
        """mm per image pixel across: the reformat's square pixels, else the slice's columns."""
        if m.view is not None:
            return float(m.view.plane().pixel_size)
        ref = m.state.current_slice()
        spacing = ref.instance.pixel_spacing if ref is not None else None
        return spacing[1] if spacing else None

    def _zoom_one(self, src: Member, dst: Member) -> None:
        vp = src.state.viewport
        zoom = vp.zoom
        a, b = self._spacing(src), self._spacing(dst)
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
            if not np.isfinite(mm):
                raise ValueError(f"link offset {mm} mm is not a number of millimetres")
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
        """The crosshair: every linked member in that Frame of Reference goes through ``point``
        (patient mm): a reformat to its plane through it, a stack to its nearest slice. The
        point is kept as ``crosshair``. Returns the members moved; others (another FoR,
        unlinked) stay."""
        p = np.asarray(point, dtype=np.float64)
        moved: list[ViewerState] = []
        self._busy = True
        try:
            for m in self.members:
                if not m.linked or not frame_of_reference:
                    continue
                if self.frame_of_reference(m.state) != frame_of_reference:
                    continue
                if self._goto(m, self.planes(m.state), p):
                    moved.append(m.state)
        finally:
            self._busy = False
        self.crosshair = Crosshair((float(p[0]), float(p[1]), float(p[2])), frame_of_reference)
        self.changed.emit()
        return moved

    def clear_crosshair(self) -> None:
        if self.crosshair is not None:
            self.crosshair = None
            self.changed.emit()
