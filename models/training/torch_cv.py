"""Cross-validated recipe for the torch image classifiers: every choice on train, val once.

Protocol (why: a threshold, temperature or epoch chosen on the split that is then reported
over-fits it, and the reported figures are optimistic):

1. Train is split into ``k`` stratified folds. Each candidate configuration trains ``k`` models
   for a fixed number of epochs (last epoch kept, no early stopping), each on ``k - 1`` folds;
   every train image is scored once by the model that did not see it (out-of-fold, OOF).
2. The candidate with the best OOF AUC is kept; its ``k`` fold models become one package that
   averages their logits (``torch_train.LogitEnsemble``).
3. Temperature: fit on the OOF logits. Threshold: Youden's J on the OOF calibrated scores.
4. Only then is val scored, once, and its AUC, accuracy, ECE and sensitivity/specificity at
   the fixed threshold (with stratified 95% bootstrap intervals) go into the manifest.

The OOF logits are shipped as ``oof.npz`` so the threshold and temperature can be recomputed.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from models.manifest import write_manifest
from models.metrics import binary_auc, fit_temperature, operating_point_intervals, youden_threshold
from models.training import common, torch_train

OOF_FILE = "oof.npz"
KEEP_KEYS = ("population",)  # written by others into the shipped manifest; carried over


@dataclass
class Candidate:
    """One configuration tried by cross-validation."""

    name: str
    make_net: Callable[[], torch.nn.Module]
    feature_width: int  # channels of make_net()'s features(), for the ensemble's split
    epochs: int
    lr: float
    batch: int
    augment: Any = None
    class_weight: bool = True
    weight_decay: float = 1e-4


@dataclass
class CvRecipe:
    manifest: dict[str, Any]  # everything but files/metrics/selftest/output calibration
    xtr: npt.NDArray[Any]  # raw images (before preprocessing)
    ytr: npt.NDArray[Any]
    xva: npt.NDArray[Any]
    yva: npt.NDArray[Any]
    candidates: list[Candidate]
    folds: int
    seed: int
    metrics_info: dict[str, Any]  # dataset, split, data_ref, note
    sources: Path | None


def stratified_folds(y: npt.NDArray[Any], k: int, seed: int) -> npt.NDArray[np.int64]:
    """Fold index per sample: each class shuffled and dealt round-robin, so folds keep the
    class balance."""
    if k < 2:
        raise ValueError(f"cross-validation needs at least 2 folds, got {k}")
    rng = np.random.default_rng(seed)
    fold = np.empty(len(y), dtype=np.int64)
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        fold[idx] = np.arange(len(idx)) % k
    return fold


def cross_validate(
    cand: Candidate,
    x: npt.NDArray[np.float32],
    y: npt.NDArray[Any],
    fold: npt.NDArray[np.int64],
    positive: int,
    seed: int,
) -> dict[str, Any]:
    """Train one model per fold; return the members, OOF logits and per-fold AUCs."""
    k = int(fold.max()) + 1
    oof = np.zeros((len(y), 2), dtype=np.float32)
    members, aucs = [], []
    start = time.perf_counter()
    for f in range(k):
        tr, ho = fold != f, fold == f
        common.seed_everything(seed + f)
        net = cand.make_net()
        print(f"[{cand.name}] fold {f + 1}/{k}: {int(tr.sum())} train, {int(ho.sum())} held out")
        torch_train.train(
            net,
            x[tr],
            y[tr],
            None,
            None,
            epochs=cand.epochs,
            lr=cand.lr,
            batch=cand.batch,
            seed=seed + f,
            positive=positive,
            augment=cand.augment,
            class_weight=cand.class_weight,
            weight_decay=cand.weight_decay,
            keep="last",
        )
        oof[ho] = torch_train.logits_of(net, x[ho])
        aucs.append(binary_auc(y[ho] == positive, torch_train.softmax(oof[ho])[:, positive]))
        print(f"[{cand.name}] fold {f + 1} held-out AUC {aucs[-1]:.4f}", flush=True)
        members.append(net)
    auc = binary_auc(y == positive, torch_train.softmax(oof)[:, positive])
    return {
        "candidate": cand,
        "members": members,
        "oof_logits": oof,
        "fold_aucs": [round(a, 4) for a in aucs],
        "oof_auc": auc,
        "seconds": round(time.perf_counter() - start, 1),
    }


def operating_point(
    oof_logits: npt.NDArray[Any], y: npt.NDArray[Any], positive: int
) -> tuple[float, float]:
    """(temperature, threshold) from out-of-fold logits alone: the recipe's one rule, also
    used by the tests to recompute the shipped values from ``oof.npz``."""
    temperature = fit_temperature(oof_logits, y)
    probs = torch_train.softmax(np.asarray(oof_logits, dtype=np.float64) / temperature)
    return temperature, youden_threshold(y == positive, probs[:, positive])


def _kept_keys(out: Path) -> dict[str, Any]:
    path = out / "manifest.json"
    if not path.is_file():
        return {}
    old = json.loads(path.read_text(encoding="utf-8"))
    return {k: old[k] for k in KEEP_KEYS if k in old}


def run(recipe: CvRecipe, out: Path) -> dict[str, Any]:
    torch.set_num_threads(int(os.environ.get("DOCTORAI_TRAIN_THREADS", "1")))
    mid = recipe.manifest["id"]
    spec = recipe.manifest["input"]
    labels = recipe.manifest["output"]["labels"]
    pos_label = recipe.manifest["output"]["positive_label"]
    positive = labels.index(pos_label)
    xtr = common.prep(recipe.xtr, spec, mid)
    ytr = recipe.ytr.astype(np.int64)
    fold = stratified_folds(ytr, recipe.folds, recipe.seed)
    tried = [cross_validate(c, xtr, ytr, fold, positive, recipe.seed) for c in recipe.candidates]
    for t in tried:
        print(f"candidate {t['candidate'].name}: OOF AUC {t['oof_auc']:.4f} ({t['seconds']} s)")
    best = max(tried, key=lambda t: t["oof_auc"])
    cand: Candidate = best["candidate"]
    temperature, threshold = operating_point(best["oof_logits"], ytr, positive)
    oof_probs = torch_train.softmax(best["oof_logits"] / temperature)
    oof_metrics = common.rounded_metrics(ytr, oof_probs, positive, threshold)
    net = torch_train.LogitEnsemble(best["members"], [cand.feature_width] * recipe.folds)
    net.eval()

    # val: scored once, after every choice above is fixed
    xva = common.prep(recipe.xva, spec, mid)
    val_probs = torch_train.softmax(torch_train.logits_of(net, xva) / temperature)
    metrics: dict[str, Any] = common.rounded_metrics(recipe.yva, val_probs, positive, threshold)
    metrics.update(operating_point_intervals(recipe.yva, val_probs, positive, threshold))

    kept = _kept_keys(out)
    common.fresh_dir(out)
    torch_train.export_script(net, str(out / "model.pt"))
    np.savez_compressed(
        out / OOF_FILE,
        logits=best["oof_logits"].astype(np.float32),
        labels=ytr,
        fold=fold,
    )
    k = recipe.folds
    method = (
        f"Youden's J on out-of-fold predictions of {k}-fold stratified cross-validation on "
        f"train (each train image scored by the fold model that did not train on it; "
        f"temperature fit on the same OOF logits; OOF logits in {OOF_FILE}); the shipped model "
        f"averages the logits of the {k} fold models; val was scored once, after the threshold "
        "was fixed"
    )
    output = {
        **recipe.manifest["output"],
        "thresholds": {pos_label: threshold},
        "activation": "softmax",
        "calibrated": True,
        "calibration": {
            "method": "temperature",
            "temperature": temperature,
            "fit_on": f"train, out-of-fold ({k}-fold CV)",
        },
    }
    n_params = sum(p.numel() for p in net.parameters())
    manifest = {
        **recipe.manifest,
        "output": output,
        "weights": "model.pt",
        "metrics": {
            **recipe.metrics_info,
            "n": len(recipe.yva),
            **metrics,
            "threshold_method": method,
        },
        "extra": {
            "parameters": int(n_params),
            "architecture": f"{k}-model ensemble of {cand.name}",
            "epochs": cand.epochs,
            "folds": k,
            "candidates_oof_auc": {t["candidate"].name: round(t["oof_auc"], 4) for t in tried},
            "fold_auc": best["fold_aucs"],
            "oof_metrics": oof_metrics,
            "train_seconds": round(sum(t["seconds"] for t in tried), 1),
            "seed": recipe.seed,
            "trained_on": common.machine(),
        },
        **kept,
    }
    pick = _selftest_indices(recipe.yva, 4)
    expected = torch_train.softmax(torch_train.logits_of(net, xva[pick]) / temperature)
    common.finish_package(
        out, manifest, recipe.xva[pick].astype(np.float32), expected, recipe.sources
    )
    add_protocol_note(out)
    summary = {
        "id": mid,
        "val": metrics,
        "oof": oof_metrics,
        "temperature": temperature,
        "threshold": threshold,
        "params": n_params,
        "candidates": manifest["extra"]["candidates_oof_auc"],
        "size_bytes": (out / "model.pt").stat().st_size,
    }
    print(json.dumps(summary, indent=2))
    return summary


def add_protocol_note(out: Path) -> None:
    """Append to the package's SOURCES.md how this model used the data (the shared provenance
    text says "use val for model selection"; this package did not), then re-hash."""
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    metrics, extra = manifest["metrics"], manifest["extra"]
    sources = out / "SOURCES.md"
    text = sources.read_text(encoding="utf-8") if sources.is_file() else ""
    marker = "\n## How this package used the data\n"
    text = (
        text.split(marker)[0].rstrip("\n")
        + "\n"
        + marker
        + (
            f"\nModel `{manifest['id']}` {manifest['version']}: {extra['architecture']}, "
            f"{extra['epochs']} epochs each, trained on the train split only.\n\n"
            f"- Choices (network width among {', '.join(extra['candidates_oof_auc'])}; "
            f"temperature {manifest['output']['calibration']['temperature']}; threshold "
            f"{next(iter(manifest['output']['thresholds'].values()))}): "
            f"{metrics['threshold_method']}.\n"
            f"- Val ({metrics['n']} images) was used for none of them: it was scored once, and "
            "its figures in the manifest (AUC, accuracy, ECE, sensitivity and specificity at the "
            "threshold, with 95% stratified bootstrap intervals) are an independent estimate.\n"
            f"- Out-of-fold predictions on train: `{OOF_FILE}` (logits, labels, fold).\n"
            "- The official test split was never obtained or used.\n"
        )
    )
    sources.write_text(text, encoding="utf-8")
    manifest.pop("files", None)
    write_manifest(out, manifest)


def _selftest_indices(y: npt.NDArray[Any], n: int) -> npt.NDArray[np.int64]:
    """A few validation samples covering every class (deterministic)."""
    classes = np.unique(y)
    picks = [int(np.flatnonzero(y == c)[i]) for i in range(n) for c in classes]
    return np.asarray(sorted(set(picks))[: max(n, len(classes))], dtype=np.int64)
