"""Foreign models made here for the import tests: a small torch CNN exported to ONNX with its
description, and MONAI-style bundles around a scripted network (nothing is downloaded)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from core.app.workstation import Workstation
from core.security.users import Role

PASSWORD = "correct horse battery"
CNN_SIZE = 28


def profile_with_users() -> None:
    """An admin and a radiologist in the test's (isolated) profile."""
    ws = Workstation.open()
    try:
        ws.users.create_user("admin", PASSWORD, Role.ADMIN, by="test")
        ws.users.create_user("rad", PASSWORD, Role.RADIOLOGIST, by="admin")
    finally:
        ws.close()


def small_cnn(out_channels: int = 2, segmentation: bool = False, in_channels: int = 1) -> Any:
    """A seeded few-kilobyte CNN: (N, C, 28, 28) -> (N, K) logits, or (N, K, 28, 28)."""
    import torch
    from torch import nn

    torch.manual_seed(3)
    if segmentation:
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, 6, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(6, out_channels, 1),
        ]
    else:
        layers = [
            nn.Conv2d(in_channels, 6, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(6, 8, 3, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(8, out_channels),
        ]
    return nn.Sequential(*layers).eval()


def export_onnx(
    model: Any, path: Path, *, size: int = CNN_SIZE, channels: int = 1, dynamic: bool = True
) -> Path:
    """torch.onnx.export (opset 17, the TorchScript exporter), with a dynamic batch axis
    unless ``dynamic`` is false."""
    import warnings

    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the legacy exporter's notice
        torch.onnx.export(
            model,
            (torch.zeros(1, channels, size, size),),
            str(path),
            dynamo=False,
            input_names=["image"],
            output_names=["logits"],
            dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}} if dynamic else None,
            opset_version=17,
        )
    return path


ONNX_DESCRIPTION = """\
id: hospital-chest
name: Hospital chest classifier (test export)
version: 1.0.0
task: classification
labels: [normal, pneumonia]
positive_label: pneumonia
threshold: 0.4
activation: softmax
modalities: [CR, DX]
body_parts: [CHEST]
input:
  size: [28, 28]
  layout: NCHW
  channels: 1
  color: grayscale
  frames: first
  preprocessing:
    - {op: auto_window, low_percentile: 0.5, high_percentile: 99.5}
    - {op: resize, size: [28, 28]}
    - {op: normalize, mean: 0.5, std: 0.25}
    - {op: to_channels, n: 1}
intended_use: Test export of a small CNN; flags frontal chest radiographs.
training_data: none (random weights, made in the test)
population:
  age_years: [18, 90]
  on_mismatch: warn
"""


def onnx_source(folder: Path, description: str = ONNX_DESCRIPTION) -> tuple[Path, Any]:
    """``folder/model.onnx`` and ``folder/model.yaml``; returns the file and the torch model."""
    folder.mkdir(parents=True, exist_ok=True)
    model = small_cnn()
    path = export_onnx(model, folder / "model.onnx")
    (folder / "model.yaml").write_text(description, encoding="utf-8")
    return path, model


def torch_probabilities(model: Any, batch: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """Softmax of the torch model's logits on a preprocessed batch (the reference scores)."""
    import torch

    with torch.inference_mode():
        logits = model(torch.from_numpy(batch))
        return np.asarray(torch.softmax(logits, dim=1).numpy(), dtype=np.float32)


def metadata(
    *, task: str = "classification", labels: dict[str, str] | None = None, size: int = 28
) -> dict[str, Any]:
    """A bundle's configs/metadata.json in MONAI's format (network_data_format)."""
    defs = labels or {"0": "normal", "1": "abnormal"}
    out: dict[str, Any]
    if task == "segmentation":
        out = {"type": "image", "format": "segmentation", "spatial_shape": [size, size]}
    else:
        out = {"type": "probabilities", "format": "classes", "spatial_shape": [len(defs)]}
    out |= {"num_channels": len(defs), "dtype": "float32", "value_range": [0, 1]}
    if labels != {}:
        out["channel_def"] = defs
    return {
        "schema": "https://github.com/Project-MONAI/MONAI-extra-test-data/releases/download/"
        "0.8.1/meta_schema_20220324.json",
        "version": "0.2.1",
        "monai_version": "1.4.0",
        "name": "Test MR bundle",
        "description": "A scripted test network made in the test.",
        "intended_use": "Testing the bundle importer only.",
        "data_source": "none (random weights)",
        "network_data_format": {
            "inputs": {
                "image": {
                    "type": "image",
                    "format": "magnitude",
                    "modality": "MR",
                    "num_channels": 1,
                    "spatial_shape": [size, size],
                    "dtype": "float32",
                    "value_range": [0, 1],
                    "is_patch_data": False,
                    "channel_def": {"0": "image"},
                }
            },
            "outputs": {"pred": out},
        },
    }


def inference_config(preprocessing: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """A bundle's configs/inference.json: MONAI's transforms by name, a simple inferer."""
    transforms = preprocessing or [
        {"_target_": "LoadImaged", "keys": "image"},
        {"_target_": "EnsureChannelFirstd", "keys": "image"},
        {
            "_target_": "ScaleIntensityRanged",
            "keys": "image",
            "a_min": 0,
            "a_max": "@intensity_max",
            "b_min": 0.0,
            "b_max": 1.0,
            "clip": True,
        },
        {"_target_": "Resized", "keys": "image", "spatial_size": [28, 28]},
        {"_target_": "EnsureTyped", "keys": "image"},
    ]
    return {
        "imports": ["$import torch"],
        "intensity_max": 400,
        "network_def": {"_target_": "SegResNet"},
        "preprocessing": {"_target_": "Compose", "transforms": transforms},
        "inferer": {"_target_": "SimpleInferer"},
        "postprocessing": {
            "_target_": "Compose",
            "transforms": [
                {"_target_": "Activationsd", "keys": "pred", "softmax": True},
                {"_target_": "AsDiscreted", "keys": "pred", "argmax": True},
            ],
        },
    }


def bundle(
    folder: Path,
    *,
    task: str = "classification",
    labels: dict[str, str] | None = None,
    preprocessing: list[dict[str, Any]] | None = None,
    network: bool = True,
) -> tuple[Path, Any]:
    """A MONAI-style bundle: configs/metadata.json, configs/inference.json, models/model.ts
    (torch.jit.script of the small CNN); returns the folder and the torch model."""
    import torch

    (folder / "configs").mkdir(parents=True)
    (folder / "models").mkdir()
    n = len(labels) if labels else 2
    model = small_cnn(n, segmentation=task == "segmentation")
    if network:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # TorchScript: what bundles ship
            torch.jit.save(torch.jit.script(model), str(folder / "models" / "model.ts"))
    meta = metadata(task=task, labels=labels)
    (folder / "configs" / "metadata.json").write_text(json.dumps(meta), encoding="utf-8")
    config = inference_config(preprocessing)
    (folder / "configs" / "inference.json").write_text(json.dumps(config), encoding="utf-8")
    return folder, model
