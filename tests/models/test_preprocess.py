"""Declared preprocessing: values computed independently, and failures name the step."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from models.manifest import InputSpec
from models.preprocess import (
    STATS_MAX_PIXELS,
    PreprocessError,
    preprocess_batch,
    preprocess_image,
    stats_view,
)


def _spec(
    steps: list[dict[str, Any]],
    size: tuple[int, int] = (4, 4),
    channels: int = 1,
    layout: str = "NHWC",
) -> InputSpec:
    return InputSpec.model_validate(
        {
            "kind": "image",
            "size": list(size),
            "channels": channels,
            "layout": layout,
            "preprocessing": steps,
        }
    )


def test_window_maps_linearly_and_clips() -> None:
    image = np.array([[-1000.0, 0.0], [40.0, 3000.0]], dtype=np.float32)
    spec = _spec([{"op": "window", "center": 40, "width": 400}], size=(2, 2))
    out = preprocess_image(image, spec, "m")[:, :, 0]
    # by hand: low = -160, high = 240
    np.testing.assert_allclose(out, [[0.0, 160 / 400], [200 / 400, 1.0]], atol=1e-6)


@dataclass
class _Frame:
    values: np.ndarray
    invert: bool


def test_monochrome1_frame_is_inverted_after_windowing() -> None:
    values = np.array([[0.0, 100.0], [50.0, 100.0]], dtype=np.float32)
    spec = _spec([{"op": "auto_window"}], size=(2, 2))
    plain = preprocess_image(_Frame(values, False), spec, "m")[:, :, 0]
    inverted = preprocess_image(_Frame(values, True), spec, "m")[:, :, 0]
    np.testing.assert_allclose(plain, [[0, 1], [0.5, 1]], atol=1e-6)
    np.testing.assert_allclose(inverted, 1 - plain, atol=1e-6)


def test_resize_normalize_channels_and_layout() -> None:
    image = np.full((8, 6), 2.0, dtype=np.float32)
    spec = _spec(
        [
            {"op": "resize", "size": [4, 4]},
            {"op": "normalize", "mean": 1.0, "std": 0.5},
            {"op": "to_channels", "n": 3},
        ],
        channels=3,
        layout="NCHW",
    )
    out = preprocess_batch([image, image], spec, "m")
    assert out.shape == (2, 3, 4, 4)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, 2.0, atol=1e-5)  # (2 - 1) / 0.5


def test_rgb_scale_and_to_grey() -> None:
    rgb = np.zeros((4, 4, 3), dtype=np.uint8)
    rgb[..., 0] = 255
    spec = _spec([{"op": "scale", "factor": 1 / 255}, {"op": "to_channels", "n": 1}])
    np.testing.assert_allclose(preprocess_image(rgb, spec, "m"), 1 / 3, atol=1e-6)


def test_failing_step_is_named() -> None:
    spec = _spec(
        [{"op": "scale", "factor": 1.0}, {"op": "normalize", "mean": [0.1, 0.2], "std": [1.0, 1.0]}]
    )
    with pytest.raises(PreprocessError) as err:
        preprocess_image(np.zeros((4, 4), np.float32), spec, "chest-xray-pneumonia")
    assert str(err.value).startswith(
        "applying preprocessing step 'normalize' of model 'chest-xray-pneumonia': "
    )
    assert "2 values given for 1 channel(s)" in str(err.value)
    assert err.value.step == "normalize"


def test_wrong_input_shape_and_declared_size_mismatch() -> None:
    spec = _spec([{"op": "auto_window"}])
    with pytest.raises(PreprocessError, match=r"step 'input' of model 'm'.*shape"):
        preprocess_image(np.zeros((2, 4, 4, 4), np.float32), spec, "m")
    with pytest.raises(PreprocessError, match=r"step 'output'.*size \(5, 5\) != declared"):
        preprocess_image(np.zeros((5, 5), np.float32), spec, "m")


def test_tabular_rows_checked() -> None:
    spec = InputSpec.model_validate({"kind": "tabular", "features": ["a", "b", "c"]})
    assert preprocess_batch(np.ones((2, 3)), spec, "t").shape == (2, 3)
    with pytest.raises(PreprocessError, match=r"expected \(N, 3\) feature rows"):
        preprocess_batch(np.ones((2, 4)), spec, "t")


_REPO = Path(__file__).resolve().parents[2]
_CR = _REPO / "resources" / "sample" / "chest_cr" / "RG1_J2KI.dcm"
_MR = Path("plotly__dash-vtk") / "demos" / "data" / "mri_brain"


def _real_frames(dicom_data: Path) -> list[tuple[str, Any]]:
    from core.imaging.header import read_header
    from core.imaging.pixels import read_frame

    paths = [("CR 1955x1841", _CR)]
    mr = sorted((dicom_data / _MR).glob("*.dcm"))
    if mr:
        paths.append(("MR 320x260", mr[len(mr) // 2]))
    return [
        (name, read_frame(read_header(str(p), require_uids=False).instance)) for name, p in paths
    ]


def test_stats_view_bounds_the_sample_and_keeps_small_images_whole() -> None:
    big = np.zeros((1955, 1841), np.float32)
    view = stats_view(big)
    assert view.shape[0] * view.shape[1] <= STATS_MAX_PIXELS
    assert view.shape[0] * view.shape[1] > STATS_MAX_PIXELS // 4  # not needlessly coarse
    assert np.shares_memory(view, big)  # a view, no copy
    small = np.zeros((28, 28), np.float32)  # training/validation images: every pixel counts
    assert stats_view(small) is small


def test_strided_window_statistics_match_full_ones_on_real_images(
    dicom_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fast path's model input stays within 0.01 (of the [0, 1] window) of the exact one."""
    import models.preprocess as prep

    for model_id in ("chest-xray-pneumonia", "brain-tumour-mri"):
        manifest = json.loads((_REPO / "models" / "zoo" / model_id / "manifest.json").read_text())
        steps = [s for s in manifest["input"]["preprocessing"] if s["op"] != "normalize"]
        spec = _spec(steps, size=tuple(manifest["input"]["size"]))
        for name, frame in _real_frames(dicom_data):
            fast = preprocess_image(frame, spec, model_id)
            with monkeypatch.context() as m:
                m.setattr(prep, "STATS_MAX_PIXELS", 1 << 40)  # every pixel: the exact path
                exact = preprocess_image(frame, spec, model_id)
            diff = float(np.max(np.abs(fast - exact)))
            assert diff <= 0.01, f"{model_id} on {name}: max |diff| {diff}"
            assert float(exact.std()) > 0.0  # a real image, not a flat one


def test_the_reused_window_buffer_never_leaks_into_a_result() -> None:
    """A window feeding a resize writes into a per-thread scratch buffer: every result must
    still be its own array, equal to what a fresh computation gives."""
    rng = np.random.default_rng(3)
    first, second = (rng.normal(100, 40, (300, 260)).astype(np.float32) for _ in range(2))
    steps = [
        {"op": "auto_window", "low_percentile": 1, "high_percentile": 99},
        {"op": "resize", "size": [32, 32]},
    ]
    resized = _spec(steps, (32, 32))
    a = preprocess_image(first, resized, "m")
    b = preprocess_image(second, resized, "m")
    np.testing.assert_array_equal(preprocess_image(first, resized, "m"), a)
    assert not np.array_equal(a, b)
    assert not np.shares_memory(a, b)
    window_only = _spec(steps[:1], (300, 260))  # no resize: the window is the result
    c = preprocess_image(first, window_only, "m")
    d = preprocess_image(second, window_only, "m")
    assert not np.shares_memory(c, d)
    assert c.shape == (300, 260, 1)
    assert not np.array_equal(c, d)
