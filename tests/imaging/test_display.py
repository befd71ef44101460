"""render(): the VOI formulas by hand, inversion, VOI LUT, and agreement with DCMTK's dcmj2pnm."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.uid import ExplicitVRLittleEndian

from core.imaging.display import render
from core.imaging.model import Frame
from core.imaging.pixels import read_frame
from core.imaging.presets import CT_PRESETS, ct_preset
from tests.imaging.refdata import CT_STACK, CT_TS, SIGNED_12, WG04, instance


def _frame(values: list[float], **kw: object) -> Frame:
    arr = np.asarray([values], dtype=np.float32)
    return Frame(values=arr, value_range=(float(arr.min()), float(arr.max())), **kw)  # type: ignore[arg-type]


def test_linear_window_formula_by_hand() -> None:
    c, w = 40.0, 400.0
    xs = [-1000, c - 0.5 - (w - 1) / 2, -100, 0, 39.5, 40, 100, c - 0.5 + (w - 1) / 2, 3000]
    expected = []
    for x in xs:  # PS3.3 C.11.2.1.2.1, ymin 0, ymax 255
        if x <= c - 0.5 - (w - 1) / 2:
            y = 0.0
        elif x > c - 0.5 + (w - 1) / 2:
            y = 255.0
        else:
            y = ((x - (c - 0.5)) / (w - 1) + 0.5) * 255
        expected.append(int(np.floor(y + 0.5)))
    got = render(_frame(xs), window=(c, w))
    assert got.dtype == np.uint8
    assert got[0].tolist() == expected


def test_linear_exact_and_sigmoid_by_hand() -> None:
    c, w = 100.0, 50.0
    xs = [50.0, 81.0, 100.0, 110.0, 140.0]
    exact = render(_frame(xs, voi_function="LINEAR_EXACT"), window=(c, w))[0].tolist()
    assert exact == [int(np.floor(np.clip((x - c) / w + 0.5, 0, 1) * 255 + 0.5)) for x in xs]
    sig = render(_frame(xs, voi_function="SIGMOID"), window=(c, w))[0].tolist()
    assert sig == [int(np.floor(255 / (1 + np.exp(-4 * (x - c) / w)) + 0.5)) for x in xs]


def test_default_window_is_first_file_window_else_full_range() -> None:
    with_window = _frame([0.0, 50.0, 100.0], windows=[(50.0, 101.0), (0.0, 10.0)])
    np.testing.assert_array_equal(render(with_window), render(with_window, window=(50.0, 101.0)))
    plain = _frame([10.0, 20.0, 30.0])
    out = render(plain)[0].tolist()
    assert out[0] == 0
    assert out[-1] == 255


def test_invert_default_and_override() -> None:
    f = _frame([0.0, 25.0, 100.0], invert=True)
    normal = render(f, window=(50.0, 101.0), invert=False)
    assert render(f, window=(50.0, 101.0)).tolist() == (255 - normal).tolist()


def test_voi_lut_used_when_no_window_given() -> None:
    lut = np.array([0, 1000, 2000, 4095], dtype=np.float32)  # 12-bit output
    f = _frame(
        [-5.0, 10.0, 11.0, 12.0, 13.0, 99.0],
        voi_lut=lut,
        voi_lut_first=10,
        voi_lut_bits=12,
        windows=[(0.0, 1.0)],
    )
    expected = [0, 0, 1000, 2000, 4095, 4095]
    got = render(f)[0].tolist()
    assert got == [int(np.floor(v * 255 / 4095 + 0.5)) for v in expected]
    # An explicit window wins over the LUT.
    assert render(f, window=(50.0, 200.0))[0].tolist() != got


def test_colour_frames_pass_through() -> None:
    rgb = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    f = Frame(values=rgb, is_color=True)
    np.testing.assert_array_equal(render(f, window=(0.0, 1.0)), rgb)
    np.testing.assert_array_equal(render(f, invert=True), 255 - rgb)


def test_ct_presets() -> None:
    assert set(CT_PRESETS) == {"lung", "mediastinum", "bone", "brain", "abdomen"}
    assert ct_preset("Lung") == (-600.0, 1500.0)
    with pytest.raises(KeyError, match="unknown CT window preset 'liver'"):
        ct_preset("liver")


# --- against DCMTK ----------------------------------------------------------------------------

DCMJ2PNM = shutil.which("dcmj2pnm")
needs_dcmtk = pytest.mark.skipif(
    DCMJ2PNM is None, reason="DCMTK's dcmj2pnm is not installed (apt-get install dcmtk)"
)


def _dcmtk(path: Path, out: Path, *options: str) -> np.ndarray:
    assert DCMJ2PNM is not None
    subprocess.run(
        [DCMJ2PNM, "--write-png", *options, str(path), str(out)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return np.asarray(Image.open(out))


def _uncompressed_copy(src: Path, dst: Path) -> Path:
    ds = pydicom.dcmread(src)
    ds.decompress()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.save_as(dst, enforce_file_format=True)
    return dst


CASES = [
    (f"{CT_TS}/CTImage.dcm", ("+Ww", "40", "400")),
    (f"{CT_TS}/CTImage.dcm", ("+Ww", "-600", "1500")),
    (f"{CT_TS}/CTImage.dcm", ("+Wi", "1")),
    (f"{CT_STACK}/1-067.dcm", ("+Wi", "1")),
    (SIGNED_12, ("+Ww", "-100", "300")),
    ("plotly__dash-vtk/demos/data/mri_brain/1-10.dcm", ("+Wi", "1")),
]


@needs_dcmtk
@pytest.mark.parametrize(("rel", "options"), CASES, ids=lambda v: str(v)[-24:])
def test_render_matches_dcmj2pnm(
    dicom_data: Path, tmp_path: Path, rel: str, options: tuple[str, ...]
) -> None:
    path = dicom_data / rel
    theirs = _dcmtk(path, tmp_path / "dcmtk.png", *options)
    frame = read_frame(instance(path))
    window = (float(options[1]), float(options[2])) if options[0] == "+Ww" else None
    ours = render(frame, window=window)
    assert ours.shape == theirs.shape
    diff = np.abs(ours.astype(int) - theirs.astype(int))
    where = np.unravel_index(diff.argmax(), diff.shape)
    assert diff.max() <= 1, f"max difference {diff.max()} at {where}"


@needs_dcmtk
def test_monochrome1_matches_dcmj2pnm(dicom_data: Path, tmp_path: Path) -> None:
    path = _uncompressed_copy(dicom_data / WG04 / "RG1_J2KI.dcm", tmp_path / "rg1.dcm")
    theirs = _dcmtk(path, tmp_path / "dcmtk.png", "+Wi", "1")
    ours = render(read_frame(instance(path)))
    assert np.abs(ours.astype(int) - theirs.astype(int)).max() <= 1
    # and it really is inverted: a plain MONOCHROME2 rendering differs
    assert (
        np.abs(
            render(read_frame(instance(path)), invert=False).astype(int) - theirs.astype(int)
        ).mean()
        > 50
    )


@needs_dcmtk
def test_rgb_matches_dcmj2pnm(dicom_data: Path, tmp_path: Path) -> None:
    path = dicom_data / WG04 / "US1_UNCR.dcm"
    theirs = _dcmtk(path, tmp_path / "dcmtk.png")
    np.testing.assert_array_equal(render(read_frame(instance(path))), theirs)


@needs_dcmtk
def test_voi_lut_matches_dcmj2pnm(dicom_data: Path, tmp_path: Path) -> None:
    """A VOI LUT Sequence added to the CT slice: ours and DCMTK's +Wl 1 agree."""
    ds = pydicom.dcmread(dicom_data / CT_TS / "CTImage.dcm")
    first, n = -200, 600  # input in modality units (HU)
    x = np.arange(n, dtype=np.float64) / (n - 1)
    table = np.rint(4095 * x**0.5).astype(np.uint16)  # a gamma-like curve, 12-bit output
    item = pydicom.Dataset()
    item.LUTDescriptor = [n, first, 12]
    item.LUTData = table.tolist()
    item["LUTDescriptor"].VR = "SS"
    item["LUTData"].VR = "US"
    ds.VOILUTSequence = pydicom.Sequence([item])
    del ds.WindowCenter, ds.WindowWidth
    path = tmp_path / "voilut.dcm"
    ds.save_as(path)
    theirs = _dcmtk(path, tmp_path / "dcmtk.png", "+Wl", "1")
    frame = read_frame(instance(path))
    assert frame.voi_lut is not None
    assert frame.voi_lut_first == first
    ours = render(frame)
    assert np.abs(ours.astype(int) - theirs.astype(int)).max() <= 1
