"""Raw network outputs -> calibrated per-label probabilities -> thresholded findings.

Every adapter's ``predict`` returns probabilities through ``probabilities`` so the calibration
declared in the manifest (temperature or Platt, fit on the validation split) is applied in one
place, whatever the framework.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from models.manifest import OutputSpec

F32 = npt.NDArray[np.float32]


def _sigmoid(z: npt.NDArray[Any]) -> F32:
    return np.asarray(1.0 / (1.0 + np.exp(-np.clip(z, -60, 60))), dtype=np.float32)


def probabilities(raw: npt.NDArray[Any], output: OutputSpec) -> F32:
    """(N, K) logits (or (N,)/(N, 1) single logits) -> (N, len(labels)) probabilities."""
    z = np.asarray(raw, dtype=np.float64)
    if z.ndim == 1:
        z = z[:, None]
    cal = output.calibration
    if output.activation == "none":
        return z.astype(np.float32)
    if output.activation == "softmax":
        z = z / cal.temperature
        z = z - z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return np.asarray(e / e.sum(axis=1, keepdims=True), dtype=np.float32)
    # sigmoid
    p = _sigmoid(cal.a * z + cal.b) if cal.method == "platt" else _sigmoid(z / cal.temperature)
    if p.shape[1] == 1 and len(output.labels) == 2:
        positive = output.labels.index(output.positive_label or output.labels[1])
        both = np.empty((p.shape[0], 2), dtype=np.float32)
        both[:, positive] = p[:, 0]
        both[:, 1 - positive] = 1.0 - p[:, 0]
        return both
    return p


def positive_scores(probs: npt.NDArray[Any], output: OutputSpec) -> F32:
    """The positive label's probability per row (binary models)."""
    label = output.positive_label or output.labels[-1]
    return np.asarray(probs, dtype=np.float32)[:, output.labels.index(label)]


def decide(probs: npt.NDArray[Any], output: OutputSpec) -> list[str]:
    """One label per row: the positive label when it passes its threshold, else the argmax."""
    arr = np.asarray(probs, dtype=np.float32)
    labels: list[str] = []
    for row in arr:
        pos = output.positive_label
        if pos is not None and len(output.labels) == 2:
            threshold = output.thresholds.get(pos, 0.5)
            other = output.labels[1 - output.labels.index(pos)]
            labels.append(pos if row[output.labels.index(pos)] >= threshold else other)
        else:
            labels.append(output.labels[int(np.argmax(row))])
    return labels
