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

from models.adapters.base import LoadedModel
from models.manifest import Manifest, ModelPackage

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


def evaluate(package: ModelPackage, model: LoadedModel) -> dict[str, float]:
    """The manifest's figures recomputed on its phantom validation set (``models verify
    --eval``): image-level auc/sensitivity/specificity from the top-k score at the manifest's
    threshold, and the Dice scores. Only ``phantom:brain:seed=S:n=N`` data is known here."""
    from models import phantoms
    from models.metrics import classification_metrics
    from models.preprocess import preprocess_batch

    manifest = package.manifest
    if manifest.metrics is None:
        raise ValueError(f"model '{package.id}' declares no metrics")
    ref = manifest.metrics.data_ref
    kind, _, rest = ref.partition(":")
    parts = rest.split(":")
    args = dict(p.split("=", 1) for p in parts[1:] if "=" in p)
    if kind != "phantom" or parts[0] != "brain" or not {"seed", "n"} <= set(args):
        raise ValueError(f"model '{package.id}': no segmentation truth for data_ref '{ref}'")
    size = (manifest.input.size or (64, 64))[0]
    images, _labels, masks = phantoms.brain_dataset(int(args["n"]), int(args["seed"]), size)
    probs = np.concatenate(
        [
            model.predict(preprocess_batch(list(images[i : i + 100]), manifest.input, package.id))
            for i in range(0, len(images), 100)
        ]
    )
    pred = label_maps(probs) == 1
    positive = manifest.output.positive_label or manifest.output.labels[-1]
    threshold = manifest.output.thresholds.get(positive, 0.5)
    y = np.asarray(masks.reshape(len(masks), -1).any(axis=1), dtype=np.int64)
    found = classification_metrics(y, image_scores(probs, top_k(manifest)), 1, threshold)
    total = int(pred.sum()) + int(masks.sum())
    return {
        "auc": found["auc"],
        "sensitivity": found["sensitivity"],
        "specificity": found["specificity"],
        "dice_lesion_slices": mean_dice(pred, masks),
        "dice_all_pixels": 2.0 * int((pred & masks).sum()) / total if total else 1.0,
    }
