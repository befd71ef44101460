"""Reading a segmentation network's per-pixel probabilities: label maps, per-image scores, Dice.

One place for what the training script measures and what the app computes at run time
(core.inference.segment), so the manifest's figures describe what the user is shown.
The manifest's ``extra["segmentation"]`` may set ``top_k``: an image's score for a class is the
mean of its ``top_k`` highest pixel probabilities (1 = the single highest pixel), so a few
speckled pixels do not call a whole image positive.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from models.manifest import Manifest

F32 = npt.NDArray[np.float32]
U8 = npt.NDArray[np.uint8]
DEFAULT_TOP_K = 1


def top_k(manifest: Manifest) -> int:
    """The manifest's ``extra.segmentation.top_k`` (at least 1)."""
    options = manifest.extra.get("segmentation", {})
    value = options.get("top_k", DEFAULT_TOP_K) if isinstance(options, dict) else DEFAULT_TOP_K
    return max(1, int(value))


def label_maps(probs: npt.NDArray[Any]) -> U8:
    """(N, C, h, w) softmax probabilities -> (N, h, w) argmax label map (0 = background)."""
    arr = np.asarray(probs)
    if arr.ndim != 4:
        raise ValueError(f"expected (N, C, h, w) class probabilities, got shape {arr.shape}")
    return np.asarray(np.argmax(arr, axis=1), dtype=np.uint8)


def image_scores(probs: npt.NDArray[Any], k: int = DEFAULT_TOP_K) -> F32:
    """(N, C, h, w) -> (N, C) per-image scores: class c>0 is the mean of its ``k`` highest
    pixel probabilities; class 0 (background) is 1 minus the highest foreground score."""
    arr = np.asarray(probs, dtype=np.float32)
    n, c = arr.shape[:2]
    flat = arr.reshape(n, c, -1)
    k = max(1, min(int(k), flat.shape[2]))
    top = np.partition(flat, flat.shape[2] - k, axis=2)[:, :, -k:]
    scores = top.mean(axis=2).astype(np.float32)
    if c > 1:
        scores[:, 0] = 1.0 - scores[:, 1:].max(axis=1)
    return np.asarray(np.clip(scores, 0.0, 1.0), dtype=np.float32)


def dice(pred: npt.NDArray[Any], truth: npt.NDArray[Any]) -> float:
    """Dice of two binary masks over all their pixels (1.0 when both are empty)."""
    p, t = np.asarray(pred, dtype=bool), np.asarray(truth, dtype=bool)
    total = int(p.sum()) + int(t.sum())
    return 1.0 if total == 0 else 2.0 * int((p & t).sum()) / total


def mean_dice(pred: npt.NDArray[Any], truth: npt.NDArray[Any]) -> float:
    """Mean per-image Dice over the images whose truth is not empty (N, h, w)."""
    values = [dice(p, t) for p, t in zip(pred, truth, strict=True) if np.any(t)]
    return float(np.mean(values)) if values else float("nan")
