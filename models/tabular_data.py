"""The Wisconsin breast-cancer table (bundled with scikit-learn) and its seeded train/val split.

Shared by the xgboost training script and ``models.evaluate`` so both see the same rows.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

SPLIT_SEED = 0
VAL_FRACTION = 0.25


def breast_cancer_split() -> tuple[
    list[str],
    npt.NDArray[np.float32],
    npt.NDArray[np.int64],
    npt.NDArray[np.float32],
    npt.NDArray[np.int64],
]:
    """(feature names, x_train, y_train, x_val, y_val); y: 0 malignant, 1 benign (sklearn's)."""
    from sklearn.datasets import load_breast_cancer

    data: Any = load_breast_cancer()
    x = np.asarray(data.data, dtype=np.float32)
    y = np.asarray(data.target, dtype=np.int64)
    rng = np.random.default_rng(SPLIT_SEED)
    val = np.zeros(len(y), dtype=bool)
    for c in np.unique(y):  # stratified: the same fraction of each class goes to val
        idx = rng.permutation(np.flatnonzero(y == c))
        val[idx[: round(len(idx) * VAL_FRACTION)]] = True
    names = [str(n) for n in data.feature_names]
    return names, x[~val], y[~val], x[val], y[val]
