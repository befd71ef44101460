"""Link groups: by anatomical position within half a slice, by index with an offset, W/L and
zoom/pan, each link switchable, no feedback loops, the crosshair."""

from __future__ import annotations

import numpy as np
import pytest

from core.imaging.model import Series
from core.viewer.linking import LinkGroup
from core.viewer.state import ViewerState
from tests.viewer.synthetic import CORONAL, stack


def shown(series: Series) -> ViewerState:
    state = ViewerState()
    state.set_series(series)
    return state


def z_of(state: ViewerState) -> float:
    ref = state.current_slice()
    assert ref is not None
    assert ref.instance.image_position is not None
    return ref.instance.image_position[2]


def test_same_frame_of_reference_scrolls_by_position_within_half_a_slice() -> None:
    # 2.5 mm slices from z=0 and 1 mm slices from z=-7.3, shifted in-plane too
    a = shown(stack("1.1", 40, 2.5))
    b = shown(stack("1.2", 110, 1.0, start=(-90.0, -120.0, -7.3), pixel_spacing=(0.5, 0.5)))
    group = LinkGroup([a, b])
    assert group.by_position(a, b)
    for i in range(40):
        a.set_slice(i)
        assert abs(z_of(b) - z_of(a)) <= 0.5 * 1.0 + 1e-9, i
    for j in range(0, 110, 3):
        b.set_slice(j)
        if -0.5 * 2.5 <= z_of(b) <= 39 * 2.5 + 1.25:  # inside a's extent
            assert abs(z_of(a) - z_of(b)) <= 0.5 * 2.5 + 1e-9, j


def test_reversed_slice_order_still_meets_at_the_same_place() -> None:
    a = shown(stack("1.1", 30, 3.0))
    # b stored head first: its normal points the other way (row axis flipped)
    b = shown(stack("1.2", 90, 1.0, start=(100.0, -100.0, 89.0), orientation=(-1, 0, 0, 0, 1, 0)))
    LinkGroup([a, b])
    a.set_slice(7)
    assert abs(z_of(b) - 21.0) <= 0.5


def test_other_frame_of_reference_links_by_index_with_the_users_offset() -> None:
    a = shown(stack("1.1", 50, 2.0))
    prior = shown(stack("2.1", 60, 2.0, frame_of_reference="9.9.PRIOR"))
    group = LinkGroup([a, prior])
    assert not group.by_position(a, prior)
    group.set_offset(prior, slices=3)
    a.set_slice(10)
    assert prior.viewport.slice_index == 13
    prior.set_slice(20)
    assert a.viewport.slice_index == 17
    a.set_slice(49)
    assert prior.viewport.slice_index == 52


def test_capture_offsets_keeps_a_hand_alignment() -> None:
    a = shown(stack("1.1", 50, 2.0))
    b = shown(stack("1.2", 50, 2.0))  # same FoR: the offset is in mm
    prior = shown(stack("2.1", 60, 2.0, frame_of_reference="9.9.PRIOR"))
    group = LinkGroup([a, b, prior], scroll=False)
    a.set_slice(10)
    b.set_slice(15)
    prior.set_slice(30)
    group.capture_offsets()
    group.set_links(scroll=True)
    a.set_slice(20)
    assert b.viewport.slice_index == 25  # 10 mm further along, as aligned
    assert prior.viewport.slice_index == 40  # 20 slices further, as aligned


def test_no_feedback_loop_even_across_two_groups() -> None:
    a = shown(stack("1.1", 40, 2.5))
    b = shown(stack("1.2", 100, 1.0))
    LinkGroup([a, b])
    LinkGroup([b, a])  # the same pair twice: each group ignores what it caused
    events: list[int] = []
    a.viewport.events.slice_index.connect(events.append)
    b.set_slice(70)
    assert len(events) == 1
    assert z_of(a) == pytest.approx(70.0)


def test_switched_off_links_do_nothing() -> None:
    a = shown(stack("1.1", 40, 2.5))
    b = shown(stack("1.2", 40, 2.5))
    group = LinkGroup([a, b], scroll=False, window=False, zoom_pan=False)
    before = b.viewport.model_dump()
    a.set_slice(3)
    a.viewport.set_window(500, 1500)
    a.viewport.zoom_by(2)
    assert b.viewport.model_dump() == before
    group.remove(b)
    group.set_links(scroll=True)
    a.set_slice(30)
    assert b.viewport.slice_index == 20


def test_window_only_between_one_modality_zoom_in_mm() -> None:
    ct = shown(stack("1.1", 10, 2.5, pixel_spacing=(0.8, 0.8)))
    ct2 = shown(stack("1.2", 10, 2.5, pixel_spacing=(0.4, 0.4)))
    mr = shown(stack("1.3", 10, 2.5, modality="MR"))
    mr_window = (mr.viewport.window_center, mr.viewport.window_width)
    LinkGroup([ct, ct2, mr])
    ct.viewport.set_window(-600, 1500, preset="lung")
    assert (ct2.viewport.window_center, ct2.viewport.window_width) == (-600, 1500)
    assert ct2.viewport.preset == "lung"
    assert (mr.viewport.window_center, mr.viewport.window_width) == mr_window
    ct.viewport.zoom_by(2.0)
    ct.viewport.pan_by(10, -5)
    assert not ct2.viewport.fit
    assert ct2.viewport.zoom == pytest.approx(1.0)  # half the pixel size: half the zoom, same mm
    assert ct2.viewport.pan == (10, -5)


def test_crosshair_moves_each_member_of_that_frame_of_reference_to_the_point() -> None:
    axial = shown(stack("1.1", 80, 2.5))
    coronal = shown(stack("1.2", 100, 2.0, start=(-100.0, -100.0, 150.0), orientation=CORONAL))
    prior = shown(stack("2.1", 80, 2.5, frame_of_reference="9.9.PRIOR"))
    prior.set_slice(5)
    group = LinkGroup([axial, coronal, prior], scroll=False)
    point = np.array([3.0, 31.3, 101.1])
    moved = group.goto_point(point, "1.2.3.FOR")
    assert moved == [axial, coronal]
    assert z_of(axial) == pytest.approx(100.0)  # nearest 2.5 mm slice to z=101.1
    ref = coronal.current_slice()
    assert ref is not None
    assert ref.instance.image_position is not None
    assert ref.instance.image_position[1] == pytest.approx(32.0)  # y: -100 + 66 * 2
    assert prior.viewport.slice_index == 5
