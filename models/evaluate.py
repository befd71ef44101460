"""Recompute a package's validation metrics from its files and the data named in the manifest.

``metrics.data_ref`` says where the data comes from; everything else (preprocessing, device,
calibration, threshold) comes from the package through the same adapter the app uses.
Used by ``doctorai models verify --eval``; figures must match the manifest within 1 point.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from models.adapters import get_adapter, load_model
from models.adapters.base import LoadedModel
from models.manifest import ModelPackage
from models.metrics import classification_metrics
from models.preprocess import preprocess_batch

METRIC_NAMES = ("auc", "accuracy", "sensitivity", "specificity", "ece")
TOLERANCE = 0.01  # one percentage point


class EvaluationError(RuntimeError):
    """The data behind a package's metrics cannot be obtained."""


def shared_data_dir() -> Path:
    env = os.environ.get("DOCTORAI_SHARED_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data"


def _params(parts: list[str]) -> dict[str, str]:
    return dict(p.split("=", 1) for p in parts if "=" in p)


def load_reference_data(data_ref: str) -> tuple[Any, npt.NDArray[np.int64]]:
    """(raw inputs, labels) for a ``data_ref`` such as ``medmnist:pneumoniamnist:val``."""
    from models import phantoms

    kind, _, rest = data_ref.partition(":")
    parts = rest.split(":")
    if kind == "medmnist":
        name, split = parts[0], parts[1]
        path = shared_data_dir() / "medmnist" / f"{name}.npz"
        if not path.is_file():
            raise EvaluationError(f"data for '{data_ref}' not found at '{path}'")
        with np.load(path) as data:
            return data[f"{split}_images"].astype(np.float32), data[f"{split}_labels"].ravel()
    if kind == "phantom":
        args = _params(parts[1:])
        seed, n = int(args["seed"]), int(args["n"])
        makers: dict[str, Callable[[int, int], tuple[Any, ...]]] = {
            "brain": phantoms.brain_dataset,
            "histo": phantoms.histo_dataset,
            "skin": phantoms.skin_dataset,
        }
        made = makers[parts[0]](n, seed)
        return made[0].astype(np.float32), made[1]
    if kind == "sklearn" and parts[0] == "breast_cancer":
        from models.tabular_data import breast_cancer_split

        _, _, _, x_val, y_val = breast_cancer_split()
        return x_val, (y_val == 0).astype(np.int64)  # label index 1 = "malignant"
    raise EvaluationError(f"unknown data_ref '{data_ref}'")


def predict_all(
    model: LoadedModel, package: ModelPackage, raw: Any, batch: int = 256
) -> npt.NDArray[np.float32]:
    spec = package.manifest.input
    outs = []
    for start in range(0, len(raw), batch):
        chunk = raw[start : start + batch]
        outs.append(
            model.predict(
                preprocess_batch(list(chunk) if spec.kind == "image" else chunk, spec, package.id)
            )
        )
    return np.concatenate(outs).astype(np.float32)


def evaluate_package(
    package: ModelPackage, model: LoadedModel | None = None, device: str = "auto"
) -> dict[str, float]:
    """The manifest's metrics, recomputed."""
    metrics = package.manifest.metrics
    if metrics is None:
        raise EvaluationError(f"model '{package.id}' declares no metrics")
    if package.manifest.task == "segmentation":  # Dice and image-level figures, not per-label
        from models.segmentation import evaluate as evaluate_segmentation

        owned = model is None
        loaded = model or load_model(package, device)
        try:
            return evaluate_segmentation(package, loaded)
        finally:
            if owned:
                loaded.close()
    adapter = get_adapter(package.manifest.framework, model_id=package.id)
    hook = getattr(adapter, "evaluate", None)  # adapters with their own metrics (text models)
    raw, labels = (None, None) if callable(hook) else load_reference_data(metrics.data_ref)
    owned = model is None
    loaded = model or load_model(package, device)
    try:
        if callable(hook):
            return dict(hook(package, loaded))
        probs = predict_all(loaded, package, raw)
    finally:
        if owned:
            loaded.close()
    assert labels is not None
    out = package.manifest.output
    positive = (
        out.labels.index(out.positive_label)
        if out.positive_label is not None and len(out.labels) == 2
        else None
    )
    threshold = out.thresholds.get(out.positive_label or "", 0.5)
    return classification_metrics(labels, probs, positive, threshold)


def compare(
    package: ModelPackage, measured: dict[str, float], tolerance: float = TOLERANCE
) -> list[str]:
    """Human-readable mismatches between the manifest and ``measured`` (empty: all agree)."""
    declared = package.manifest.metrics
    problems: list[str] = []
    for name in METRIC_NAMES:
        claimed = getattr(declared, name, None)
        if claimed is None:
            continue
        got = measured.get(name)
        if got is None or abs(got - claimed) > tolerance:
            problems.append(
                f"model '{package.id}': {name} manifest {claimed:.4f}, "
                f"measured {got if got is None else round(got, 4)}"
            )
    for name, claimed in declared.scores.items() if declared else ():
        got = measured.get(name)
        if got is None or abs(got - claimed) > tolerance:
            problems.append(
                f"model '{package.id}': {name} manifest {claimed:.4f}, "
                f"measured {got if got is None else round(got, 4)}"
            )
    return problems
