"""JPEG 2000 at a reduced resolution level for model input: exact where it claims to be, close
to the full decode where it cannot be, and the full decode wherever it does not apply."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.encaps import generate_frames
from pydicom.uid import JPEG2000Lossless

from core.imaging import reduced
from core.imaging.header import read_header
from core.imaging.model import Instance
from core.imaging.pixels import PixelDecodeError, read_frame
from core.imaging.reduced import (
    ReducedFrame,
    codestream_info,
    decode_codestream,
    read_frame_for_model,
    reduction_for,
)
from models.manifest import InputSpec
from models.preprocess import decode_size, preprocess_image

_REPO = Path(__file__).resolve().parents[2]
_CR = _REPO / "resources" / "sample" / "chest_cr" / "RG1_J2KI.dcm"  # 1955x1841, 15 bit, lossy
_CT_DIR = Path("cornerstonejs__cornerstone3D") / "packages" / "dicomImageLoader" / "testImages"
_CT_90 = _CT_DIR / "CTImage.dcm_JPEG2000LosslessOnlyTransferSyntax_1.2.840.10008.1.2.4.90.dcm"
_CT_91 = _CT_DIR / "CTImage.dcm_JPEG2000TransferSyntax_1.2.840.10008.1.2.4.91.dcm"
_CT_RAW = Path("pyvista__vtk-data") / "Data" / "DICOM_Stack" / "1-001.dcm"


def _instance(path: Path) -> Instance:
    return read_header(str(path), require_uids=False).instance


def _codestream(path: Path) -> bytes:
    ds = pydicom.dcmread(path)
    return next(generate_frames(ds.PixelData, number_of_frames=1))


def _model_spec(size: int) -> InputSpec:
    """The chest model's preprocessing (auto_window 0.5-99.5 %, resize) at ``size``."""
    steps = [
        {"op": "auto_window", "low_percentile": 0.5, "high_percentile": 99.5},
        {"op": "resize", "size": [size, size]},
    ]
    return InputSpec.model_validate(
        {
            "kind": "image",
            "size": [size, size],
            "channels": 1,
            "layout": "NHWC",
            "preprocessing": steps,
        }
    )


