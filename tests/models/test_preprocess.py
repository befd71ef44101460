"""Declared preprocessing: values computed independently, and failures name the step."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from models.manifest import InputSpec
from models.preprocess import PreprocessError, preprocess_batch, preprocess_image


def _spec(steps: list[dict[str, Any]], size: tuple[int, int] = (4, 4), channels: int = 1,
          layout: str = "NHWC") -> InputSpec:
    return InputSpec.model_validate({"kind": "image", "size": list(size), "channels": channels,
                                     "layout": layout, "preprocessing": steps})


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
    spec = _spec([{"op": "resize", "size": [4, 4]}, {"op": "normalize", "mean": 1.0, "std": 0.5},
                  {"op": "to_channels", "n": 3}], channels=3, layout="NCHW")
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
    spec = _spec([{"op": "scale", "factor": 1.0},
                  {"op": "normalize", "mean": [0.1, 0.2], "std": [1.0, 1.0]}])
    with pytest.raises(PreprocessError) as err:
        preprocess_image(np.zeros((4, 4), np.float32), spec, "chest-xray-pneumonia")
    assert str(err.value).startswith(
        "applying preprocessing step 'normalize' of model 'chest-xray-pneumonia': ")
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
