"""Where each label goes: never on another label, near its annotation, the same every time.

Greedy and deterministic. Labels the user dragged (``pinned``) are placed first, where they were
put. Every other label, in a fixed order (top to bottom, left to right, then by key, whatever
order the caller passes), takes the nearest free candidate on a lattice around its annotation:
first one that covers no label, no annotation and stays in ``bounds``; failing that, one that
covers no label and stays in bounds; failing that, one that covers no label. The lattice grows
until one is found, so a label is always placed and never overlaps another unpinned one.

All rectangles are in one coordinate system of the caller's choosing (screen pixels, where
label sizes are known): ``Rect(top, left, bottom, right)``. Touching edges do not overlap.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache

from core.annotations.model import Annotation, Point


@dataclass(frozen=True)
class Rect:
    top: float
    left: float
    bottom: float
    right: float

    @property
    def height(self) -> float:
        return self.bottom - self.top

    @property
    def width(self) -> float:
        return self.right - self.left

    def intersects(self, other: Rect) -> bool:
        """Overlap with positive area (shared edges are allowed)."""
        return (
            self.left < other.right
            and other.left < self.right
            and self.top < other.bottom
            and other.top < self.bottom
        )

    def inside(self, other: Rect) -> bool:
        return (
            self.top >= other.top
            and self.left >= other.left
            and self.bottom <= other.bottom
            and self.right <= other.right
        )

    def gap(self, other: Rect) -> float:
        """Distance between the two rectangles (0 when they touch or overlap)."""
        dr = max(other.top - self.bottom, self.top - other.bottom, 0.0)
        dc = max(other.left - self.right, self.left - other.right, 0.0)
        return math.hypot(dr, dc)

    def at(self, top: float, left: float) -> Rect:
        return Rect(top, left, top + self.height, left + self.width)


@dataclass(frozen=True)
class LabelRequest:
    """One label to place: ``anchor`` is its annotation's bounding box, ``size`` the label's
    (height, width); ``pinned`` the top-left the user dragged it to, else None."""

    key: str
    anchor: Rect
    size: tuple[float, float]
    pinned: tuple[float, float] | None = None


Box = tuple[float, float, float, float]  # (top, left, bottom, right): the hot loop's Rect


class _Grid:
    """Boxes bucketed by cell, so a test looks at neighbours only (500 labels stay fast)."""

    def __init__(self, cell: float) -> None:
        self.cell = cell
        self.cells: defaultdict[tuple[int, int], list[Box]] = defaultdict(list)

    def add(self, r: Rect) -> None:
        box = (r.top, r.left, r.bottom, r.right)
        c = self.cell
        for i in range(math.floor(r.top / c), math.floor(r.bottom / c) + 1):
            for j in range(math.floor(r.left / c), math.floor(r.right / c) + 1):
                self.cells[(i, j)].append(box)

    def hits(self, top: float, left: float, bottom: float, right: float) -> bool:
        """Whether the box overlaps (with positive area) any box added."""
        c, cells = self.cell, self.cells
        for i in range(math.floor(top / c), math.floor(bottom / c) + 1):
            for j in range(math.floor(left / c), math.floor(right / c) + 1):
                for t, lf, b, rt in cells.get((i, j), ()):
                    if left < rt and lf < right and top < b and t < bottom:
                        return True
        return False


#: Lattice half-width (in label steps) searched before it grows; and the most it grows to.
_FIRST_RADIUS = 4
_MAX_RADIUS = 256


@lru_cache(maxsize=256)
def _offsets(
    anchor: tuple[float, float], size: tuple[float, float], gap: float, radius: int, inner: int
) -> tuple[tuple[float, float], ...]:
    """Lattice offsets (top, left) from the anchor's top-right corner, the preferred position
    being right of the anchor, top-aligned; those of the ``inner`` radius left out (tried
    already). Nearest to the anchor first, ties broken by a fixed order so placement is
    deterministic. Cached: crowded images repeat the same anchor and label sizes."""
    (ah, aw), (h, w) = anchor, size
    box, shape = Rect(0.0, 0.0, ah, aw), Rect(0.0, 0.0, h, w)
    step_r, step_c = h + gap, (w + gap) / 2
    found = []
    for i in range(-radius, radius + 1):
        for j in range(-2 * radius - 2, 2 * radius + 1):
            if abs(i) <= inner and -2 * inner - 2 <= j <= 2 * inner:
                continue
            top, left = i * step_r, aw + gap + j * step_c
            found.append((shape.at(top, left).gap(box), abs(i) + abs(j), i, j, top, left - aw))
    found.sort(key=lambda t: t[:4])
    return tuple((t[4], t[5]) for t in found)


def place_labels(
    requests: Sequence[LabelRequest], bounds: Rect | None = None, gap: float = 4.0
) -> dict[str, Rect]:
    """Each request's label rectangle, by key (see the module docstring for the rules)."""
    keys = [r.key for r in requests]
    if len(set(keys)) != len(keys):
        raise ValueError("label keys must be unique (one label per annotation)")
    for r in requests:
        if not (r.size[0] > 0 and r.size[1] > 0):
            raise ValueError(f"label '{r.key}': size {r.size} must be positive")
    if not requests:
        return {}
    cell = max(max(r.size[0] for r in requests), max(r.size[1] for r in requests) / 2, 1.0)
    labels, anchors = _Grid(cell), _Grid(cell)
    for r in requests:
        anchors.add(r.anchor)
    placed: dict[str, Rect] = {}
    for r in requests:
        if r.pinned is not None:
            rect = Rect(0.0, 0.0, *r.size).at(*r.pinned)
            placed[r.key] = rect
            labels.add(rect)
    free = sorted(
        (r for r in requests if r.pinned is None),
        key=lambda r: (r.anchor.top, r.anchor.left, r.key),
    )
    for r in free:
        rect = _place_one(r, labels, anchors, bounds, gap)
        placed[r.key] = rect
        labels.add(rect)
    return {k: placed[k] for k in keys}


