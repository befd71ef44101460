"""Calibration and thresholds as declared in the manifest's output spec."""

from __future__ import annotations

import numpy as np
import pytest

from models.manifest import OutputSpec
from models.postprocess import decide, positive_scores, probabilities


def _binary(**cal: object) -> OutputSpec:
    return OutputSpec.model_validate(
        {
            "labels": ["normal", "pneumonia"],
            "positive_label": "pneumonia",
            "thresholds": {"pneumonia": 0.3},
            "activation": "softmax",
            "calibrated": True,
            "calibration": {"method": "temperature", "temperature": 2.0, **cal},
        }
    )


def test_temperature_softmax_by_hand() -> None:
    probs = probabilities(np.array([[0.0, 2.0]]), _binary())
    expected = 1 / (1 + np.exp(-1.0))  # softmax of [0, 2] / 2
    assert probs[0, 1] == pytest.approx(expected, abs=1e-6)


def test_threshold_not_argmax() -> None:
    spec = _binary()
    probs = np.array([[0.65, 0.35], [0.8, 0.2]], dtype=np.float32)
    assert decide(probs, spec) == ["pneumonia", "normal"]
    np.testing.assert_allclose(positive_scores(probs, spec), [0.35, 0.2])


def test_platt_single_logit_expands_to_label_order() -> None:
    spec = OutputSpec.model_validate(
        {
            "labels": ["benign", "malignant"],
            "positive_label": "malignant",
            "activation": "sigmoid",
            "calibrated": True,
            "calibration": {"method": "platt", "a": 2.0, "b": -1.0},
        }
    )
    probs = probabilities(np.array([0.5, 3.0]), spec)
    p = 1 / (1 + np.exp(-(2.0 * np.array([0.5, 3.0]) - 1.0)))
    np.testing.assert_allclose(probs[:, 1], p, rtol=1e-6)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-6)


def test_calibrated_without_method_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"calibration\.method is 'none'"):
        OutputSpec.model_validate({"labels": ["a", "b"], "calibrated": True})
