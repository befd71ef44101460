"""One recipe for the torch image classifiers: preprocess, train, calibrate, export, package."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from models.metrics import fit_temperature, youden_threshold
from models.training import common, torch_train


@dataclass
class Recipe:
    manifest: dict[str, Any]  # everything but files/metrics/selftest/output calibration
    xtr: npt.NDArray[Any]  # raw images (before preprocessing)
    ytr: npt.NDArray[Any]
    xva: npt.NDArray[Any]
    yva: npt.NDArray[Any]
    net: torch.nn.Module
    epochs: int
    lr: float
    batch: int
    seed: int
    metrics_info: dict[str, Any]  # dataset, split, data_ref, note
    sources: Path | None
    augment: Any = None
    class_weight: bool = False
    extra_report: dict[str, Any] = field(default_factory=dict)


def run(recipe: Recipe, out: Path) -> dict[str, Any]:
    torch.set_num_threads(int(os.environ.get("DOCTORAI_TRAIN_THREADS", "1")))
    common.seed_everything(recipe.seed)
    mid = recipe.manifest["id"]
    spec = recipe.manifest["input"]
    xtr = common.prep(recipe.xtr, spec, mid)
    xva = common.prep(recipe.xva, spec, mid)
    labels = recipe.manifest["output"]["labels"]
    pos_label = recipe.manifest["output"].get("positive_label")
    positive = labels.index(pos_label) if pos_label and len(labels) == 2 else None
    report = torch_train.train(
        recipe.net,
        xtr,
        recipe.ytr,
        xva,
        recipe.yva,
        epochs=recipe.epochs,
        lr=recipe.lr,
        batch=recipe.batch,
        seed=recipe.seed,
        positive=positive,
        augment=recipe.augment,
        class_weight=recipe.class_weight,
    )
    logits = torch_train.logits_of(recipe.net, xva)
    temperature = fit_temperature(logits, recipe.yva)
    probs = torch_train.softmax(logits / temperature)
    thresholds = dict(recipe.manifest["output"].get("thresholds", {}))
    threshold = 0.5
    if positive is not None:  # operating point: Youden's J on val (recorded in the manifest)
        threshold = youden_threshold(recipe.yva == positive, probs[:, positive])
        thresholds = {pos_label: threshold}
    metrics = common.rounded_metrics(recipe.yva, probs, positive, threshold)
    common.fresh_dir(out)
    torch_train.export_script(recipe.net, str(out / "model.pt"))
    output = {
        **recipe.manifest["output"],
        "thresholds": thresholds,
        "activation": "softmax",
        "calibrated": True,
        "calibration": {"method": "temperature", "temperature": temperature, "fit_on": "val"},
    }
    n_params = sum(p.numel() for p in recipe.net.parameters())
    manifest = {
        **recipe.manifest,
        "output": output,
        "weights": "model.pt",
        "metrics": {**recipe.metrics_info, "n": len(recipe.yva), **metrics},
        "extra": {
            "parameters": int(n_params),
            "best_epoch": report["best_epoch"],
            "epochs": recipe.epochs,
            "train_seconds": report["train_seconds"],
            "seed": recipe.seed,
            "trained_on": common.machine(),
        },
    }
    pick = _selftest_indices(recipe.yva, 4)
    expected = torch_train.softmax(torch_train.logits_of(recipe.net, xva[pick]) / temperature)
    common.finish_package(
        out, manifest, recipe.xva[pick].astype(np.float32), expected, recipe.sources
    )
    summary = {
        "id": mid,
        "metrics": metrics,
        "temperature": temperature,
        "params": n_params,
        **{k: report[k] for k in ("best_epoch", "train_seconds")},
        **recipe.extra_report,
    }
    print(json.dumps(summary, indent=2))
    return summary


def _selftest_indices(y: npt.NDArray[Any], n: int) -> npt.NDArray[np.int64]:
    """A few validation samples covering every class (deterministic)."""
    classes = np.unique(y)
    picks = [int(np.flatnonzero(y == c)[i]) for i in range(n) for c in classes][: max(n, 2)]
    return np.asarray(sorted(set(picks))[: max(n, len(classes))], dtype=np.int64)
