"""Train the skin lesion classifier (Keras) on skin-like phantom patches with/without pustules.

    .venv/bin/python -m models.training.train_skin_lesion [--out models/zoo/skin-lesion]

The seed system's monkeypox slot; no real labelled photographs are available here, so patches
come from ``models.phantoms.skin_dataset`` (seeded). Demonstration only.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from models import phantoms
from models.training import common, keras_image

MODEL_ID = "skin-lesion"
TRAIN_SEED, VAL_SEED, N_TRAIN, N_VAL = 501, 602, 1600, 400
INPUT = {
    "kind": "image",
    "size": [48, 48],
    "channels": 3,
    "layout": "NHWC",
    "color": "rgb",
    "frames": "first",
    "preprocessing": [
        {"op": "scale", "factor": 1 / 255},
        {"op": "resize", "size": [48, 48]},
        {"op": "to_channels", "n": 3},
    ],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=common.ZOO / MODEL_ID)
    parser.add_argument("--epochs", type=int, default=8)
    args = parser.parse_args()
    xtr, ytr = phantoms.skin_dataset(N_TRAIN, TRAIN_SEED)
    xva, yva = phantoms.skin_dataset(N_VAL, VAL_SEED)
    manifest = {
        "id": MODEL_ID,
        "name": "Skin lesion (pustule) classifier (custom CNN, demo)",
        "version": "1.0.0",
        "task": "classification",
        "framework": "keras",
        "modalities": ["XC", "OT"],
        "body_parts": ["SKIN"],
        "input": INPUT,
        "output": {
            "labels": ["no_lesion", "lesion"],
            "positive_label": "lesion",
            "thresholds": {"lesion": 0.5},
        },
        "min_app_version": "0.1.0",
        "intended_use": "Demonstrates a skin photograph classifier with a Grad-CAM heatmap.",
        "demo_only": True,
        "training_data": (
            f"{common.SYNTHETIC_NOTE}: {N_TRAIN} generated skin-like patches "
            f"(models.phantoms.skin_dataset, seed {TRAIN_SEED})"
        ),
    }
    recipe = keras_image.Recipe(
        manifest=manifest,
        xtr=xtr,
        ytr=ytr,
        xva=xva,
        yva=yva,
        epochs=args.epochs,
        lr=2e-3,
        batch=32,
        seed=9,
        metrics_info={
            "dataset": "synthetic skin-like phantoms",
            "split": "val",
            "data_ref": f"phantom:skin:seed={VAL_SEED}:n={N_VAL}",
            "note": "generated data; demonstration only",
        },
        sources=None,
    )
    keras_image.run(recipe, args.out)


if __name__ == "__main__":
    main()
