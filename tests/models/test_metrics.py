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


def test_bootstrap_interval_covers_a_known_rate_about_95_percent_of_the_time() -> None:
    """Coverage: the percentile bootstrap of a proportion (n=200, p=0.85) should contain the
    true rate in roughly 95% of repeated samples; a broken resampler (wrong axis, quantiles
    swapped, level ignored) misses by far."""
    from models.metrics import bootstrap_interval

    rng = np.random.default_rng(3)
    p, n, trials = 0.85, 200, 400
    hits = 0
    for t in range(trials):
        sample = rng.random(n) < p
        lo, hi = bootstrap_interval(sample, n_boot=500, seed=t)
        assert lo <= sample.mean() <= hi
        hits += lo <= p <= hi
    assert 0.90 <= hits / trials <= 0.98


def test_bootstrap_interval_width_shrinks_with_n_and_level() -> None:
    from models.metrics import bootstrap_interval

    small = np.array([1] * 15 + [0] * 5)  # 20 cases, rate 0.75
    large = np.tile(small, 25)  # 500 cases, same rate
    w_small = np.subtract(*bootstrap_interval(small)[::-1])
    w_large = np.subtract(*bootstrap_interval(large)[::-1])
    # binomial standard error scales as 1/sqrt(n): 5x narrower for 25x the cases
    assert w_large == pytest.approx(w_small / 5, rel=0.35)
    lo80, hi80 = bootstrap_interval(large, level=0.80)
    lo95, hi95 = bootstrap_interval(large, level=0.95)
    assert lo95 < lo80 < 0.75 < hi80 < hi95
    with pytest.raises(ValueError, match="at least one value"):
        bootstrap_interval(np.array([]))


def test_operating_point_intervals_resample_each_class_separately() -> None:
    from models.metrics import operating_point_intervals

    # 10 positives (8 called), 90 negatives (all correctly not called) at threshold 0.5
    y = np.array([1] * 10 + [0] * 90)
    p1 = np.array([0.9] * 8 + [0.1] * 2 + [0.2] * 90)
    probs = np.stack([1 - p1, p1], axis=1)
    got = operating_point_intervals(y, probs, positive=1, threshold=0.5)
    lo, hi = got["sensitivity_ci"]
    assert lo < 0.8 < hi
    assert hi - lo > 0.3  # ten cases: a wide interval around 0.8
    assert got["specificity_ci"] == (1.0, 1.0)  # every negative right in every resample


def test_youden_threshold_separates_and_maximises_j() -> None:
    from models.metrics import youden_threshold

    y = np.array([0, 0, 0, 1, 1, 1])
    assert 0.3 < youden_threshold(y, np.array([0.1, 0.2, 0.3, 0.6, 0.7, 0.8])) <= 0.6
    rng = np.random.default_rng(5)
    yy = rng.integers(0, 2, 500)
    s = np.clip(rng.normal(0.4 + 0.2 * yy, 0.1), 0, 1)
    t = youden_threshold(yy, s)

    def j(c: float) -> float:
        return float((s[yy == 1] >= c).mean() + (s[yy == 0] < c).mean() - 1)

    assert all(j(t) >= j(c) - 1e-12 for c in np.linspace(0, 1, 101))
