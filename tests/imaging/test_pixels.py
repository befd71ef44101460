"""The pixel pipeline on real files, checked against values computed independently of our code:
raw bytes read with numpy, slope/intercept applied by hand, lossless syntaxes identical to the
uncompressed original, lossy ones close to it."""

from __future__ import annotations

import glob
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
import pytest

from core.imaging.pixels import PixelDecodeError, read_frame
from tests.imaging.refdata import CT_TS, ENHANCED_MR, PYDICOM_TF, SIGNED_12, WG04, instance


@dataclass(frozen=True)
class Ref:
    """One catalogue entry (in the manner of pydicom's PIXEL_REFERENCE)."""

    path: str
    shape: tuple[int, ...]
    dtype: str
    color: bool = False
    invert: bool = False
    units: str = ""
    frames: int = 1


CATALOGUE = [
    Ref(f"{CT_TS}/CTImage.dcm", (512, 512), "float32", units="HU"),
    Ref(
        f"{CT_TS}/CTImage.dcm_BigEndianExplicitTransferSyntax_1.2.840.10008.1.2.2.dcm",
        (512, 512),
        "float32",
        units="HU",
    ),
    Ref(
        f"{CT_TS}/CTImage.dcm_JPEG2000TransferSyntax_1.2.840.10008.1.2.4.91.dcm",
        (512, 512),
        "float32",
        units="HU",
    ),
    Ref(f"{WG04}/RG1_J2KI.dcm", (1955, 1841), "float32", invert=True),
    Ref(f"{WG04}/US1_UNCR.dcm", (480, 640, 3), "uint8", color=True),
    Ref(f"{WG04}/OBXXXX1A.dcm", (600, 800, 3), "uint8", color=True),
    Ref(f"{WG04}/HTJ2KLossless_08_RGB.dcm", (480, 640, 3), "uint8", color=True),
    Ref(f"{WG04}/HTJ2K_08_RGB.dcm", (480, 640, 3), "uint8", color=True),
    Ref(f"{PYDICOM_TF}/image_dfl.dcm", (512, 512), "float32"),
    Ref(ENHANCED_MR, (64, 64), "float32", frames=64),
    Ref(SIGNED_12, (384, 384), "float32"),
    Ref("plotly__dash-vtk/demos/data/mri_brain/1-01.dcm", (320, 260), "float32"),
    Ref("QIICR__dcmqi/data/segmentations/liver.dcm", (512, 512), "float32", frames=3),
]


@pytest.mark.parametrize("ref", CATALOGUE, ids=lambda r: Path(r.path).name[-40:])
def test_catalogue(dicom_data: Path, ref: Ref) -> None:
    inst = instance(dicom_data / ref.path)
    assert inst.number_of_frames == ref.frames
    frame = read_frame(inst, ref.frames - 1)
    assert frame.values.shape == ref.shape
    assert frame.values.dtype == np.dtype(ref.dtype)
    assert frame.is_color == ref.color
    assert frame.invert == ref.invert
    assert frame.units == ref.units
    lo, hi = frame.value_range
    assert lo == pytest.approx(float(frame.values.min()))
    assert hi == pytest.approx(float(frame.values.max()))
    assert hi > lo  # a real image, not a blank


def raw_pixel_bytes(path: Path, nbytes: int, explicit: bool) -> bytes:
    """The Pixel Data value found by hand: the last (7FE0,0010) tag, its 32-bit length, the bytes
    after it (explicit VR: tag, 'OB'/'OW', 2 reserved, length; implicit: tag, length)."""
    data = path.read_bytes()
    at = data.rfind(b"\xe0\x7f\x10\x00")
    header = 12 if explicit else 8
    length = int.from_bytes(data[at + header - 4 : at + header], "little")
    assert length >= nbytes
    return data[at + header : at + header + nbytes]


def _raw_ct(dicom_data: Path) -> np.ndarray:
    """CTImage.dcm is implicit VR LE, 16-bit signed."""
    raw = raw_pixel_bytes(dicom_data / CT_TS / "CTImage.dcm", 512 * 512 * 2, explicit=False)
    return np.frombuffer(raw, dtype="<i2").reshape(512, 512)


