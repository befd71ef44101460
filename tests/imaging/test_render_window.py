"""``doctorai render --window C W`` refuses non-finite values (issue 15, hole 9): argparse's
float() accepts "nan", "inf" and overflowing numbers, and such a window painted a black image
that was written with exit code 0."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import cli
from core.imaging.display import render
from core.imaging.pixels import read_frame
from tests.imaging.refdata import CT_TS, instance


@pytest.mark.parametrize(
    ("center", "width"),
    [("nan", "400"), ("40", "nan"), ("inf", "400"), ("40", "inf"), ("40", "1e999")],
)
def test_non_finite_window_is_refused(
    dicom_data: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    center: str,
    width: str,
) -> None:
    path = dicom_data / CT_TS / "CTImage.dcm"
    out = tmp_path / "x.png"
    code = cli.main(["render", str(path), "--out", str(out), "--window", center, width])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "--window needs finite numbers" in err
    assert f"center {float(center):g} width {float(width):g}" in err
    assert not out.exists()


def test_finite_window_still_renders(dicom_data: Path, tmp_path: Path) -> None:
    path = dicom_data / CT_TS / "CTImage.dcm"
    out = tmp_path / "ct.png"
    assert cli.main(["render", str(path), "--out", str(out), "--window", "40", "400"]) == 0
    expected = render(read_frame(instance(path)), window=(40.0, 400.0))
    np.testing.assert_array_equal(np.asarray(Image.open(out)), expected)
    assert len(np.unique(expected)) > 2  # a real image, not the black one NaN gave