@pytest.fixture(scope="module")
def big_variants(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The shared lossless CT re-encoded (pydicom + OpenJPEG) at 1024x1024 as 16-bit signed,
    12-bit signed and 8-bit unsigned: the sign and precision cases the CR does not cover."""
    from tests.conftest import DICOM_DATA

    src = DICOM_DATA / _CT_90
    if not src.is_file():
        pytest.skip(f"shared DICOM data not found at {src}")
    ds = pydicom.dcmread(src)
    big = np.kron(ds.pixel_array, np.ones((2, 2), np.int16))  # real anatomy, 1 MP
    folder = tmp_path_factory.mktemp("j2k")
    out = {}
    for name, arr, bits in (
        ("16s", big, 16),
        ("12s", (big // 16).astype(np.int16), 12),
        ("8u", ((big - big.min()) // 8).clip(0, 255).astype(np.uint8), 8),
    ):
        d = copy.deepcopy(ds)
        d.Rows, d.Columns = arr.shape
        d.BitsAllocated, d.BitsStored, d.HighBit = 8 if bits == 8 else 16, bits, bits - 1
        d.PixelRepresentation = int(arr.dtype.kind == "i")
        d.compress(JPEG2000Lossless, arr, encoding_plugin="pylibjpeg")
        d.save_as(folder / f"{name}.dcm")
        out[name] = folder / f"{name}.dcm"
    return out


def test_level_zero_equals_pydicom_bit_for_bit(
    dicom_data: Path, big_variants: dict[str, Path]
) -> None:
    """The value mapping (Pillow's bit-depth scaling and sign offset undone) is exact."""
    paths = [_CR, dicom_data / _CT_90, dicom_data / _CT_91, *big_variants.values()]
    for path in paths:
        data = _codestream(path)
        info = codestream_info(data)
        assert info is not None, path.name
        ours = decode_codestream(data, 0, info)
        theirs = pydicom.dcmread(path).pixel_array
        assert ours.shape == theirs.shape, path.name
        np.testing.assert_array_equal(ours, theirs, err_msg=path.name)


def test_codestream_header_read() -> None:
    info = codestream_info(_codestream(_CR))
    assert info is not None
    assert (info.height, info.width, info.precision, info.signed) == (1955, 1841, 15, False)
    assert (info.components, info.levels, info.subsampled) == (1, 5, False)
    assert codestream_info(b"\x00" * 64) is None  # not a codestream


def test_reduction_keeps_twice_the_model_input() -> None:
    # 1955x1841 for 224: 978x921 and 489x461 keep >= 448 per axis, 245x231 does not
    assert reduction_for((1955, 1841), (224, 224), levels=5) == 2
    assert reduction_for((1955, 1841), (28, 28), levels=5) == 5  # no more than the codestream has
    assert reduction_for((1955, 1841), (28, 28), levels=3) == 3
    assert reduction_for((400, 400), (224, 224), levels=5) == 0
    assert reduction_for((1955, 1841), (224, 224), levels=5, min_ratio=4) == 1


def test_reduced_cr_is_close_to_the_full_decode_area_downsampled() -> None:
    """Each level's samples against the full decode averaged over the q x q block centred on
    them (the wavelet low-pass is centred on even samples). Measured on the lossy 9/7 CR, as a
    share of its value range, mean / 99th percentile: level 1 0.28% / 1.4%, level 2 0.20% /
    1.1%, level 3 0.17% / 1.0%, no bias (signed mean < 0.01%). Tolerance 0.5% / 2.5%."""
    full = pydicom.dcmread(_CR).pixel_array.astype(np.float64)
    span = float(full.max() - full.min())
    data = _codestream(_CR)
    info = codestream_info(data)
    assert info is not None
    for r in (1, 2, 3):
        q = 1 << r
        ours = decode_codestream(data, r, info).astype(np.float64)
        assert ours.shape == (-(-1955 // q), -(-1841 // q))
        pad = np.pad(full, ((q // 2, q * ours.shape[0]), (q // 2, q * ours.shape[1])), "edge")
        blocks = pad[: q * ours.shape[0], : q * ours.shape[1]]
        area = blocks.reshape(ours.shape[0], q, ours.shape[1], q).mean(axis=(1, 3))
        diff = np.abs(ours - area)[1:-1, 1:-1] / span
        assert float(diff.mean()) < 0.005, (r, float(diff.mean()))
        assert float(np.percentile(diff, 99)) < 0.025, (r, float(np.percentile(diff, 99)))
        signed = (ours - area)[1:-1, 1:-1] / span
        assert abs(float(signed.mean())) < 0.001  # no offset: the levels keep the value scale


def test_reduced_frame_for_a_224_model_on_the_chest_cr() -> None:
    inst = _instance(_CR)
    full = read_frame(inst)
    frame = read_frame_for_model(inst, 0, (224, 224))
    assert isinstance(frame, ReducedFrame)
    assert (frame.reduction, frame.shape, frame.full_shape) == (2, (489, 461), (1955, 1841))
    # the same presentation facts as the full decode: MONOCHROME1, the file's windows, units
    assert frame.invert == full.invert is True
    assert frame.windows == full.windows
    assert frame.units == full.units
    assert frame.values.dtype == np.float32
    lo, hi = frame.value_range
    assert (lo, hi) == (float(frame.values.min()), float(frame.values.max()))
    # its box puts the samples where they lie: the first at full-resolution pixel 0
    assert frame.resize_box[:2] == (0.375, 0.375)
    assert frame.resize_box[2:] == (min(461, 1840.5 / 4 + 0.5), min(489, 1954.5 / 4 + 0.5))


def test_model_input_from_the_reduced_decode_is_close_to_the_full_one() -> None:
    """What the model sees (auto_window, resize; [0, 1] range) from the reduced decode vs the
    full decode of the chest CR. Measured: 224 px max 0.016 / mean 0.0007; 64 px max 0.032 /
    mean 0.0011. Tolerances: max 0.03 (224) / 0.05 (64), mean 0.002."""
    inst = _instance(_CR)
    full = read_frame(inst)
    for size, max_tol in ((224, 0.03), (64, 0.05)):
        spec = _model_spec(size)
        target = decode_size(spec)
        assert target == (size, size)
        frame = read_frame_for_model(inst, 0, target)
        assert isinstance(frame, ReducedFrame)
        exact = preprocess_image(full, spec, "m")
        fast = preprocess_image(frame, spec, "m")
        diff = np.abs(fast - exact)
        assert float(diff.max()) < max_tol, (size, float(diff.max()))
        assert float(diff.mean()) < 0.002, (size, float(diff.mean()))
        assert float(exact.std()) > 0.1  # a real radiograph, not a flat image


def test_spacing_scales_with_the_level_and_signed_data_keep_their_units(
    big_variants: dict[str, Path],
) -> None:
    for name, path in big_variants.items():
        inst = _instance(path)
        full = read_frame(inst)
        frame = read_frame_for_model(inst, 0, (64, 64))
        assert isinstance(frame, ReducedFrame), name
        assert frame.reduction == 3  # 1024 -> 128 = 2x 64
        assert full.pixel_spacing is not None
        assert frame.pixel_spacing == pytest.approx(tuple(s * 8 for s in full.pixel_spacing))
        assert frame.units == full.units == "HU"
        # the rescale (slope/intercept) applied as in the full decode: the means agree
        assert float(frame.values.mean()) == pytest.approx(float(full.values.mean()), rel=0.02)


def test_full_decode_wherever_the_reduction_does_not_apply(dicom_data: Path) -> None:
    cases = [
        (_instance(_CR), None),  # the model needs every pixel
        (_instance(_CR), (1000, 1000)),  # no level keeps 2x the input
        (_instance(dicom_data / _CT_90), (28, 28)),  # a 512x512 slice: under MIN_PIXELS
    ]
    raw = dicom_data / _CT_RAW
    if raw.is_file():
        cases.append((_instance(raw), (28, 28)))  # not JPEG 2000
    for inst, target in cases:
        frame = read_frame_for_model(inst, 0, target)
        assert not isinstance(frame, ReducedFrame), (inst.path, target)
        np.testing.assert_array_equal(frame.values, read_frame(inst).values)


def test_min_pixels_gates_small_frames(dicom_data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    inst = _instance(dicom_data / _CT_91)
    assert not isinstance(read_frame_for_model(inst, 0, (64, 64)), ReducedFrame)
    monkeypatch.setattr(reduced, "MIN_PIXELS", 0)
    frame = read_frame_for_model(inst, 0, (64, 64))
    assert isinstance(frame, ReducedFrame)
    assert frame.shape == (128, 128)


def test_a_damaged_frame_fails_with_the_full_decoders_message(tmp_path: Path) -> None:
    """A codestream the reduced decode cannot read falls back to the full decode, whose error
    names the file: never a crash from Pillow."""
    ds = pydicom.dcmread(_CR)
    data = bytearray(_codestream(_CR))
    data[200:] = b"\xff" * (len(data) - 200)  # packet data destroyed, headers kept
    from pydicom.encaps import encapsulate

    ds.PixelData = encapsulate([bytes(data)])
    path = tmp_path / "damaged.dcm"
    ds.save_as(path)
    with pytest.raises(PixelDecodeError, match=r"damaged\.dcm.*damaged"):
        read_frame_for_model(_instance(path), 0, (224, 224))