def test_uncompressed_ct_is_raw_bytes_times_slope_plus_intercept(dicom_data: Path) -> None:
    path = dicom_data / CT_TS / "CTImage.dcm"
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    expected = _raw_ct(dicom_data).astype(np.float64) * float(ds.RescaleSlope) + float(
        ds.RescaleIntercept
    )
    frame = read_frame(instance(path))
    np.testing.assert_array_equal(frame.values, expected.astype(np.float32))
    assert frame.windows[0] == (
        float(ds.WindowCenter[0] if ds["WindowCenter"].VM > 1 else ds.WindowCenter),
        float(ds.WindowWidth[0] if ds["WindowWidth"].VM > 1 else ds.WindowWidth),
    )


LOSSLESS = [
    "1.2.840.10008.1.2",
    "1.2.840.10008.1.2.1",
    "1.2.840.10008.1.2.2",
    "1.2.840.10008.1.2.1.99",
    "1.2.840.10008.1.2.4.57",
    "1.2.840.10008.1.2.4.70",
    "1.2.840.10008.1.2.4.80",
    "1.2.840.10008.1.2.4.90",
    "1.2.840.10008.1.2.5",
]
# Lossy: (max |error| in HU, mean |error| in HU) allowed against the uncompressed slice.
LOSSY = {
    "1.2.840.10008.1.2.4.50": (100.0, 30.0),
    "1.2.840.10008.1.2.4.51": (60.0, 8.0),
    "1.2.840.10008.1.2.4.81": (4.0, 1.5),
    "1.2.840.10008.1.2.4.91": (20.0, 2.0),
}


def _variant(dicom_data: Path, uid: str) -> Path:
    found = glob.glob(str(dicom_data / CT_TS / f"CTImage.dcm_*_{uid}.dcm"))
    assert len(found) == 1, uid
    return Path(found[0])


@pytest.mark.parametrize("uid", LOSSLESS)
def test_lossless_syntaxes_identical_to_uncompressed(dicom_data: Path, uid: str) -> None:
    reference = read_frame(instance(dicom_data / CT_TS / "CTImage.dcm")).values
    inst = instance(_variant(dicom_data, uid))
    assert inst.transfer_syntax_uid == uid
    np.testing.assert_array_equal(read_frame(inst).values, reference)


@pytest.mark.parametrize("uid", sorted(LOSSY))
def test_lossy_syntaxes_close_to_uncompressed(dicom_data: Path, uid: str) -> None:
    reference = read_frame(instance(dicom_data / CT_TS / "CTImage.dcm")).values
    values = read_frame(instance(_variant(dicom_data, uid))).values
    err = np.abs(values.astype(np.float64) - reference)
    max_err, mean_err = LOSSY[uid]
    assert err.max() <= max_err
    assert err.mean() <= mean_err
    assert np.corrcoef(values.ravel(), reference.ravel())[0, 1] > 0.999


@pytest.mark.parametrize("uid", ["1.2.840.10008.1.2.4.53", "1.2.840.10008.1.2.4.55"])
def test_retired_jpeg_gives_clear_typed_error(dicom_data: Path, uid: str) -> None:
    path = _variant(dicom_data, uid)
    with pytest.raises(PixelDecodeError) as info:
        read_frame(instance(path))
    err = info.value
    assert err.path == str(path)
    assert err.transfer_syntax == uid
    assert uid in str(err)
    assert str(path) in str(err)
    assert "decoder" in err.reason


def test_monochrome1_is_flagged_inverted(dicom_data: Path) -> None:
    ds = pydicom.dcmread(dicom_data / WG04 / "RG1_J2KI.dcm", stop_before_pixels=True)
    assert ds.PhotometricInterpretation == "MONOCHROME1"
    frame = read_frame(instance(dicom_data / WG04 / "RG1_J2KI.dcm"))
    assert frame.invert
    assert not frame.is_color


def test_signed_12_bit_sign_extended_from_high_bit(dicom_data: Path) -> None:
    path = dicom_data / SIGNED_12
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    assert (ds.BitsStored, ds.HighBit, ds.PixelRepresentation) == (12, 11, 1)
    words = np.frombuffer(raw_pixel_bytes(path, 384 * 384 * 2, explicit=True), dtype="<u2").astype(
        np.int32
    )
    by_hand = ((words & 0xFFF) ^ 0x800) - 0x800  # two's complement of the low 12 bits
    values = read_frame(instance(path)).values
    np.testing.assert_array_equal(values.ravel(), by_hand.astype(np.float32))
    assert values.min() < 0  # the stripes of -241 / -1 are negative


