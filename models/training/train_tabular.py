"""Train the tabular breast-cancer classifier (XGBoost) on scikit-learn's bundled WDBC table.

    .venv/bin/python -m models.training.train_tabular [--out models/zoo/tabular-breast-cancer]

Stratified 75/25 train/val split (seed 0, ``models.tabular_data``); early stopping and Platt
scaling on val. Saved as a Booster JSON; the adapter runs ``inplace_predict``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import xgboost as xgb

from models.tabular_data import SPLIT_SEED, VAL_FRACTION, breast_cancer_split
from models.training import common

MODEL_ID = "tabular-breast-cancer"


def _platt(margin: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Logistic regression of the label on the margin (Newton steps; 2 parameters)."""
    a, b = 1.0, 0.0
    for _ in range(50):
        p = 1 / (1 + np.exp(-(a * margin + b)))
        g = np.array([np.sum((p - y) * margin), np.sum(p - y)])
        w = p * (1 - p) + 1e-9
        h = np.array(
            [[np.sum(w * margin * margin), np.sum(w * margin)], [np.sum(w * margin), np.sum(w)]]
        ) + 1e-6 * np.eye(2)
        a, b = np.array([a, b]) - np.linalg.solve(h, g)
    return round(float(a), 6), round(float(b), 6)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=common.ZOO / MODEL_ID)
    args = parser.parse_args()
    names, xtr, ytr, xva, yva = breast_cancer_split()
    # positive class = malignant (sklearn's 0): train on is_malignant
    ptr, pva = (ytr == 0).astype(np.float32), (yva == 0).astype(np.float32)
    dtr = xgb.DMatrix(xtr, label=ptr, feature_names=names)
    dva = xgb.DMatrix(xva, label=pva, feature_names=names)
    params = {
        "objective": "binary:logistic",
        "eval_metric": "logloss",
        "max_depth": 3,
        "eta": 0.1,
        "subsample": 0.8,
        "colsample_bytree": 0.8,
        "seed": 13,
        "nthread": 1,
        "tree_method": "hist",
    }
    start = time.perf_counter()
    booster = xgb.train(
        params,
        dtr,
        num_boost_round=400,
        evals=[(dva, "val")],
        early_stopping_rounds=30,
        verbose_eval=False,
    )
    train_seconds = round(time.perf_counter() - start, 2)
    booster = booster[: booster.best_iteration + 1]
    margin = booster.inplace_predict(xva, predict_type="margin")
    a, b = _platt(margin, pva)
    p = 1 / (1 + np.exp(-(a * margin + b)))
    labels = ["benign", "malignant"]
    probs = np.stack([1 - p, p], axis=1)
    metrics = common.rounded_metrics(pva.astype(int), probs, 1)
    out = common.fresh_dir(args.out)
    booster.save_model(out / "model.json")
    manifest = {
        "id": MODEL_ID,
        "name": "Breast cancer (WDBC cytology features) XGBoost classifier",
        "version": "1.0.0",
        "task": "tabular",
        "framework": "xgboost",
        "modalities": [],
        "body_parts": ["BREAST"],
        "input": {"kind": "tabular", "features": names, "dtype": "float32"},
        "output": {
            "labels": labels,
            "positive_label": "malignant",
            "thresholds": {"malignant": 0.5},
            "activation": "sigmoid",
            "calibrated": True,
            "calibration": {"method": "platt", "a": a, "b": b, "fit_on": "val"},
        },
        "weights": "model.json",
        "min_app_version": "0.1.0",
        "intended_use": (
            "Scores fine-needle-aspirate nucleus features (WDBC) for malignancy, "
            "for research and demonstration. Not a diagnostic device."
        ),
        "demo_only": True,
        "training_data": (
            "Breast Cancer Wisconsin (Diagnostic), bundled with scikit-learn "
            f"(load_breast_cancer); {len(ytr)} train rows"
        ),
        "metrics": {
            "dataset": "Breast Cancer Wisconsin (Diagnostic)",
            "split": "val",
            "n": len(yva),
            "data_ref": f"sklearn:breast_cancer:val:seed={SPLIT_SEED}:fraction={VAL_FRACTION}",
            "note": "val used for early stopping and Platt scaling (optimistic)",
            **metrics,
        },
        "extra": {
            "best_iteration": int(booster.num_boosted_rounds()),
            "train_seconds": train_seconds,
            "trained_on": common.machine(),
        },
    }
    sources = out / "SOURCES.md"
    sources.write_text(
        "# Breast Cancer Wisconsin (Diagnostic) data set\n\n"
        "Bundled with scikit-learn (`sklearn.datasets.load_breast_cancer`), a copy of the UCI ML "
        "repository data set: W.N. Street, W.H. Wolberg, O.L. Mangasarian, 'Nuclear feature "
        "extraction for breast tumor diagnosis', IS&T/SPIE 1993. Licence CC BY 4.0 (UCI).\n"
        "569 rows, 30 features, 212 malignant / 357 benign.\n",
        encoding="utf-8",
    )
    pick = np.concatenate([np.flatnonzero(pva == 1)[:2], np.flatnonzero(pva == 0)[:2]])
    common.finish_package(out, manifest, xva[pick], probs[pick], sources)
    print(
        json.dumps(
            {"id": MODEL_ID, "metrics": metrics, "platt": [a, b], "train_seconds": train_seconds},
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
