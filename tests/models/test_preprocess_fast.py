"""The fast preprocessing path against the direct one: the resize is Pillow's own (bit for bit
below BIG_PIXELS, within float32 rounding above); the fused window + resize agrees within 1e-5
of the [0, 1] window on real images."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

import models.preprocess as prep
from models import resample
from models.manifest import InputSpec
from models.preprocess import preprocess_image
from models.resample import resize_plane

_REPO = Path(__file__).resolve().parents[2]
_CR = _REPO / "resources" / "sample" / "chest_cr" / "RG1_J2KI.dcm"
_MR = Path("plotly__dash-vtk") / "demos" / "data" / "mri_brain"


@pytest.fixture(scope="module")
def cr() -> Any:
    from core.imaging.header import read_header
    from core.imaging.pixels import read_frame

    return read_frame(read_header(str(_CR), require_uids=False).instance)


def _pillow(plane: np.ndarray, size: tuple[int, int], box: Any = None) -> np.ndarray:
    image = Image.fromarray(np.ascontiguousarray(plane, dtype=np.float32), mode="F")
    return np.asarray(image.resize((size[1], size[0]), Image.Resampling.BILINEAR, box))


@pytest.mark.parametrize(
    ("shape", "size", "box"),
    [
        ((1955, 1841), (224, 224), None),  # the CR for a clinical-size model: split bands
        ((1955, 1841), (28, 28), None),
        ((1955, 1841), (1955, 224), None),  # horizontal pass only
        ((1955, 1841), (224, 1841), None),  # vertical pass only (never split)
        ((1200, 1100), (1500, 300), None),  # up one axis, down the other
        ((489, 461), (224, 224), (0.375, 0.375, 460.625, 489.0)),  # a reduced frame's box
        ((1100, 1030), (224, 224), (0.4375, 0.4375, 1029.5, 1099.5)),  # a box, split bands
        ((320, 260), (64, 64), None),  # an MR slice: below the threading size
    ],
)
def test_resize_plane_is_pillows_resize(
    cr: Any, shape: tuple[int, int], size: tuple[int, int], box: Any
) -> None:
    """Bit for bit through Pillow below BIG_PIXELS; above, the matrix-product path with
    Pillow's coefficients: measured 2.3e-7 of the plane's largest value, tolerance 1e-6."""
    plane = np.ascontiguousarray(cr.values[: shape[0], : shape[1]])
    if plane.shape != shape:
        plane = np.asarray(_pillow(cr.values, shape))
    ours = resize_plane(plane, size, box)
    theirs = _pillow(plane, size, box)
    assert ours.shape == size
    assert ours.dtype == np.float32
    if plane.size < resample.BIG_PIXELS:
        np.testing.assert_array_equal(ours, theirs)
    else:
        scale = float(np.abs(plane).max())
        np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-6 * scale)


@pytest.mark.parametrize("size", [(224, 224), (32, 48)])
def test_clipping_in_the_bands_is_clipping_first(cr: Any, size: tuple[int, int]) -> None:
    plane = np.ascontiguousarray(cr.values)
    low, high = np.percentile(plane[::8, ::8], [10, 90])
    scratch = np.empty_like(plane)
    ours = resize_plane(plane, size, clip=(low, high), out=scratch)
    clipped = np.clip(plane, np.float32(low), np.float32(high))
    np.testing.assert_allclose(ours, _pillow(clipped, size), rtol=0, atol=1e-6 * float(high))
    np.testing.assert_array_equal(scratch, clipped)  # the scratch holds the clipped frame
    # without a scratch: a new array, the input untouched
    np.testing.assert_array_equal(resize_plane(plane, size, clip=(low, high)), ours)
    assert float(plane.max()) > high


def test_one_band_or_many_give_the_same_result(cr: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    before = cr.values.copy()
    two = resize_plane(cr.values, (224, 224))
    monkeypatch.setattr(resample, "BANDS", 1)  # BLAS may round a band's rows differently
    one = resize_plane(cr.values, (224, 224))
    np.testing.assert_allclose(one, two, rtol=0, atol=1e-6 * float(np.abs(cr.values).max()))
    monkeypatch.setattr(resample, "BIG_PIXELS", 0)  # a small plane through the matrix path
    small = np.ascontiguousarray(cr.values[:301, :257])
    scale = float(np.abs(small).max())
    got = resize_plane(small, (30, 20))
    np.testing.assert_allclose(got, _pillow(small, (30, 20)), rtol=0, atol=1e-6 * scale)
    np.testing.assert_array_equal(cr.values, before)


def _spec(steps: list[dict[str, Any]], size: tuple[int, int], channels: int = 1) -> InputSpec:
    return InputSpec.model_validate(
        {
            "kind": "image",
            "size": list(size),
            "channels": channels,
            "layout": "NHWC",
            "preprocessing": steps,
        }
    )


def _frames(cr: Any, dicom_data: Path) -> list[tuple[str, Any]]:
    from core.imaging.header import read_header
    from core.imaging.pixels import read_frame

    frames = [("CR 1955x1841 MONOCHROME1", cr)]
    mr = sorted((dicom_data / _MR).glob("*.dcm"))
    if mr:
        inst = read_header(str(mr[len(mr) // 2]), require_uids=False).instance
        frames.append(("MR 320x260", read_frame(inst)))
    return frames


def _both(image: Any, spec: InputSpec, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, Any]:
    fast = preprocess_image(image, spec, "m")
    with monkeypatch.context() as m:
        m.setattr(prep, "FUSE_WINDOW_RESIZE", False)  # window in full, then resize: the reference
        direct = preprocess_image(image, spec, "m")
    return fast, direct


@pytest.mark.parametrize(
    "window",
    [
        {"op": "auto_window", "low_percentile": 0.5, "high_percentile": 99.5},
        {"op": "auto_window", "low_percentile": 5, "high_percentile": 60},  # much clipped
        {"op": "window"},  # the frame's own first window (CR: 15000/30000)
    ],
)
@pytest.mark.parametrize("size", [224, 28])
def test_fused_window_resize_matches_the_direct_path(
    cr: Any,
    dicom_data: Path,
    monkeypatch: pytest.MonkeyPatch,
    window: dict[str, Any],
    size: int,
) -> None:
    """Measured max |diff| 1.2e-7 (of the [0, 1] window, CR and MR); tolerance 1e-5."""
    for name, frame in _frames(cr, dicom_data):
        step = window
        if window["op"] == "window":
            center, width = frame.default_window()
            step = {"op": "window", "center": center, "width": width}
        spec = _spec([step, {"op": "resize", "size": [size, size]}], (size, size))
        fast, direct = _both(frame, spec, monkeypatch)
        assert fast.shape == direct.shape == (size, size, 1)
        assert float(direct.std()) > 0.01, name  # a real image in the window, not a flat one
        np.testing.assert_allclose(fast, direct, rtol=0, atol=1e-5, err_msg=name)
        assert float(fast.min()) >= 0.0
        assert float(fast.max()) <= 1.0


def test_a_narrow_window_far_from_zero_takes_the_direct_path(
    cr: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Width 100 around 20000: float32 rounding on that scale would show, so no fusing."""
    spec = _spec(
        [{"op": "window", "center": 20000, "width": 100}, {"op": "resize", "size": [64, 64]}],
        (64, 64),
    )
    fast, direct = _both(cr, spec, monkeypatch)
    np.testing.assert_array_equal(fast, direct)


