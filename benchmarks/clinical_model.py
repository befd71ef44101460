"""A clinical-size stand-in model for the inference benchmark, built locally at bench time.

The zoo's networks are tiny (28-64 px inputs, a forward pass under 2 ms), so against them the
fixed cost of decoding and preprocessing a 3.6-megapixel radiograph dominates every ratio. The
issue's latency goal is stated for a DenseNet121-class network; this builds a network of that
class of cost (a plain ResNet-18-shaped convolution stack, about 1.8 GFLOPs at 224x224, random
weights from a fixed seed: only its cost matters) as a real TorchScript package with the chest
X-ray model's preprocessing, so the same pipeline can be measured against it. Nothing is
downloaded; the package lives in a temporary folder.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

MODEL_ID = "bench-clinical-size"
SIZE = 224


def _network() -> Any:
    import torch
    from torch import nn

    torch.manual_seed(0)
    layers: list[nn.Module] = [
        nn.Conv2d(1, 64, 7, stride=2, padding=3),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(3, stride=2, padding=1),
    ]
    channels = 64
    for width, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
        for i in range(4):
            layers += [
                nn.Conv2d(channels, width, 3, stride=stride if i == 0 else 1, padding=1),
                nn.ReLU(inplace=True),
            ]
            channels = width
    net = nn.Sequential(
        nn.Sequential(*layers), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, 2)
    )
    return net.eval()


def build_package(folder: Path) -> Path:
    """Write the package (TorchScript weights + manifest with hashes) into ``folder``."""
    import torch

    from models.manifest import write_manifest

    folder.mkdir(parents=True, exist_ok=True)
    scripted = torch.jit.trace(_network(), torch.zeros(1, 1, SIZE, SIZE))
    scripted.save(str(folder / "model.pt"))
    zoo = json.loads(
        (
            Path(__file__).resolve().parents[1]
            / "models"
            / "zoo"
            / "chest-xray-pneumonia"
            / "manifest.json"
        ).read_text(encoding="utf-8")
    )
    steps = [
        {**s, "size": [SIZE, SIZE]} if s["op"] == "resize" else s
        for s in zoo["input"]["preprocessing"]
    ]
    write_manifest(
        folder,
        {
            "id": MODEL_ID,
            "name": "Benchmark stand-in, ResNet-18-shaped, random weights",
            "version": "0.0.1",
            "task": "classification",
            "framework": "torch",
            "modalities": ["CR", "DX", "MR"],
            "input": {**zoo["input"], "size": [SIZE, SIZE], "preprocessing": steps},
            "output": {"labels": ["normal", "pneumonia"], "thresholds": {"pneumonia": 0.5}},
            "weights": "model.pt",
            "intended_use": "Benchmark only: measures pipeline cost around a clinical-size model.",
            "demo_only": True,
            "training_data": "none (random weights)",
        },
    )
    return folder
