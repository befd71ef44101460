"""Validation metrics from labels and probabilities, in plain numpy (no sklearn at runtime).

AUC is the rank (Mann-Whitney) form with tie-averaged ranks; multi-class AUC, sensitivity and
specificity are one-vs-rest macro averages. ECE uses 10 equal-width bins of the top-label
confidence. Written here, not taken from sklearn, so `models verify --eval` runs without it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt


def _average_ranks(scores: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores), dtype=np.float64)
    ranks[order] = np.arange(1, len(scores) + 1)
    _, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    sums = np.bincount(inverse, weights=ranks)
    return np.asarray(sums[inverse] / counts[inverse], dtype=np.float64)


def binary_auc(y_true: npt.NDArray[Any], score: npt.NDArray[Any]) -> float:
    y = np.asarray(y_true).astype(bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError("AUC needs both classes present")
    ranks = _average_ranks(np.asarray(score, dtype=np.float64))
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def ece(y_true: npt.NDArray[Any], probs: npt.NDArray[Any], bins: int = 10) -> float:
    """Expected calibration error of the top-label confidence."""
    p = np.asarray(probs, dtype=np.float64)
    conf = p.max(axis=1)
    correct = (p.argmax(axis=1) == np.asarray(y_true)).astype(np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    idx = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        mask = idx == b
        if mask.any():
            total += mask.mean() * abs(conf[mask].mean() - correct[mask].mean())
    return float(total)


def classification_metrics(
    y_true: npt.NDArray[Any],
    probs: npt.NDArray[Any],
    positive: int | None,
    threshold: float = 0.5,
) -> dict[str, float]:
    """AUC, accuracy, sensitivity, specificity and ECE.

    Binary (``positive`` = index of the positive label): the positive class is called at
    ``threshold``. Multi-class (``positive`` None): argmax, macro one-vs-rest figures.
    """
    y = np.asarray(y_true).astype(int)
    p = np.asarray(probs, dtype=np.float64)
    if positive is not None:
        score = p[:, positive]
        is_pos = y == positive
        called = score >= threshold
        pred = np.where(called, positive, 1 - positive)
        return {
            "auc": binary_auc(is_pos, score),
            "accuracy": float((pred == y).mean()),
            "sensitivity": float(called[is_pos].mean()),
            "specificity": float((~called[~is_pos]).mean()),
            "ece": ece(y, p),
        }
    pred = p.argmax(axis=1)
    classes = range(p.shape[1])
    sens = [float((pred[y == k] == k).mean()) for k in classes]
    spec = [float((pred[y != k] != k).mean()) for k in classes]
    return {
        "auc": float(np.mean([binary_auc(y == k, p[:, k]) for k in classes])),
        "accuracy": float((pred == y).mean()),
        "sensitivity": float(np.mean(sens)),
        "specificity": float(np.mean(spec)),
        "ece": ece(y, p),
    }


def fit_temperature(logits: npt.NDArray[Any], y_true: npt.NDArray[Any]) -> float:
    """The softmax temperature minimising negative log-likelihood (grid + golden refinement)."""
    z = np.asarray(logits, dtype=np.float64)
    y = np.asarray(y_true).astype(int)

    def nll(t: float) -> float:
        s = z / t
        s = s - s.max(axis=1, keepdims=True)
        logp = s - np.log(np.exp(s).sum(axis=1, keepdims=True))
        return float(-logp[np.arange(len(y)), y].mean())

    # Bounded: on a perfectly separated val set the NLL keeps falling as T -> 0, and a
    # temperature far below this bound would only reflect that, not calibration.
    grid = np.exp(np.linspace(np.log(0.2), np.log(20.0), 200))
    best = float(grid[int(np.argmin([nll(t) for t in grid]))])
    lo, hi = max(best / 1.05, 0.2), min(best * 1.05, 20.0)
    for _ in range(40):  # golden-section refine inside the best grid cell
        a, b = lo + 0.382 * (hi - lo), lo + 0.618 * (hi - lo)
        lo, hi = (lo, b) if nll(a) < nll(b) else (a, hi)
    return round((lo + hi) / 2, 6)


def youden_threshold(y_is_positive: npt.NDArray[Any], score: npt.NDArray[Any]) -> float:
    """The score cut-off maximising sensitivity + specificity - 1 (midpoint between scores)."""
    y = np.asarray(y_is_positive).astype(bool)
    s = np.asarray(score, dtype=np.float64)
    cuts = np.unique(s)
    mids = np.concatenate([[0.0], (cuts[:-1] + cuts[1:]) / 2, [1.0]])
    best, best_j = 0.5, -1.0
    for t in mids:
        called = s >= t
        j = called[y].mean() + (~called[~y]).mean() - 1.0
        if j > best_j + 1e-12:
            best, best_j = float(t), float(j)
    return round(best, 4)


def bootstrap_interval(
    sample: npt.NDArray[Any], level: float = 0.95, n_boot: int = 2000, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``sample`` (e.g. 0/1 calls -> a rate).

    Why a bootstrap and not a closed form: the manifest's intervals for sensitivity and
    specificity then come from one documented procedure (resampling the validation cases of
    that class), reproducible from the seed.
    """
    x = np.asarray(sample, dtype=np.float64).ravel()
    if len(x) == 0:
        raise ValueError("bootstrap interval needs at least one value")
    if not 0.0 < level < 1.0:
        raise ValueError(f"bootstrap level must be in (0, 1), got {level}")
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, len(x), size=(n_boot, len(x)))].mean(axis=1)
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(means, [alpha, 1.0 - alpha])
    return float(lo), float(hi)


def operating_point_intervals(
    y_true: npt.NDArray[Any],
    probs: npt.NDArray[Any],
    positive: int,
    threshold: float,
    level: float = 0.95,
    n_boot: int = 2000,
    seed: int = 0,
) -> dict[str, tuple[float, float]]:
    """95% bootstrap intervals of sensitivity and specificity at a fixed ``threshold``.

    Stratified: positives and negatives are resampled separately, so each interval reflects
    the number of cases of its own class (21 malignant images give a wide one, as they should).
    """
    y = np.asarray(y_true).astype(int)
    called = np.asarray(probs, dtype=np.float64)[:, positive] >= threshold
    is_pos = y == positive
    sens = bootstrap_interval(called[is_pos], level, n_boot, seed)
    spec = bootstrap_interval(~called[~is_pos], level, n_boot, seed + 1)
    return {
        "sensitivity_ci": (round(sens[0], 4), round(sens[1], 4)),
        "specificity_ci": (round(spec[0], 4), round(spec[1], 4)),
    }