def test_rgb_planes_are_fused_too(dicom_data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from core.imaging.header import read_header
    from core.imaging.pixels import read_frame

    path = dicom_data / "pydicom__pydicom-data" / "data_store" / "data" / "US1_UNCR.dcm"
    if not path.is_file():
        pytest.skip(f"the shared RGB ultrasound is not at '{path}'")
    frame = read_frame(read_header(str(path), require_uids=False).instance)
    assert frame.is_color
    spec = _spec(
        [{"op": "window", "center": 100, "width": 180}, {"op": "resize", "size": [32, 32]}],
        (32, 32),
        channels=3,
    )
    fast, direct = _both(frame.values, spec, monkeypatch)
    assert fast.shape == (32, 32, 3)
    assert float(direct.std()) > 0.01
    np.testing.assert_allclose(fast, direct, rtol=0, atol=1e-5)


def test_zoo_model_scores_unchanged_by_the_fast_path(
    cr: Any, dicom_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The shipped image models on the real CR and MR: scores within 1e-4 (both paths)."""
    from models.adapters import load_model
    from models.manifest import load_package

    for model_id in ("chest-xray-pneumonia", "brain-tumour-mri"):
        folder = _REPO / "models" / "zoo" / model_id
        assert json.loads((folder / "manifest.json").read_text())["input"]["preprocessing"]
        package = load_package(folder)
        model = load_model(package, "cpu")
        try:
            for name, frame in _frames(cr, dicom_data):
                fast, direct = _both(frame, package.manifest.input, monkeypatch)
                got = model.predict(fast[None])
                ref = model.predict(direct[None])
                assert float(np.max(np.abs(got - ref))) <= 1e-4, (model_id, name)
        finally:
            model.close()
