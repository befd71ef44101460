"""File > Open of a folder shows a provisional first image while indexing still runs, then the
geometric order, keeping the user's view and measurements on the right instance.

The folder links the real 134-slice CT under shuffled names, so file order is not slice order.
"Before indexing finished" is read from the controller's own signal and flags, not from timing.
Expected orders and pixel values are computed here with pydicom and numpy.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pydicom
import pytest

from core.viewer.measure import Measurement

LOAD_TIMEOUT_MS = 60_000
MR_PARTS = ("plotly__dash-vtk", "demos", "data", "mri_brain", "1-01.dcm")


def _geometric_order(files: list[Path]) -> list[str]:
    keyed = []
    for f in files:
        ds = pydicom.dcmread(f, stop_before_pixels=True)
        o = np.array([float(v) for v in ds.ImageOrientationPatient])
        normal = np.cross(o[:3], o[3:])
        pos = float(np.dot([float(v) for v in ds.ImagePositionPatient], normal))
        keyed.append((pos, str(f)))
    return [path for _pos, path in sorted(keyed)]


def _hu(path: str) -> np.ndarray:
    ds = pydicom.dcmread(path)
    return ds.pixel_array.astype(np.float64) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)


@pytest.fixture
def shuffled_ct(ct_dir: Path, tmp_path: Path) -> list[Path]:
    sources = sorted(ct_dir.glob("*.dcm"))
    names = list(range(len(sources)))
    random.Random(3).shuffle(names)
    folder = tmp_path / "ct"
    folder.mkdir()
    links = []
    for src, n in zip(sources, names, strict=True):
        link = folder / f"img{n:04d}.dcm"
        link.symlink_to(src)
        links.append(link)
    return links


def test_first_image_before_indexing_then_geometric_order(qtbot, window, shuffled_ct) -> None:
    win, st, ctl = window, window.state, window.controller
    vp = st.viewport
    seen: dict[str, object] = {}

    def on_first(uid: str) -> None:
        # runs on the GUI thread while the index job has not delivered its index
        ref = st.current_slice()
        seen.update(
            uid=uid,
            indexing=ctl.indexing,
            indexed="indexed" in ctl.timings,
            frame=st.current_frame(),
            path=ref.instance.path if ref else None,
            slices=st.slice_count,
        )
        # the user works on the provisional image: W/L, zoom, a measurement
        vp.set_window(-600.0, 1500.0, preset="lung")
        vp.zoom_by(2.0)
        st.add_measurement(Measurement("length", vp.slice_index, (100.0, 256.0), (400.0, 256.0)))

    ctl.first_image_shown.connect(on_first)
    win.open_paths([shuffled_ct[0].parent])
    qtbot.waitUntil(lambda: "series_loaded" in ctl.timings, timeout=LOAD_TIMEOUT_MS)

    # a slice was on screen before indexing had finished
    assert seen, "no provisional first image was shown"
    assert seen["indexing"] is True
    assert seen["indexed"] is False
    assert seen["frame"] is not None
    assert seen["slices"] == 1
    # the middle file of the folder (sorted names) is the one tried first
    assert seen["path"] == str(sorted(shuffled_ct)[len(shuffled_ct) // 2])

    # after indexing: geometric order, every slice loaded, the same image still on screen
    order = _geometric_order(shuffled_ct)
    assert [r.instance.path for r in st.slices] == order
    assert st.slice_count == st.loaded_count == 134
    assert not ctl.indexing
    assert ctl.provisional is None
    start = order.index(str(seen["path"]))
    assert vp.slice_index == start
    assert win.slider.maximum() == 133
    assert win.slider.value() == start
    # the user's view is kept
    assert (vp.window_center, vp.window_width, vp.preset) == (-600.0, 1500.0, "lung")
    assert not vp.fit
    assert vp.zoom > 1.0
    # the measurement follows its instance to its sorted position
    [m] = st.measurements
    assert m.slice_index == start
    # frames refer to the right instances (the provisional one and two others)
    for i in (start, 0, 133):
        assert st.frames[i] is not None
        np.testing.assert_allclose(st.frames[i].values, _hu(order[i]), atol=1e-3)
    assert seen["frame"] is st.frames[start]


def test_side_series_guess_gives_way_to_main_stack(
    qtbot, window, ct_dir: Path, dicom_data: Path, tmp_path: Path
) -> None:
    """The middle file is a lone MR image: it shows first, then the CT stack (the largest
    series) takes over, as it would have without the provisional image."""
    mr = dicom_data.joinpath(*MR_PARTS)
    if not mr.is_file():
        pytest.skip(f"the shared MR slice is not at '{mr}'")
    ct = sorted(ct_dir.glob("*.dcm"))[:20]
    folder = tmp_path / "mixed"
    folder.mkdir()
    for i, src in enumerate(ct):
        (folder / f"{'a' if i < 10 else 'c'}{i:03d}.dcm").symlink_to(src)
    (folder / "b_mr.dcm").symlink_to(mr)
    win, st, ctl = window, window.state, window.controller
    first: list[str] = []
    ctl.first_image_shown.connect(
        lambda _uid: first.append(st.series.modality if st.series else "")
    )
    win.open_paths([folder])
    qtbot.waitUntil(lambda: "series_loaded" in ctl.timings, timeout=LOAD_TIMEOUT_MS)
    assert first == ["MR"]
    assert st.series is not None
    assert st.series.modality == "CT"
    assert st.slice_count == st.loaded_count == 20
    assert [r.instance.path for r in st.slices] == _geometric_order(
        [folder / f"{'a' if i < 10 else 'c'}{i:03d}.dcm" for i in range(20)]
    )


def test_cancel_while_indexing_keeps_first_image(qtbot, window, shuffled_ct) -> None:
    win, st, ctl = window, window.state, window.controller
    shown: list[str] = []

    def on_first(uid: str) -> None:
        shown.append(uid)
        win.cancel_loading()  # the user cancels while the headers are still being read

    ctl.first_image_shown.connect(on_first)
    win.open_paths([shuffled_ct[0].parent])
    qtbot.waitUntil(lambda: bool(shown) and not ctl.indexing, timeout=LOAD_TIMEOUT_MS)
    assert ctl.provisional is None
    assert "indexed" not in ctl.timings
    assert st.current_frame() is not None  # the image stays
    assert st.slice_count == 1
