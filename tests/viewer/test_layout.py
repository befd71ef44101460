"""The reading room's grid: presets, custom grids, active viewport, keys, maximise, one copy."""

from __future__ import annotations

import numpy as np
import pytest

from core.imaging.model import Frame
from core.viewer.layout import PRESETS, Layout, LayoutError, parse_grid
from core.viewer.state import ViewerState
from tests.viewer.synthetic import stack


def frame() -> Frame:
    return Frame(values=np.zeros((64, 64), np.float32), value_range=(0.0, 1.0))


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_preset_gives_its_grid(name: str) -> None:
    layout = Layout()
    layout.set_preset(name)
    rows, cols = PRESETS[name]
    assert (layout.rows, layout.cols) == (rows, cols)
    assert len(list(layout)) == rows * cols


def test_custom_grid_and_refusals() -> None:
    assert parse_grid("2 x 4") == (2, 4)
    layout = Layout()
    layout.set_preset("4x2")
    assert len(layout) == 8
    with pytest.raises(LayoutError, match="'two by two' is not rows x columns"):
        parse_grid("two by two")
    with pytest.raises(LayoutError, match="outside 1x1 to 6x6"):
        layout.set_grid(0, 3)
    with pytest.raises(LayoutError, match=r"viewport 9 is outside the 4x2 layout"):
        layout.cell(8)


def test_cells_share_one_index_and_keep_their_series_when_the_grid_changes() -> None:
    first = ViewerState()
    layout = Layout(2, 2, first=first)
    assert layout.cells[0].state is first
    assert all(c.state.index is first.index for c in layout)
    a, b = stack("1.1", 10, 2.0), stack("1.2", 20, 1.0)
    layout.assign(0, a)
    layout.assign(3, b)
    layout.set_grid(1, 2)  # cell 3 goes, cell 0 stays
    assert layout.cells[0].state.series is a
    assert [c.series_uid for c in layout] == ["1.1", None]
    layout.set_grid(2, 2)
    assert layout.cells[3].state.series is None


def test_arrow_keys_stop_at_edges_and_next_wraps() -> None:
    layout = Layout(2, 3)
    moves: list[int] = []
    layout.active_changed.connect(moves.append)
    layout.move_active("right")
    layout.move_active("right")
    layout.move_active("right")  # edge: stays
    assert layout.active == 2
    layout.move_active("down")
    assert layout.active == 5
    layout.move_active("down")
    assert layout.active == 5
    layout.move_active("left")
    layout.move_active("up")
    assert layout.active == 1
    layout.move_active("prev")
    layout.move_active("prev")
    assert layout.active == 5  # wrapped backwards
    layout.move_active("next")
    assert layout.active == 0
    assert moves == [1, 2, 5, 4, 1, 0, 5, 0]


def test_maximise_restore_and_keys_while_maximised() -> None:
    layout = Layout(2, 2)
    seen: list[object] = []
    layout.maximised_changed.connect(seen.append)
    layout.toggle_maximise(2)
    assert layout.visible() == [2]
    assert layout.active == 2
    layout.move_active("next")  # the maximised viewport follows the active one
    assert layout.visible() == [3]
    layout.toggle_maximise(3)
    assert layout.visible() == [0, 1, 2, 3]
    assert seen == [2, 3, None]
    layout.maximise(3)
    layout.set_grid(1, 2)  # the maximised cell is gone: restored, active clamped
    assert layout.maximised is None
    assert layout.active == 1


def test_one_frame_object_shared_by_every_viewport_of_a_series() -> None:
    layout = Layout(2, 2)
    series = stack("1.1", 5, 2.0)
    layout.assign(0, series)
    layout.assign(1, series, orientation="coronal", label="Coronal")
    assert [s.series_instance_uid for s in layout.series_to_load()] == ["1.1"]
    f = frame()
    layout.deliver_frame("1.1", 2, f)
    assert layout.cells[0].state.frames[2] is f
    assert layout.cells[1].state.frames[2] is f
    layout.deliver_failure("1.1", 4, "truncated file")
    layout.assign(2, series)  # a late viewport gets the frames already decoded, not a copy
    assert layout.cells[2].state.frames[2] is f
    assert layout.cells[2].state.failed == {4: "truncated file"}
    assert layout.cells[1].orientation == "coronal"
    assert layout.cells[1].label == "Coronal"
    # slices are per viewport
    layout.cells[0].state.set_slice(0)
    assert layout.cells[1].state.viewport.slice_index == 2


def test_hide_phi_reaches_every_viewport() -> None:
    layout = Layout(1, 3)
    layout.set_hide_phi(True)
    layout.set_grid(2, 3)
    assert all(c.state.hide_phi for c in layout)


def test_a_slice_loaded_into_one_viewport_reaches_the_others_of_that_series() -> None:
    first = ViewerState()
    layout = Layout(1, 3, first=first)
    series, other = stack("1.1", 5, 2.0), stack("1.2", 5, 2.0)
    layout.assign(0, series)
    layout.assign(1, series)
    layout.assign(2, other)
    f = frame()
    first.set_frame(1, f)  # what the window's own loader does for viewport 1
    assert layout.cells[1].state.frames[1] is f
    assert layout.cells[2].state.frames[1] is None
    g = frame()
    layout.cells[1].state.set_frame(3, g)
    assert first.frames[3] is g


def test_frames_of_a_dropped_viewport_are_handed_to_the_next_one_showing_its_series() -> None:
    layout = Layout(2, 2)
    series = stack("1.1", 5, 2.0)
    layout.assign(3, series)
    f = frame()
    layout.deliver_frame("1.1", 0, f)
    layout.set_grid(1, 2)  # viewport 4 goes, its frames wait for the next assignment
    layout.assign(1, series)
    assert layout.cells[1].state.frames[0] is f
    layout.set_grid(1, 1)
    layout.set_grid(1, 3)  # only the last grid change's cells are kept
    layout.assign(2, series)
    assert layout.cells[2].state.frames[0] is None
