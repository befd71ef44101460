"""Train the brain tumour MRI classifier (Keras) on MR-like phantom slices with/without a lesion.

    .venv/bin/python -m models.training.train_brain_mri [--out models/zoo/brain-tumour-mri]

No real labelled MRI is available here: slices come from ``models.phantoms.brain_dataset``
(seeded). Grad-CAM on the last conv layer (1/4 resolution) localises the lesion. Demo only.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from models import phantoms
from models.training import common, keras_image

MODEL_ID = "brain-tumour-mri"
TRAIN_SEED, VAL_SEED, N_TRAIN, N_VAL = 301, 402, 2000, 400
INPUT = {
    "kind": "image",
    "size": [64, 64],
    "channels": 1,
    "layout": "NHWC",
    "color": "grayscale",
    "frames": "middle",
    "preprocessing": [
        {"op": "auto_window", "low_percentile": 1.0, "high_percentile": 99.0},
        {"op": "resize", "size": [64, 64]},
        {"op": "normalize", "mean": 0.4, "std": 0.3},
        {"op": "to_channels", "n": 1},
    ],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=common.ZOO / MODEL_ID)
    parser.add_argument("--epochs", type=int, default=12)
    args = parser.parse_args()
    xtr, ytr, _ = phantoms.brain_dataset(N_TRAIN, TRAIN_SEED)
    xva, yva, _ = phantoms.brain_dataset(N_VAL, VAL_SEED)
    manifest = {
        "id": MODEL_ID,
        "name": "Brain tumour MRI classifier (custom CNN, demo)",
        "version": "1.0.0",
        "task": "classification",
        "framework": "keras",
        "modalities": ["MR"],
        "body_parts": ["BRAIN", "HEAD"],
        "input": INPUT,
        "output": {
            "labels": ["no_tumour", "tumour"],
            "positive_label": "tumour",
            "thresholds": {"tumour": 0.5},
        },
        "min_app_version": "0.1.0",
        "intended_use": "Demonstrates lesion detection with a Grad-CAM heatmap on MR slices.",
        "demo_only": True,
        "training_data": (
            f"{common.SYNTHETIC_NOTE}: {N_TRAIN} generated MR-like slices "
            f"(models.phantoms.brain_dataset, seed {TRAIN_SEED})"
        ),
    }
    recipe = keras_image.Recipe(
        manifest=manifest,
        xtr=xtr,
        ytr=ytr,
        xva=xva,
        yva=yva,
        epochs=args.epochs,
        lr=3e-3,
        batch=32,
        seed=3,
        metrics_info={
            "dataset": "synthetic MR-like brain phantoms",
            "split": "val",
            "data_ref": f"phantom:brain:seed={VAL_SEED}:n={N_VAL}",
            "note": "generated data; demonstration only",
        },
        sources=None,
    )
    keras_image.run(recipe, args.out)


if __name__ == "__main__":
    main()
