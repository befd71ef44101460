"""Train the breast ultrasound classifier (torch): malignant vs normal/benign, BreastMNIST.

    .venv/bin/python -m models.training.train_breast_us [--out models/zoo/breast-ultrasound]

Small data (546 train images), so a small CNN with flips and shifts; selected and
temperature-scaled on val (78 images: figures are optimistic and noisy). Test split withheld.
"""

from __future__ import annotations

import argparse
from functools import partial
from pathlib import Path

from models.training import common, torch_image, torch_train

MODEL_ID = "breast-ultrasound"
INPUT = {
    "kind": "image",
    "size": [28, 28],
    "channels": 1,
    "layout": "NCHW",
    "color": "grayscale",
    "frames": "first",
    "preprocessing": [
        {"op": "auto_window", "low_percentile": 0.5, "high_percentile": 99.5},
        {"op": "resize", "size": [28, 28]},
        {"op": "normalize", "mean": 0.5, "std": 0.25},
        {"op": "to_channels", "n": 1},
    ],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=common.ZOO / MODEL_ID)
    parser.add_argument("--epochs", type=int, default=40)
    args = parser.parse_args()
    common.seed_everything(0)  # network initialisation is part of the seeded recipe
    data = common.load_medmnist("breastmnist")
    manifest = {
        "id": MODEL_ID,
        "name": "Breast ultrasound malignancy classifier (28 px CNN)",
        "version": "1.0.0",
        "task": "classification",
        "framework": "torch",
        "modalities": ["US"],
        "body_parts": ["BREAST"],
        "input": INPUT,
        "output": {
            "labels": ["malignant", "normal_or_benign"],
            "positive_label": "malignant",
            "thresholds": {"malignant": 0.5},
        },
        "min_app_version": "0.1.0",
        "intended_use": (
            "Scores breast ultrasound images for malignancy for research and "
            "demonstration. Not a diagnostic device."
        ),
        "demo_only": True,
        "training_data": (
            "BreastMNIST (MedMNIST v2, CC BY 4.0) train split, 546 images at 28x28; see SOURCES.md"
        ),
        "heatmap": {"method": "gradcam", "target_layer": "features"},
    }
    recipe = torch_image.Recipe(
        manifest=manifest,
        xtr=data["train_images"],
        ytr=data["train_labels"].ravel(),
        xva=data["val_images"],
        yva=data["val_labels"].ravel(),
        net=torch_train.SmallCNN(1, 2, widths=[16, 32, 64], dropout=0.3),
        epochs=args.epochs,
        lr=3e-3,
        batch=32,
        seed=11,
        class_weight=True,
        augment=partial(torch_train.augment_shift_flip, shift=2, hflip=True),
        metrics_info={
            "dataset": "BreastMNIST (MedMNIST v2)",
            "split": "val",
            "data_ref": "medmnist:breastmnist:val",
            "note": "val (n=78) used for epoch selection, temperature fit and Youden "
            "threshold "
            "(optimistic); official test split withheld, never used",
        },
        sources=common.MEDMNIST / "SOURCES.md",
    )
    torch_image.run(recipe, args.out)


if __name__ == "__main__":
    main()