def test_enhanced_mr_frame_uses_its_own_rescale(dicom_data: Path) -> None:
    path = dicom_data / ENHANCED_MR
    ds = pydicom.dcmread(path)
    k = 37
    item = ds.PerFrameFunctionalGroupsSequence[k].PixelValueTransformationSequence[0]
    n = ds.Rows * ds.Columns
    raw = np.frombuffer(ds.PixelData, dtype="<u2")[k * n : (k + 1) * n].reshape(ds.Rows, ds.Columns)
    expected = raw * float(item.RescaleSlope) + float(item.RescaleIntercept)
    frame = read_frame(instance(path), k)
    np.testing.assert_allclose(frame.values, expected, rtol=1e-6, atol=1e-4)
    voi = ds.PerFrameFunctionalGroupsSequence[k].FrameVOILUTSequence[0]
    assert frame.windows[0] == (float(voi.WindowCenter), float(voi.WindowWidth))
    inst = instance(path)
    assert inst.frame_positions is not None
    assert len(inst.frame_positions) == 64
    pos = ds.PerFrameFunctionalGroupsSequence[k].PlanePositionSequence[0].ImagePositionPatient
    assert inst.frame_positions[k] == pytest.approx(tuple(float(v) for v in pos))


def test_frame_out_of_range_is_an_error(dicom_data: Path) -> None:
    with pytest.raises(PixelDecodeError, match="out of range"):
        read_frame(instance(dicom_data / ENHANCED_MR), 64)


def test_rgb_uncompressed_matches_raw_bytes(dicom_data: Path) -> None:
    path = dicom_data / WG04 / "US1_UNCR.dcm"
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    assert ds.PlanarConfiguration == 0  # interleaved R, G, B
    raw = np.frombuffer(
        raw_pixel_bytes(path, 480 * 640 * 3, explicit=True), dtype=np.uint8
    ).reshape(480, 640, 3)
    np.testing.assert_array_equal(read_frame(instance(path)).values, raw)


def test_palette_color_applied_by_hand(dicom_data: Path) -> None:
    path = dicom_data / WG04 / "OBXXXX1A.dcm"
    ds = pydicom.dcmread(path)
    entries, first, bits = ds.RedPaletteColorLookupTableDescriptor
    index = np.frombuffer(ds.PixelData, dtype=np.uint8).reshape(ds.Rows, ds.Columns)
    channels = []
    for colour in ("Red", "Green", "Blue"):
        lut = np.frombuffer(ds[f"{colour}PaletteColorLookupTableData"].value, dtype="<u2")
        channels.append(lut[np.clip(index.astype(np.int64) - first, 0, entries - 1)] >> 8)
    expected = np.stack(channels, axis=-1).astype(np.uint8)
    assert bits == 16
    np.testing.assert_array_equal(read_frame(instance(path)).values, expected)


def test_ybr_full_converted_to_rgb(dicom_data: Path, tmp_path: Path) -> None:
    """A YBR_FULL copy of the RGB ultrasound (ITU-R BT.601 full range, by hand) reads as RGB."""
    src = dicom_data / WG04 / "US1_UNCR.dcm"
    ds = pydicom.dcmread(src)
    rgb = np.frombuffer(ds.PixelData, dtype=np.uint8).reshape(480, 640, 3).astype(np.float64)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    y = 0.299 * r + 0.587 * g + 0.114 * b
    cb = -0.168736 * r - 0.331264 * g + 0.5 * b + 128
    cr = 0.5 * r - 0.418688 * g - 0.081312 * b + 128
    ybr = np.clip(np.rint(np.stack([y, cb, cr], axis=-1)), 0, 255).astype(np.uint8)
    ds.PixelData = ybr.tobytes()
    ds.PhotometricInterpretation = "YBR_FULL"
    out = tmp_path / "ybr.dcm"
    ds.save_as(out)
    values = read_frame(instance(out)).values
    assert values.dtype == np.uint8
    assert np.abs(values.astype(int) - rgb.astype(int)).max() <= 2


