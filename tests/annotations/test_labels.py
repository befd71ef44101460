"""Label placement: crowded annotations never get overlapping labels, each label stays near
its annotation, dragged labels stay put, and the result does not depend on input order."""

from __future__ import annotations

import itertools
import random
import time

import pytest

from core.annotations.labels import LabelRequest, Rect, annotation_labels, place_labels
from core.annotations.model import AcquiredImage, Annotation, Kind


def _grid(
    n_side: int, pitch: float, size: tuple[float, float] = (30.0, 110.0)
) -> list[LabelRequest]:
    """ROIs of 20x20 on a grid ``pitch`` apart: their labels (3 lines of ROI statistics) are
    far larger than the gaps between them."""
    out = []
    for i, j in itertools.product(range(n_side), range(n_side)):
        top, left = 50 + i * pitch, 50 + j * pitch
        out.append(LabelRequest(f"roi-{i}-{j}", Rect(top, left, top + 20, left + 20), size))
    return out


def _no_overlaps(placed: dict[str, Rect], skip: set[str] = frozenset()) -> None:
    keys = sorted(placed)
    for a, b in itertools.combinations(keys, 2):
        if a in skip and b in skip:
            continue  # two labels the user put on each other
        assert not placed[a].intersects(placed[b]), (a, placed[a], b, placed[b])


def test_thirty_rois_close_together_get_labels_that_never_overlap() -> None:
    requests = _grid(6, 25.0)[:30]
    placed = place_labels(requests, bounds=Rect(0, 0, 512, 512))
    assert set(placed) == {r.key for r in requests}
    _no_overlaps(placed)
    gaps = sorted(placed[r.key].gap(r.anchor) for r in requests)
    for r in requests:
        assert (placed[r.key].height, placed[r.key].width) == r.size
    # Near: 30 labels of 30x110 cannot all touch a 145-px block of ROIs. Packed perfectly in
    # a ring around the block, half of them would lie within d_half of it and all within
    # d_all (60 and 101 px). The greedy placement measured 125 and 259 px: bounded here at
    # 2.5x and 3x of the ideal packing, so a placement that scatters labels fails.
    block = 5 * 25 + 20
    d_half = (((block**2 + 15 * 30 * 110) ** 0.5) - block) / 2
    d_all = (((block**2 + 30 * 30 * 110) ** 0.5) - block) / 2
    assert gaps[len(gaps) // 2] <= 2.5 * d_half
    assert gaps[-1] <= 3 * d_all
    assert gaps[0] <= 4.0 + 1e-9  # the first label touches its ROI (4 px gap)


def test_a_lone_label_sits_beside_its_annotation_without_covering_it() -> None:
    (req,) = _grid(1, 0)
    rect = place_labels([req])[req.key]
    assert not rect.intersects(req.anchor)
    assert rect.gap(req.anchor) <= 4.0 + 1e-9


def test_placement_is_deterministic_whatever_the_input_order() -> None:
    requests = _grid(7, 22.0)
    first = place_labels(requests, bounds=Rect(0, 0, 400, 400))
    shuffled = requests[:]
    random.Random(7).shuffle(shuffled)
    assert place_labels(shuffled, bounds=Rect(0, 0, 400, 400)) == first


def test_dragged_labels_stay_where_put_and_others_avoid_them() -> None:
    requests = _grid(5, 24.0)
    pinned = {
        requests[0].key: (60.0, 60.0),  # on top of the ROI grid
        requests[7].key: (61.0, 70.0),  # and overlapping the first pinned label
    }
    requests = [LabelRequest(r.key, r.anchor, r.size, pinned.get(r.key)) for r in requests]
    placed = place_labels(requests)
    for key, (top, left) in pinned.items():
        assert (placed[key].top, placed[key].left) == (top, left)
    _no_overlaps(placed, skip=set(pinned))


def test_five_hundred_labels_place_quickly_and_never_overlap() -> None:
    requests = _grid(23, 18.0)[:500]
    start = time.perf_counter()
    placed = place_labels(requests, bounds=Rect(0, 0, 512, 512))
    elapsed = time.perf_counter() - start
    _no_overlaps(placed)
    assert elapsed < 5.0  # generous on a shared 2-core machine; about 0.6 s alone


def test_bad_requests_are_refused() -> None:
    (req,) = _grid(1, 0)
    with pytest.raises(ValueError, match="unique"):
        place_labels([req, req])
    with pytest.raises(ValueError, match="must be positive"):
        place_labels([LabelRequest("x", req.anchor, (0.0, 10.0))])


def test_annotation_labels_follow_the_view_and_keep_dragged_labels() -> None:
    image = AcquiredImage("1.2.3", 0, (0.5, 0.5))
    rois = [
        Annotation(
            Kind.ELLIPSE,
            [(40 + 12 * i, 40 + 12 * j), (50 + 12 * i, 50 + 12 * j)],
            image,
            "1.2.826.0.1.1",
            "1.2.826.0.1.2",
            label_pos=(0.0, 0.0) if (i, j) == (2, 2) else None,
        )
        for i in range(6)
        for j in range(5)
    ]

    def to_view(p: tuple[float, float]) -> tuple[float, float]:
        """Zoom 2, image rotated 90 degrees clockwise in a 600 px view, panned by 10 px."""
        row, col = p
        return (2 * col + 10, 600 - 2 * row + 10)

    placed = annotation_labels(rois, to_view, lambda a: (30.0, 110.0), Rect(0, 0, 600, 620))
    assert set(placed) == {a.uid for a in rois}
    pinned = rois[2 * 5 + 2]
    assert (placed[pinned.uid].top, placed[pinned.uid].left) == to_view((0.0, 0.0))
    _no_overlaps(placed)
    first = rois[0]  # its label sits beside its ROI as drawn (rotated, zoomed), not the image's
    ys = [to_view(p)[0] for p in first.points]
    xs = [to_view(p)[1] for p in first.points]
    anchor = Rect(min(ys), min(xs), max(ys), max(xs))
    assert placed[first.uid].gap(anchor) < 4 * 30
