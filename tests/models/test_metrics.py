"""models.metrics against scikit-learn's independent implementations."""

from __future__ import annotations

import numpy as np
import pytest

from models.metrics import binary_auc, classification_metrics, ece, fit_temperature


def test_auc_matches_sklearn_with_ties() -> None:
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 300)
    score = np.round(rng.random(300) + 0.3 * y, 1)  # rounded: many ties
    assert binary_auc(y, score) == pytest.approx(roc_auc_score(y, score), abs=1e-12)


def test_binary_metrics_by_hand() -> None:
    y = np.array([1, 1, 1, 0, 0])
    p1 = np.array([0.9, 0.6, 0.2, 0.4, 0.1])
    probs = np.stack([1 - p1, p1], axis=1)
    m = classification_metrics(y, probs, positive=1)
    assert m["sensitivity"] == pytest.approx(2 / 3)
    assert m["specificity"] == pytest.approx(1.0)
    assert m["accuracy"] == pytest.approx(4 / 5)


def test_multiclass_auc_matches_sklearn_macro_ovr() -> None:
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(1)
    y = np.arange(200) % 4
    logits = rng.normal(size=(200, 4)) + np.eye(4)[y]
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    expected = roc_auc_score(y, probs, multi_class="ovr", average="macro")
    assert classification_metrics(y, probs, None)["auc"] == pytest.approx(expected, abs=1e-9)


def test_ece_zero_when_confidence_equals_accuracy() -> None:
    probs = np.array([[0.75, 0.25]] * 4)
    assert ece(np.array([0, 0, 0, 1]), probs) == pytest.approx(0.0)
    assert ece(np.array([1, 1, 1, 1]), probs) == pytest.approx(0.75)


def test_temperature_recovers_overconfidence() -> None:
    rng = np.random.default_rng(2)
    true_logits = rng.normal(size=(4000, 2)) * 2
    p = np.exp(true_logits) / np.exp(true_logits).sum(axis=1, keepdims=True)
    y = (rng.random(4000) < p[:, 1]).astype(int)
    assert fit_temperature(true_logits * 3.0, y) == pytest.approx(3.0, rel=0.1)
