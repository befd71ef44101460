"""ViewerState and Viewport: events, validation, presets, slices, merging."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from core.imaging.model import Frame, LoadError, Patient, Series, Study, StudyIndex
from core.viewer.measure import Measurement
from core.viewer.presets import find_preset, presets_for, window_for
from core.viewer.state import ViewerState, merge_index, slice_position, slice_refs
from core.viewer.viewport import Viewport


def test_viewport_validates_assignments() -> None:
    vp = Viewport()
    with pytest.raises(ValidationError):
        vp.rotation = 45  # type: ignore[assignment]
    with pytest.raises(ValidationError):
        vp.window_width = 0
    with pytest.raises(ValueError, match="multiple of 90"):
        vp.rotate(30)


def test_viewport_events_and_helpers() -> None:
    vp = Viewport()
    seen: list[tuple[str, object]] = []
    vp.events.window_width.connect(lambda v: seen.append(("width", v)))
    vp.events.rotation.connect(lambda v: seen.append(("rotation", v)))
    vp.set_window(100, -5)  # width clamped to 1
    assert (vp.window_center, vp.window_width, vp.preset) == (100, 1.0, "custom")
    vp.rotate(-90)
    assert vp.rotation == 270
    vp.rotate(180)
    assert vp.rotation == 90
    assert seen == [("width", 1.0), ("rotation", 270), ("rotation", 90)]
    vp.zoom_by(2)
    assert (vp.zoom, vp.fit) == (2.0, False)
    vp.reset_geometry()
    assert (vp.fit, vp.rotation, vp.pan) == (True, 0, (0.0, 0.0))


def test_presets() -> None:
    assert [p.name for p in presets_for("CT")] == [
        "lung",
        "mediastinum",
        "bone",
        "brain",
        "abdomen",
    ]
    assert "lung" not in [p.name for p in presets_for("MR")]
    assert window_for("lung", None) == (-600.0, 1500.0)
    frame = Frame(values=__import__("numpy").zeros((2, 2), "float32"), windows=[(100.0, 200.0)])
    assert window_for("auto", frame) == (100.0, 200.0)
    with pytest.raises(ValueError, match="unknown window preset 'nope'"):
        find_preset("nope")
    with pytest.raises(ValueError, match="auto"):
        window_for("auto", None)


def test_series_selection_and_first_frame_sets_auto_window(ct_index, ct_frame) -> None:
    frame = ct_frame[0]
    st = ViewerState()
    changed: list[object] = []
    loaded: list[int] = []
    st.series_changed.connect(changed.append)
    st.frame_loaded.connect(loaded.append)
    st.add_index(ct_index)
    _p, _s, series = next(ct_index.iter_series())
    st.set_series(series)
    assert changed == [series]
    assert st.slice_count == 5
    assert st.viewport.slice_index == 2  # starts in the middle
    assert st.current_frame() is None
    st.set_frame(4, frame)
    assert loaded == [4]
    assert (st.viewport.window_center, st.viewport.window_width) == (60.0, 400.0)
    assert st.viewport.preset == "auto"
    assert st.nearest_loaded(2) is frame  # shown while slice 2 is still loading
    st.apply_preset("lung")
    st.set_frame(0, frame)  # later frames do not reset the chosen window
    assert (st.viewport.window_center, st.viewport.window_width) == (-600.0, 1500.0)
    with pytest.raises(IndexError):
        st.set_frame(5, frame)


def test_slices_step_clamp_and_wrap(ct_index) -> None:
    st = ViewerState()
    st.add_index(ct_index)
    st.set_series(next(ct_index.iter_series())[2])
    st.step_slice(10)
    assert st.viewport.slice_index == 4
    st.step_slice(1, wrap=True)
    assert st.viewport.slice_index == 0
    st.step_slice(-3)
    assert st.viewport.slice_index == 0
    positions = [slice_position(r.instance) for r in st.slices]
    assert all(p is not None for p in positions)
    assert len(set(positions)) == 5


def test_slice_refs_expand_multiframe() -> None:
    from core.imaging.model import Instance

    s = Series(
        "1.2",
        instances=[
            Instance("a", "1", number_of_frames=3),
            Instance("b", "2", has_pixels=False),
            Instance("c", "3"),
        ],
    )
    assert [(r.instance.path, r.frame) for r in slice_refs(s)] == [
        ("a", 0),
        ("a", 1),
        ("a", 2),
        ("c", 0),
    ]


def test_measurements_are_per_slice(ct_index) -> None:
    st = ViewerState()
    st.add_index(ct_index)
    st.set_series(next(ct_index.iter_series())[2])
    count: list[int] = []
    st.measurements_changed.connect(lambda: count.append(1))
    st.add_measurement(Measurement("length", 1, (0, 0), (1, 1)))
    st.add_measurement(Measurement("roi", 3, (0, 0), (1, 1)))
    assert [m.kind for m in st.measurements_on_slice(3)] == ["roi"]
    st.clear_measurements()
    assert st.measurements == []
    assert len(count) == 3


def test_hide_phi_emits_once_per_change() -> None:
    st = ViewerState()
    seen: list[bool] = []
    st.hide_phi_changed.connect(seen.append)
    st.hide_phi = True
    st.hide_phi = True
    st.hide_phi = False
    assert seen == [True, False]


def test_merge_index_and_errors() -> None:
    a = StudyIndex(
        patients={"p": Patient("p", "A", studies={"s": Study("s", series={"1": Series("1")})})}
    )
    b = StudyIndex(
        patients={
            "p": Patient("p", "A", studies={"s": Study("s", series={"2": Series("2")})}),
            "q": Patient("q", "B"),
        },
        errors=[LoadError("/x/broken.dcm", "truncated")],
    )
    st = ViewerState()
    errors: list[list[LoadError]] = []
    st.errors_added.connect(errors.append)
    st.add_index(a)
    st.add_index(b)
    assert sorted(st.index.patients) == ["p", "q"]
    assert sorted(st.index.patients["p"].studies["s"].series) == ["1", "2"]
    assert errors == [[LoadError("/x/broken.dcm", "truncated")]]
    merge_index(st.index, StudyIndex())
    assert len(st.index.errors) == 1
    with pytest.raises(KeyError, match="'nope'"):
        st.find_series("nope")