def test_htj2k_lossy_close_to_lossless(dicom_data: Path) -> None:
    lossless = read_frame(instance(dicom_data / WG04 / "HTJ2KLossless_08_RGB.dcm")).values
    lossy = read_frame(instance(dicom_data / WG04 / "HTJ2K_08_RGB.dcm")).values
    assert np.abs(lossy.astype(int) - lossless.astype(int)).mean() < 3.0


def test_truncated_pixel_data_is_a_decode_error(dicom_data: Path) -> None:
    from core.imaging.model import Instance

    path = str(dicom_data / PYDICOM_TF / "MR_truncated.dcm")
    with pytest.raises(PixelDecodeError, match="8130"):
        read_frame(Instance(path=path, sop_instance_uid="x"))


def test_structured_report_has_no_image(dicom_data: Path) -> None:
    inst = instance(dicom_data / "QIICR__dcmqi/data/sr-example/sr.dcm")
    assert not inst.has_pixels
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(PixelDecodeError, match="no image"):
            read_frame(inst)


@pytest.mark.parametrize("syntax", ["1.2.840.10008.1.2.5", "1.2.840.10008.1.2.4.90"])
def test_colour_lossless_round_trip(dicom_data: Path, tmp_path: Path, syntax: str) -> None:
    """The RGB ultrasound re-encoded here (RLE, JPEG 2000 lossless) decodes to the same pixels."""
    src = dicom_data / WG04 / "US1_UNCR.dcm"
    original = read_frame(instance(src)).values
    ds = pydicom.dcmread(src)
    ds.compress(syntax)
    out = tmp_path / "rgb.dcm"
    ds.save_as(out)
    inst = instance(out)
    assert inst.transfer_syntax_uid == syntax
    np.testing.assert_array_equal(read_frame(inst).values, original)


def test_modality_lut_sequence_applied(dicom_data: Path, tmp_path: Path) -> None:
    """A Modality LUT Sequence replaces slope/intercept: output = LUT[stored - first], clamped."""
    src = dicom_data / "neurolabusc__dcm_qa_12bit/In/12bitUnsigned.dcm"
    ds = pydicom.dcmread(src)
    stored = ds.pixel_array.astype(np.int64)
    first, n = 100, 1000
    table = (np.arange(n) * 3 % 4096).astype(np.uint16)  # an arbitrary, non-linear mapping
    item = pydicom.Dataset()
    item.LUTDescriptor = [n, first, 16]
    item.LUTData = table.tolist()
    item.ModalityLUTType = "US"
    item["LUTDescriptor"].VR = "US"
    item["LUTData"].VR = "US"
    ds.ModalityLUTSequence = pydicom.Sequence([item])
    for keyword in ("RescaleSlope", "RescaleIntercept", "RescaleType"):
        if keyword in ds:
            delattr(ds, keyword)
    out = tmp_path / "mlut.dcm"
    ds.save_as(out)
    expected = table[np.clip(stored - first, 0, n - 1)].astype(np.float32)
    inst = instance(out)
    assert inst.pixel is not None
    assert inst.pixel.has_modality_lut_sequence
    np.testing.assert_array_equal(read_frame(inst).values, expected)


def test_zero_pixel_spacing_means_unknown_not_zero_mm() -> None:
    """The sample chest CR carries PixelSpacing 0\\0 and no ImagerPixelSpacing: a length on it
    must be given in pixels, never as 0.0 mm."""
    from pathlib import Path

    import pydicom

    from core.imaging.header import read_header
    from core.imaging.pixels import read_frame
    from core.viewer.measure import length

    path = (
        Path(__file__).resolve().parents[2] / "resources" / "sample" / "chest_cr" / "RG1_J2KI.dcm"
    )
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    assert [float(v) for v in ds.PixelSpacing] == [0.0, 0.0]
    instance = read_header(str(path), require_uids=False).instance
    assert instance.pixel_spacing is None
    frame = read_frame(instance)
    assert frame.pixel_spacing is None
    measured = length((10.0, 10.0), (40.0, 50.0), frame.pixel_spacing)
    assert measured.value == 50.0
    assert measured.unit == "px"
