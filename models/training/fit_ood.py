"""Fit a package's out-of-distribution reference: features on TRAINING data, threshold on VAL.

    .venv/bin/python -m models.training.fit_ood models/zoo/chest-xray-pneumonia [PACKAGE ...]

For each package: regenerate its training inputs (the training split of the data named by
``metrics.data_ref``; for phantom data, the seed and size of its training script), run them
through the package's own adapter and preprocessing, fit ``models.ood`` statistics on the
features, score the validation inputs (``metrics.data_ref``) and set the threshold at their
``--quantile`` (default 95th percentile: about 5% of own validation images are flagged).
Writes ``<package>/ood.npz`` and the manifest's ``ood`` section, re-reading manifest.json just
before writing and keeping every other key; ``write_manifest`` rehashes the files. Re-runnable:
same package and data give the same bytes.
"""

from __future__ import annotations

import argparse
import importlib
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from models import ood
from models.adapters import load_model
from models.adapters.base import LoadedModel
from models.evaluate import load_reference_data
from models.manifest import MANIFEST_NAME, ModelPackage, load_package, write_manifest
from models.preprocess import preprocess_batch

REFERENCE = "ood.npz"
TRAINING_DIR = Path(__file__).resolve().parent


class FitOodError(RuntimeError):
    """The package cannot be given an OOD reference (names the package and why)."""


def training_module(model_id: str) -> str | None:
    """The ``models.training`` script that trains ``model_id`` (its ``MODEL_ID`` line)."""
    pattern = re.compile(rf'^MODEL_ID = "{re.escape(model_id)}"$', re.MULTILINE)
    for path in sorted(TRAINING_DIR.glob("train_*.py")):
        if pattern.search(path.read_text(encoding="utf-8")):
            return f"models.training.{path.stem}"
    return None


def train_ref(package: ModelPackage) -> str:
    """The ``data_ref`` of the package's training data, derived from its validation one."""
    metrics = package.manifest.metrics
    if metrics is None:
        raise FitOodError(f"model '{package.id}': the manifest names no data (no metrics)")
    kind, _, rest = metrics.data_ref.partition(":")
    parts = rest.split(":")
    if kind == "medmnist" and len(parts) >= 2:
        return f"medmnist:{parts[0]}:train"
    if kind == "phantom":
        name = training_module(package.id)
        if name is None:
            raise FitOodError(
                f"model '{package.id}': no training script in models/training declares "
                f'MODEL_ID = "{package.id}"; pass --train-ref'
            )
        script = importlib.import_module(name)
        return f"phantom:{parts[0]}:seed={script.TRAIN_SEED}:n={script.N_TRAIN}"
    raise FitOodError(
        f"model '{package.id}': cannot derive training data from '{metrics.data_ref}'; "
        "pass --train-ref"
    )


def features_of(
    model: LoadedModel, raw: Any, layer: str | None, batch: int = 256
) -> npt.NDArray[np.float32]:
    """(n, d) features of raw images, preprocessed as the app preprocesses them."""
    spec = model.package.manifest.input
    out: list[npt.NDArray[np.float32]] = []
    for start in range(0, len(raw), batch):
        chunk = preprocess_batch(list(raw[start : start + batch]), spec, model.id)
        feats = model.predict_with_features(chunk, layer)[1]
        if feats is None:
            raise FitOodError(f"model '{model.id}': its adapter gives no features")
        out.append(feats)
    return np.concatenate(out).astype(np.float32)


def fit_package(
    folder: Path,
    *,
    method: ood.Method = "mahalanobis",
    quantile: float = 0.95,
    train: str | None = None,
    layer: str | None = None,
) -> dict[str, Any]:
    """Fit, write ood.npz and the manifest's ``ood`` section; return that section."""
    package = load_package(folder)
    if package.manifest.input.kind != "image":
        raise FitOodError(f"model '{package.id}': OOD references are for image models")
    ref_train = train or train_ref(package)
    assert package.manifest.metrics is not None  # train_ref checked
    ref_val = package.manifest.metrics.data_ref
    x_train, y_train = load_reference_data(ref_train)
    x_val, _ = load_reference_data(ref_val)
    feature_layer = "logits" if method == "energy" else layer
    model = load_model(package, "cpu")
    try:
        f_train = features_of(model, x_train, feature_layer)
        f_val = features_of(model, x_val, feature_layer)
    finally:
        model.close()
    if method == "energy":
        reference = ood.energy_reference()
    else:
        reference = ood.fit_mahalanobis(f_train, y_train)
    train_scores = ood.score(reference, f_train)
    val_scores = ood.score(reference, f_val)
    threshold = ood.threshold_at(val_scores, quantile)
    ood.save(reference, folder / REFERENCE)
    section: dict[str, Any] = {
        "method": method,
        "reference": REFERENCE,
        "layer": feature_layer,
        "threshold": round(threshold, 4),
        "fit_on": (
            f"train ({ref_train}, n={len(x_train)}: "
            f"{'class means + shrunk covariance' if method == 'mahalanobis' else 'none'}), "
            f"val ({ref_val}, n={len(x_val)}: threshold at the {quantile:.0%} quantile)"
        ),
        "validation": {
            "own_val_flagged": round(float(np.mean(val_scores > threshold)), 4),
            "own_train_flagged": round(float(np.mean(train_scores > threshold)), 4),
            "quantile": quantile,
            "feature_dim": float(f_train.shape[1]),
            "shrinkage": round(reference.shrinkage, 4),
        },
    }
    # re-read just before writing: other tools edit other keys of the same manifest
    raw = json.loads((folder / MANIFEST_NAME).read_text(encoding="utf-8"))
    raw["ood"] = section
    raw.pop("files", None)
    write_manifest(folder, raw)
    load_package(folder)  # the written package verifies
    return section


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("packages", nargs="+", type=Path)
    parser.add_argument("--method", choices=["mahalanobis", "energy"], default="mahalanobis")
    parser.add_argument("--quantile", type=float, default=0.95)
    parser.add_argument("--train-ref", default=None, help="data_ref of the training data")
    parser.add_argument("--layer", default=None, help="feature layer (default: penultimate)")
    args = parser.parse_args(argv)
    for folder in args.packages:
        section = fit_package(
            folder,
            method=args.method,
            quantile=args.quantile,
            train=args.train_ref,
            layer=args.layer,
        )
        print(json.dumps({"package": str(folder), "ood": section}, indent=2), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
