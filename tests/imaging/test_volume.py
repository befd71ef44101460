"""Whole-series loading: the fast path equals the general decoder, the first slice comes first,
failures and cancel behave."""

from __future__ import annotations

import shutil
import threading
import zipfile
from pathlib import Path

import numpy as np
import pydicom
import pytest

from core.imaging.index import build_index
from core.imaging.model import Series, StudyIndex
from core.imaging.pixels import read_frame
from core.imaging.volume import (
    SeriesLoadError,
    fast_path_ok,
    first_slice,
    iter_load,
    load_slice,
    load_volume,
    slice_refs,
)
from tests.imaging.refdata import CT_TS, ENHANCED_MR, SIGNED_12, WG04


def _series(index: StudyIndex) -> Series:
    all_series = [s for _, _, s in index.iter_series()]
    assert len(all_series) == 1
    return all_series[0]


def test_volume_matches_independent_hu(ct_stack: Path) -> None:
    series = _series(build_index([ct_stack]))
    assert all(fast_path_ok(i) for i in series.instances)
    volume = load_volume(series)
    assert volume.shape == (134, 512, 512)
    assert volume.dtype == np.float32
    for k in (0, 67, 133):  # independently: pydicom's raw array, slope/intercept by hand
        ds = pydicom.dcmread(series.instances[k].path)
        hu = ds.pixel_array.astype(np.float64) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
        np.testing.assert_array_equal(volume[k], hu.astype(np.float32))


@pytest.mark.parametrize(
    "rel",
    [
        f"{CT_TS}/CTImage.dcm",
        SIGNED_12,
        ENHANCED_MR,
        "neurolabusc__dcm_qa_12bit/In/12bitUnsigned.dcm",
    ],
)
def test_fast_path_equals_general_decoder(dicom_data: Path, rel: str) -> None:
    series = _series(build_index([dicom_data / rel]))
    inst = series.instances[0]
    assert fast_path_ok(inst)
    for f in sorted({0, inst.number_of_frames - 1}):
        fast = load_slice(inst, f)
        slow = read_frame(inst, f)
        assert fast is not None
        np.testing.assert_array_equal(fast.values, slow.values)
        assert fast.windows == slow.windows
        assert fast.units == slow.units
        assert fast.value_range == slow.value_range
        assert fast.invert == slow.invert


def test_iter_load_yields_middle_slice_first(ct_stack: Path) -> None:
    series = _series(build_index([ct_stack]))
    got = list(iter_load(series, workers=3))
    assert got[0][0] == first_slice(134) == 67
    assert sorted(i for i, _ in got) == list(range(134))
    volume = load_volume(series)
    for i, frame in got[:5]:
        np.testing.assert_array_equal(frame.values, volume[i])


def test_iter_load_generic_path_from_zip(ct_stack: Path, tmp_path: Path) -> None:
    archive = tmp_path / "ct.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for n in ("1-020.dcm", "1-021.dcm", "1-022.dcm"):
            zf.write(ct_stack / n, n)
    series = _series(build_index([archive]))
    assert not any(fast_path_ok(i) for i in series.instances)
    direct = load_volume(
        _series(build_index([ct_stack / n for n in ("1-020.dcm", "1-021.dcm", "1-022.dcm")]))
    )
    np.testing.assert_array_equal(load_volume(series), direct)


def test_failed_slices_reported_after_the_good_ones(ct_stack: Path, tmp_path: Path) -> None:
    for n in ("1-030.dcm", "1-031.dcm", "1-032.dcm"):
        shutil.copy(ct_stack / n, tmp_path / n)
    series = _series(build_index([tmp_path]))
    bad = series.instances[2]
    Path(bad.path).write_bytes(Path(bad.path).read_bytes()[:4000])  # truncated after indexing
    received: list[int] = []

    def consume() -> None:
        for i, _frame in iter_load(series):
            received.append(i)

    with pytest.raises(SeriesLoadError) as info:
        consume()
    assert sorted(received) == [0, 1]
    assert [e.path for e in info.value.errors] == [bad.path]


def test_cancel_stops_loading(ct_stack: Path) -> None:
    series = _series(build_index([ct_stack]))
    stop = threading.Event()
    received = []
    for i, _frame in iter_load(series, workers=1, cancel=stop):
        received.append(i)
        stop.set()
    assert received == [67]
    with pytest.raises(InterruptedError):
        load_volume(series, cancel=lambda: True)


def test_colour_series_is_not_a_volume(dicom_data: Path) -> None:
    series = _series(build_index([dicom_data / WG04 / "US1_UNCR.dcm"]))
    assert len(slice_refs(series)) == 1
    with pytest.raises(ValueError, match="colour"):
        load_volume(series)
    ((index, frame),) = list(iter_load(series))
    assert index == 0
    assert frame.is_color
