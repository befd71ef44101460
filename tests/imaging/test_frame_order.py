"""Enhanced multi-frame frames are shown along the slice normal, stack by stack.

The shared Philips enhanced MR holds two stacks (magnitude, field map) of 32 positions each,
already in order: it must stay as it is (a plain sort by position would interleave the stacks).
A copy with its frames shuffled (pixel data and per-frame groups permuted together) must come
back in geometric order per stack, with each slice's pixels those of the right frame. Expected
orders and values are computed here from pydicom (frame type, position, rescale).
"""

from __future__ import annotations

import itertools
import random
from pathlib import Path

import numpy as np
import pydicom
import pytest

from core.imaging.frame_order import frame_order
from core.imaging.index import build_index
from core.imaging.volume import iter_load, slice_refs
from tests.imaging.refdata import ENHANCED_MR


@pytest.fixture
def enhanced(dicom_data: Path) -> Path:
    path = dicom_data / ENHANCED_MR
    if not path.is_file():
        pytest.skip(f"the shared enhanced MR is not at '{path}'")
    return path


def _frames(path: Path) -> list[tuple[str, float, np.ndarray]]:
    """(frame type, z, modality values) of each file frame, straight from pydicom."""
    ds = pydicom.dcmread(path)
    out = []
    for item, pixels in zip(ds.PerFrameFunctionalGroupsSequence, ds.pixel_array, strict=True):
        kind = item.MRImageFrameTypeSequence[0].FrameType[3]
        z = float(item.PlanePositionSequence[0].ImagePositionPatient[2])  # axial: normal ~ z
        pvt = item.PixelValueTransformationSequence[0]
        values = pixels * float(pvt.RescaleSlope) + float(pvt.RescaleIntercept)
        out.append((kind, z, values))
    return out


def _expected(frames: list[tuple[str, float, np.ndarray]]) -> list[int]:
    kinds: list[str] = []
    for kind, _z, _v in frames:
        if kind not in kinds:
            kinds.append(kind)
    return sorted(range(len(frames)), key=lambda f: (kinds.index(frames[f][0]), frames[f][1]))


def _load(path: Path) -> tuple[list[int], dict[int, np.ndarray]]:
    index = build_index([str(path)])
    [(_p, _st, series)] = list(index.iter_series())
    refs = slice_refs(series)
    return [f for _inst, f in refs], {i: fr.values for i, fr in iter_load(series, workers=2)}


def test_shared_enhanced_mr_keeps_its_stacks(enhanced: Path) -> None:
    frames = _frames(enhanced)
    assert _expected(frames) == list(range(64))  # the file is already in order per stack
    shown, _values = _load(enhanced)
    assert shown == list(range(64))


def test_shuffled_enhanced_mr_is_sorted_per_stack(enhanced: Path, tmp_path: Path) -> None:
    ds = pydicom.dcmread(enhanced)
    perm = list(range(64))
    random.Random(7).shuffle(perm)
    pixels = ds.pixel_array
    ds.PixelData = np.ascontiguousarray(pixels[perm]).tobytes()
    items = list(ds.PerFrameFunctionalGroupsSequence)
    ds.PerFrameFunctionalGroupsSequence = [items[p] for p in perm]
    out = tmp_path / "shuffled.dcm"
    ds.save_as(out)

    frames = _frames(out)
    expected = _expected(frames)
    shown, values = _load(out)
    assert shown == expected
    assert shown != list(range(64))
    for i, f in enumerate(shown):
        np.testing.assert_allclose(values[i], frames[f][2], rtol=1e-6, atol=1e-3)
    # along each stack, z increases
    zs = [frames[f][1] for f in shown]
    assert all(a < b for a, b in itertools.pairwise(zs[:32]))
    assert all(a < b for a, b in itertools.pairwise(zs[32:]))


def test_frame_order_rules() -> None:
    axial = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
    pos = [(0.0, 0.0, z) for z in (2.0, 0.0, 1.0)]
    assert frame_order(pos, axial) == (1, 2, 0)
    assert frame_order([*pos[1:], (0.0, 0.0, 5.0)], axial) is None  # already in order
    assert frame_order(pos, None) is None
    assert frame_order(None, axial) is None
    # two stacks at the same positions: sorted within each, stacks in order of appearance
    two = [(0.0, 0.0, z) for z in (1.0, 0.0, 1.0, 0.0)]
    assert frame_order(two, axial, [("b",), ("b",), ("a",), ("a",)]) == (1, 0, 3, 2)
    # same positions that no dimension tells apart: ambiguous, file order kept
    assert frame_order(two, axial) is None


def test_overlay_position_follows_the_frame(enhanced: Path, tmp_path: Path) -> None:
    """The four-corner overlay's 'Pos' of each displayed frame is that frame's own position."""
    from core.viewer.overlay import corner_text
    from core.viewer.state import ViewerState

    frames = _frames(enhanced)
    st = ViewerState()
    st.add_index(build_index([str(enhanced)]))
    [(_p, _st, series)] = list(st.index.iter_series())
    st.set_series(series)
    for i in (0, 5, 40):
        st.set_slice(i)
        f = st.current_slice().frame  # type: ignore[union-attr]
        # axial (normal ~ +z, within 3e-5 rad): the position along it is z to 0.01 mm
        assert f"Pos {frames[f][1]:.1f} mm" in corner_text(st).all_text()
