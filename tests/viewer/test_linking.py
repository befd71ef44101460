"""Link groups: by anatomical position within half a slice, by index with an offset, W/L and
zoom/pan, each link switchable, a viewport leaving the links, offsets in mm, no feedback loops,
reformatted viewports linked by position, the crosshair through every plane."""

from __future__ import annotations

import numpy as np
import pytest

from core.imaging.model import Frame, Series
from core.viewer.linking import LinkGroup
from core.viewer.mpr import MprView
from core.viewer.reformat import Slab, volume_from_frames
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


def test_an_offset_in_mm_shifts_the_linked_viewport_by_that_many_mm() -> None:
    a = shown(stack("1.1", 60, 2.0))
    b = shown(stack("1.2", 150, 1.0, start=(-90.0, -100.0, -10.3)))
    group = LinkGroup([a, b])
    group.set_offset(b, mm=12.0)
    assert group.offsets(b) == (12.0, 0)
    for i in (5, 20, 41):
        a.set_slice(i)
        assert abs(z_of(b) - (z_of(a) + 12.0)) <= 0.5 * 1.0 + 1e-9, i
    with pytest.raises(ValueError, match="offset nan mm"):
        group.set_offset(b, mm=float("nan"))


def test_a_viewport_that_leaves_the_links_neither_drives_nor_follows() -> None:
    a = shown(stack("1.1", 40, 2.5))
    b = shown(stack("1.2", 40, 2.5))
    c = shown(stack("1.3", 40, 2.5))
    group = LinkGroup([a, b, c])
    group.set_linked(b, False)
    assert not group.is_linked(b)
    b.set_slice(30)
    a.set_slice(10)
    assert b.viewport.slice_index == 30
    assert c.viewport.slice_index == 10
    b.set_slice(31)
    assert a.viewport.slice_index == c.viewport.slice_index == 10
    assert group.goto_point((0.0, 0.0, 50.0), "1.2.3.FOR") == [a, c]
    assert b.viewport.slice_index == 31
    group.set_linked(b, True)  # back in: follows again
    a.set_slice(3)
    assert b.viewport.slice_index == 3


def reformat_of(state: ViewerState, plane: str) -> MprView:
    """The MprView a grid cell showing ``state``'s series as ``plane`` would paint."""
    assert state.series is not None
    inst = state.slices[0].instance
    assert inst.rows is not None
    assert inst.columns is not None
    shape = (inst.rows, inst.columns)
    frames: list[Frame | None] = [Frame(values=np.zeros(shape, np.float32)) for _ in state.slices]
    volume = volume_from_frames(state.series, state.slices, frames)
    return MprView(volume, plane)  # type: ignore[arg-type]


def y_of(view: MprView) -> float:
    return float(view.plane().center[1])


@pytest.fixture
def four() -> tuple[LinkGroup, list[ViewerState], MprView, MprView]:
    """Axial acquired (A), A as a coronal reformat, B (other spacing) as a coronal reformat,
    and C acquired coronally; one Frame of Reference."""
    a = stack("1.1", 40, 2.5, start=(-25.6, -25.6, 0.0))
    b = stack("1.2", 90, 1.0, start=(-30.0, -31.0, 3.0), size=(80, 80), pixel_spacing=(0.7, 0.7))
    c = stack("1.3", 50, 1.2, start=(-25.6, -30.0, 97.5), orientation=CORONAL)
    states = [shown(a), shown(a), shown(b), shown(c)]
    group = LinkGroup(states)
    cor_a, cor_b = reformat_of(states[1], "coronal"), reformat_of(states[2], "coronal")
    group.set_reformat(states[1], cor_a)
    group.set_reformat(states[2], cor_b)
    return group, states, cor_a, cor_b


