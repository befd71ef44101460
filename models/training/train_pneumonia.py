"""Train the chest X-ray pneumonia classifier (torch) on PneumoniaMNIST train by 5-fold CV.

    .venv/bin/python -m models.training.train_pneumonia [--out models/zoo/chest-xray-pneumonia]

Five ~0.07 M-parameter VGG-style CNNs at 28 px, one per fold, shipped as one logit-averaging
module (MedMNIST's ResNet-18 reference has 11 M). Epochs, temperature and threshold are fixed
on train's out-of-fold predictions (models.training.torch_cv); val is scored once, afterwards.
No left-right flips: a chest radiograph is not mirror-symmetric (heart, aortic knob, gastric
bubble), and a mirrored film is not an image the model will meet. The official test split is
withheld and never used here.
"""

from __future__ import annotations

import argparse
from functools import partial
from pathlib import Path

from models.training import common, torch_cv, torch_train

MODEL_ID = "chest-xray-pneumonia"
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
    parser.add_argument("--epochs", type=int, default=16)
    parser.add_argument("--folds", type=int, default=5)
    args = parser.parse_args()
    common.seed_everything(0)  # network initialisation is part of the seeded recipe
    data = common.load_medmnist("pneumoniamnist")
    manifest = {
        "id": MODEL_ID,
        "name": "Chest X-ray pneumonia classifier (28 px CNN, 5-fold ensemble)",
        "version": "1.1.0",
        "task": "classification",
        "framework": "torch",
        "modalities": ["CR", "DX"],
        "body_parts": ["CHEST"],
        "input": INPUT,
        "output": {
            "labels": ["normal", "pneumonia"],
            "positive_label": "pneumonia",
            "thresholds": {"pneumonia": 0.5},
        },
        "min_app_version": "0.1.0",
        "intended_use": (
            "Flags frontal paediatric chest radiographs suggestive of pneumonia "
            "for research and demonstration. Not a diagnostic device."
        ),
        "demo_only": True,
        "training_data": (
            "PneumoniaMNIST (MedMNIST v2, CC BY 4.0) train split, 4,708 images at "
            "28x28; see SOURCES.md"
        ),
        "heatmap": {"method": "gradcam", "target_layer": "features"},
    }
    widths = [16, 32, 64]
    candidate = torch_cv.Candidate(
        name="SmallCNN-16-32-64",
        make_net=partial(torch_train.SmallCNN, 1, 2, widths=widths),
        feature_width=widths[-1],
        epochs=args.epochs,
        lr=3e-3,
        batch=64,
        augment=partial(torch_train.augment_shift_flip, shift=2, hflip=False),
    )
    recipe = torch_cv.CvRecipe(
        manifest=manifest,
        xtr=data["train_images"],
        ytr=data["train_labels"].ravel(),
        xva=data["val_images"],
        yva=data["val_labels"].ravel(),
        candidates=[candidate],
        folds=args.folds,
        seed=7,
        metrics_info={
            "dataset": "PneumoniaMNIST (MedMNIST v2)",
            "split": "val",
            "data_ref": "medmnist:pneumoniamnist:val",
            "note": "val was not used for any choice: architecture and epochs were fixed "
            "beforehand, temperature and threshold on train's out-of-fold predictions, then val "
            "was scored once; official test split withheld, never used",
        },
        sources=common.MEDMNIST / "SOURCES.md",
    )
    torch_cv.run(recipe, args.out)


if __name__ == "__main__":
    main()
