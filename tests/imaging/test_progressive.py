"""core.imaging.progressive: one decoded frame of the middle file, before indexing; and
volume.iter_load_slices loading only the given slices. Values checked against pydicom."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest

from core.imaging.index import build_index
from core.imaging.progressive import candidates, first_image
from core.imaging.volume import SeriesLoadError, iter_load_slices, slice_refs


def _hu(path: str | Path) -> np.ndarray:
    ds = pydicom.dcmread(path)
    return ds.pixel_array.astype(np.float64) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)


def test_candidates() -> None:
    assert candidates(0) == []
    assert candidates(1) == [0]
    assert candidates(2) == [1, 0]
    assert candidates(134) == [67, 0, 133, 33]


def test_first_image_is_the_middle_file_decoded(ct_stack: Path) -> None:
    files = sorted(str(p) for p in ct_stack.glob("*.dcm"))
    first = first_image(files)
    assert first is not None
    assert first.instance.path == files[67]
    assert first.frame_number == 0
    np.testing.assert_allclose(first.frame.values, _hu(files[67]), atol=1e-3)
    [(_p, _st, series)] = list(first.index.iter_series())
    assert series is first.series
    assert series.instances == [first.instance]
    assert first.frame.units == "HU"


def test_first_image_skips_files_that_are_not_images(ct_stack: Path, tmp_path: Path) -> None:
    junk = tmp_path / "junk.dcm"
    junk.write_bytes(b"\0" * 300)
    good = sorted(str(p) for p in ct_stack.glob("*.dcm"))[:2]
    files = [good[0], str(junk), good[1]]  # the middle one is not DICOM
    first = first_image(files)
    assert first is not None
    assert first.instance.path == good[0]
    assert first_image([str(junk)]) is None
    assert first_image(good, cancel=lambda: True) is None


def test_iter_load_slices_loads_only_the_given_slices_first_first(
    ct_stack: Path, tmp_path: Path
) -> None:
    files = sorted(ct_stack.glob("*.dcm"))[:6]
    [(_p, _st, series)] = list(build_index([str(f) for f in files]).iter_series())
    refs = slice_refs(series)
    got = list(iter_load_slices(refs, [4, 1, 2], workers=2))
    assert got[0][0] == 4
    assert sorted(i for i, _f in got) == [1, 2, 4]
    for i, frame in got:
        np.testing.assert_allclose(frame.values, _hu(refs[i][0].path), atol=1e-3)
    # a broken slice is reported after the good ones
    bad = tmp_path / "bad.dcm"
    bad.write_bytes(Path(refs[0][0].path).read_bytes()[:5000])
    refs[0][0].path = str(bad)
    with pytest.raises(SeriesLoadError, match=r"bad\.dcm"):
        list(iter_load_slices(refs, [0, 3]))
