"""ViewerState.refresh_slices: a series' slice list grows and re-sorts (indexing finished after
a provisional first image) while frames, the slice on screen, the view and measurements follow
their instance."""

from __future__ import annotations

import numpy as np

from core.imaging.index import sort_instances
from core.imaging.model import Frame, Instance, Series
from core.viewer.measure import Measurement
from core.viewer.state import ViewerState


def _inst(z: float, name: str) -> Instance:
    return Instance(
        path=f"/data/{name}.dcm",
        sop_instance_uid=name,
        image_position=(0, 0, z),
        image_orientation=(1, 0, 0, 0, 1, 0),
        rows=2,
        columns=2,
    )


def _frame(v: float) -> Frame:
    return Frame(values=np.full((2, 2), v, dtype=np.float32), value_range=(v, v))


def test_refresh_keeps_frames_view_and_measurements_on_their_instance() -> None:
    # files named out of slice order: the provisional instance is z=30, "a"
    insts = {
        "a": _inst(30, "a"),
        "b": _inst(10, "b"),
        "c": _inst(20, "c"),
        "d": _inst(0, "d"),
        "e": _inst(40, "e"),
    }
    series = Series("1.2.3", instances=[insts["a"]])
    st = ViewerState()
    st.set_series(series)
    st.set_frame(0, _frame(30))
    st.viewport.set_window(50.0, 350.0, preset="custom")
    st.viewport.zoom_by(3.0)
    st.viewport.pan_by(5, 7)
    st.add_measurement(Measurement("length", 0, (0.0, 0.0), (1.0, 1.0)))
    changed: list[object] = []
    st.series_changed.connect(changed.append)

    series.instances[:] = sort_instances(list(insts.values()))
    missing = st.refresh_slices()

    assert [r.instance.sop_instance_uid for r in st.slices] == ["d", "b", "c", "a", "e"]
    assert missing == [0, 1, 2, 4]
    assert st.loaded_count == 1
    assert st.frames[3] is not None
    assert float(st.frames[3].values[0, 0]) == 30.0
    assert st.viewport.slice_index == 3  # "a" is still on screen
    assert st.current_slice().instance is insts["a"]  # type: ignore[union-attr]
    assert st.measurements[0].slice_index == 3
    vp = st.viewport
    assert (vp.window_center, vp.window_width, vp.zoom, vp.pan) == (50.0, 350.0, 3.0, (5, 7))
    assert changed == [series]
    # later frames land by index into the new list; the loaded count reaches the total
    for i in missing:
        st.set_frame(i, _frame(float(st.slices[i].instance.image_position[2])))  # type: ignore
    assert st.loaded_count == 5
    assert [float(f.values[0, 0]) for f in st.frames] == [0, 10, 20, 30, 40]  # type: ignore


def test_refresh_without_series_or_changes() -> None:
    st = ViewerState()
    assert st.refresh_slices() == []
    series = Series("1.2.3", instances=[_inst(0, "x"), _inst(1, "y")])
    st.set_series(series)
    st.set_frame(1, _frame(1))
    st.set_slice(1)
    assert st.refresh_slices() == [0]
    assert st.viewport.slice_index == 1
