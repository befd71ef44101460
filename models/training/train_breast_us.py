"""Train the breast ultrasound classifier (torch): malignant vs normal/benign, BreastMNIST.

    .venv/bin/python -m models.training.train_breast_us [--out models/zoo/breast-ultrasound]

Small data (546 train images), so small CNNs with shifts and left-right flips (the transducer's
orientation across the breast is arbitrary; no up-down flips: depth runs downwards and
posterior shadowing is a sign of malignancy). Two widths are compared by 5-fold
cross-validation on train; the better one's five fold models ship as one logit-averaging
module, with temperature and threshold from the out-of-fold predictions
(models.training.torch_cv). Val (78 images) is scored once, afterwards. Test split withheld.
"""

from __future__ import annotations

import argparse
from functools import partial
from pathlib import Path

from models.training import common, torch_cv, torch_train

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
    parser.add_argument("--folds", type=int, default=5)
    args = parser.parse_args()
    common.seed_everything(0)  # network initialisation is part of the seeded recipe
    data = common.load_medmnist("breastmnist")
    manifest = {
        "id": MODEL_ID,
        "name": "Breast ultrasound malignancy classifier (28 px CNN, 5-fold ensemble)",
        "version": "1.1.0",
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
    candidates = [
        torch_cv.Candidate(
            name=f"SmallCNN-{'-'.join(map(str, widths))}",
            make_net=partial(torch_train.SmallCNN, 1, 2, widths=widths, dropout=0.3),
            feature_width=widths[-1],
            epochs=args.epochs,
            lr=3e-3,
            batch=32,
            augment=partial(torch_train.augment_shift_flip, shift=shift, hflip=True),
        )
        for widths, shift in (([16, 32, 64], 2), ([24, 48, 96], 3))
    ]
    recipe = torch_cv.CvRecipe(
        manifest=manifest,
        xtr=data["train_images"],
        ytr=data["train_labels"].ravel(),
        xva=data["val_images"],
        yva=data["val_labels"].ravel(),
        candidates=candidates,
        folds=args.folds,
        seed=11,
        metrics_info={
            "dataset": "BreastMNIST (MedMNIST v2)",
            "split": "val",
            "data_ref": "medmnist:breastmnist:val",
            "note": "val (n=78) was not used for any choice: network width by out-of-fold AUC, "
            "temperature and threshold on train's out-of-fold predictions, then val was "
            "scored once (small: see the intervals); official test split withheld, never used",
        },
        sources=common.MEDMNIST / "SOURCES.md",
    )
    torch_cv.run(recipe, args.out)


if __name__ == "__main__":
    main()