def _place_one(
    req: LabelRequest, labels: _Grid, anchors: _Grid, bounds: Rect | None, gap: float
) -> Rect:
    """The nearest candidate of the best tier found within the lattice: 0 covers nothing and
    is in bounds, 1 covers an annotation, 2 leaves the bounds; the lattice grows when every
    candidate covers a label (those already tried are skipped: labels are only added)."""
    h, w = req.size
    a = req.anchor
    radius, tried = _FIRST_RADIUS, -1
    while True:
        best: list[tuple[float, float] | None] = [None, None, None]
        for d_top, d_left in _offsets((a.height, a.width), req.size, gap, radius, tried):
            top, left = a.top + d_top, a.right + d_left
            bottom, right = top + h, left + w
            if labels.hits(top, left, bottom, right):
                continue
            if bounds is not None and not (
                top >= bounds.top
                and left >= bounds.left
                and bottom <= bounds.bottom
                and right <= bounds.right
            ):
                tier = 2
            elif anchors.hits(top, left, bottom, right):
                tier = 1
            else:
                return Rect(top, left, bottom, right)
            if best[tier] is None:
                best[tier] = (top, left)
        found = best[1] or best[2]
        if found is not None:
            return Rect(found[0], found[1], found[0] + h, found[1] + w)
        if radius >= _MAX_RADIUS:  # only with absurd crowding: below everything, always free
            lowest = max(box[2] for cell in labels.cells.values() for box in cell)
            return Rect(lowest + gap, a.right + gap, lowest + gap + h, a.right + gap + w)
        tried, radius = radius, radius * 2


def annotation_labels(
    annotations: Sequence[Annotation],
    to_view: Callable[[Point], tuple[float, float]],
    size: Callable[[Annotation], tuple[float, float]],
    bounds: Rect | None = None,
    gap: float = 4.0,
) -> dict[str, Rect]:
    """The labels of the annotations on one image, by UID, in view coordinates: ``to_view``
    maps an image (row, col) to the view's (y, x) (zoom, pan, rotation, flips), ``size`` gives
    each label's (height, width) as drawn. A dragged label (``label_pos``, kept in image
    coordinates so it follows zoom and pan) stays where the user put it."""
    requests = []
    for a in annotations:
        corners = [to_view(p) for p in a.points]
        ys, xs = [c[0] for c in corners], [c[1] for c in corners]
        pinned = to_view(a.label_pos) if a.label_pos is not None else None
        requests.append(
            LabelRequest(a.uid, Rect(min(ys), min(xs), max(ys), max(xs)), size(a), pinned)
        )
    return place_labels(requests, bounds, gap)