def test_scrolling_a_reformat_moves_the_parallel_viewports_not_the_crossing_ones(four) -> None:  # type: ignore[no-untyped-def]
    group, (axial, _s1, _s2, coronal), cor_a, cor_b = four
    axial.set_slice(7)
    coronal.set_slice(4)
    for steps in (5, 11, -3):
        cor_a.step(steps)
        y = y_of(cor_a)
        assert abs(y_of(cor_b) - y) <= cor_b.reformat.step / 2 + 1e-9
        ref = coronal.current_slice()
        assert ref is not None
        assert ref.instance.image_position is not None
        assert abs(ref.instance.image_position[1] - y) <= 1.2 / 2 + 1e-9
        assert axial.viewport.slice_index == 7  # crossing: its reference lines follow instead
    before = (cor_a.index, cor_b.index)
    axial.set_slice(20)  # an axial stack does not drive coronal reformats (no index linking)
    assert (cor_a.index, cor_b.index) == before
    coronal.set_slice(30)  # an acquired coronal stack drives both reformats by position
    y = -30.0 + 30 * 1.2
    assert abs(y_of(cor_a) - y) <= cor_a.reformat.step / 2 + 1e-9
    assert abs(y_of(cor_b) - y) <= cor_b.reformat.step / 2 + 1e-9
    group.set_offset(_s2, mm=6.0)  # offsets hold for reformats too
    cor_a.step(2)
    assert abs(y_of(cor_b) - y_of(cor_a) - 6.0 * np.sign(cor_b.plane().normal[1])) <= (
        cor_b.reformat.step / 2 + 1e-9
    )


def test_the_crosshair_puts_every_linked_plane_through_the_point(four) -> None:  # type: ignore[no-untyped-def]
    group, states, cor_a, cor_b = four
    point = np.array([3.3, 7.9, 41.2])
    moved = group.goto_point(point, "1.2.3.FOR")
    assert moved == states
    assert group.crosshair is not None
    assert group.crosshair.point == pytest.approx(tuple(point))
    for s in states:
        plane = group.current_plane(s)
        assert plane is not None
        assert abs(plane.distance(point)) <= group.half_slice(s) + 1e-9
        assert group.holds(s, point)
    assert group.half_slice(states[0]) == pytest.approx(1.25)
    assert group.half_slice(states[1]) == pytest.approx(cor_a.reformat.step / 2)
    assert not group.holds(states[0], point + np.array([0.0, 0.0, 1.3]))
    off = point + np.array([0.0, 4.0, 0.0])  # 4 mm behind the coronal plane
    assert not group.holds(states[1], off)
    cor_a.set_slab(Slab("mip", 10.0))  # a 10 mm slab shows it
    assert group.half_slice(states[1]) == pytest.approx(5.0)
    assert group.holds(states[1], off)
    cor_a.set_slab(None)
    assert not group.goto_point(point, "9.9.OTHER")  # another Frame of Reference: nobody
    group.set_linked(states[2], False)
    cor_b.set_index(0)
    group.goto_point(point - np.array([0.0, 5.0, 0.0]), "1.2.3.FOR")
    assert cor_b.index == 0  # left the links: stays
    group.clear_crosshair()
    assert group.crosshair is None


def test_a_series_change_forgets_the_reformat(four) -> None:  # type: ignore[no-untyped-def]
    group, states, cor_a, _cor_b = four
    assert group.reformat(states[1]) is cor_a
    states[1].set_series(stack("1.4", 10, 2.5))
    assert group.reformat(states[1]) is None
    before = [s.viewport.slice_index for s in states]
    cor_a.step(3)  # the old view drives nothing any more
    assert [s.viewport.slice_index for s in states] == before


def test_an_oblique_turn_moves_nobody_its_scroll_moves_the_parallel_ones(four) -> None:  # type: ignore[no-untyped-def]
    _group, states, cor_a, cor_b = four
    cor_b.set_index(3)
    coronal = states[3]
    coronal.set_slice(2)
    before = (cor_b.index, coronal.viewport.slice_index)
    pivot = cor_a.plane().center + np.array([0.0, 4.0, 0.0])
    cor_a.rotate(cor_a.plane().v, 10.0, through=pivot)  # an oblique plane: not a scroll
    assert cor_a.plane_name == "oblique"
    indices = [cor_a.index]
    for degrees in (5.0, -12.0, 7.0):  # more turns: another index of another oblique plane
        cor_a.rotate(cor_a.plane().u, degrees, through=pivot + np.array([0.0, degrees, 0.0]))
        indices.append(cor_a.index)
    assert len(set(indices)) > 1
    assert (cor_b.index, coronal.viewport.slice_index) == before
    cor_a.step(6)  # scrolling the oblique plane: the coronal ones (10 degrees off) follow
    y = float(cor_a.plane().center[1])
    assert abs(y_of(cor_b) - y) <= cor_b.reformat.step / 2 + 1e-6
