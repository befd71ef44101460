"""Importing a MONAI bundle folder (made here: metadata.json, inference.json, a scripted network
in models/model.ts): it maps to a package that runs, classification through the model manager
and segmentation as (N, C, h, w) probabilities; what it cannot express is refused by name."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from core.app.model_import import import_model
from core.app.workstation import Workstation
from core.inference.manager import ModelManager
from core.inference.model_store import ModelStore
from core.inference.pipeline import run_images
from core.inference.result import InputRef
from core.paths import profile_dir
from models.adapters import load_model
from models.importers import ModelImportError, prepare
from models.manifest import load_package
from models.preprocess import preprocess_batch
from tests.models.import_fixtures import PASSWORD, bundle, profile_with_users, torch_probabilities

pytest.importorskip("torch", reason="the bundle's network is TorchScript (the 'ai' extra)")


def _mr_slices(n: int = 3) -> list[np.ndarray]:
    rng = np.random.default_rng(5)
    return [(rng.random((40, 36)) * 500).astype(np.float32) for _ in range(n)]


def test_classification_bundle_imports_and_runs_through_the_manager(tmp_path: Path) -> None:
    folder, torch_model = bundle(tmp_path / "mr-classifier")
    profile_with_users()
    ws = Workstation.open()
    try:
        ws.session.login("admin", PASSWORD)
        done = import_model(ws, ModelStore(profile_dir() / "models"), folder)
    finally:
        ws.close()
    assert (done.model_id, done.version, done.kind) == ("mr-classifier", "0.2.1", "monai-bundle")
    package = load_package(done.path)
    manifest = package.manifest
    assert (manifest.framework, manifest.task, manifest.modalities) == (
        "torchscript",
        "classification",
        ["MR"],
    )
    assert manifest.output.labels == ["normal", "abnormal"]
    assert manifest.output.activation == "softmax"
    steps = [s.model_dump() for s in manifest.input.preprocessing]
    assert steps[0] == {"op": "window", "center": 200.0, "width": 400.0}  # a_max was "@..."
    assert steps[1] == {"op": "resize", "size": (28, 28)}

    images = _mr_slices()
    manager = ModelManager([package], device="cpu")
    refs = [InputRef(f"1.2.9.{i}") for i in range(len(images))]
    result = run_images(manager, package.id, images, refs, heatmap=False)
    expected = torch_probabilities(torch_model, preprocess_batch(images, manifest.input, "x"))
    assert float(np.max(np.abs(result.probabilities - expected))) < 1e-5
    manager.shutdown()


def test_segmentation_bundle_gives_per_pixel_probabilities(tmp_path: Path) -> None:
    import torch

    labels = {"0": "background", "1": "lesion", "2": "oedema"}
    folder, torch_model = bundle(tmp_path / "seg", task="segmentation", labels=labels)
    plan = prepare(folder)
    assert plan.manifest["task"] == "segmentation"
    package = plan.build(tmp_path / "built")
    model = load_model(package, "cpu")
    batch = preprocess_batch(_mr_slices(2), package.manifest.input, package.id)
    probs = model.predict(batch)
    assert probs.shape == (2, 3, 28, 28)
    with torch.inference_mode():
        expected = torch.softmax(torch_model(torch.from_numpy(batch)), dim=1).numpy()
    assert float(np.max(np.abs(probs - expected))) < 1e-5
    assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    model.close()


def test_missing_network_is_refused_naming_models_model_ts(tmp_path: Path) -> None:
    folder, _ = bundle(tmp_path / "b", network=False)
    with pytest.raises(ModelImportError, match=r"models/model\.ts: missing"):
        prepare(folder)


def test_missing_labels_are_refused_naming_channel_def(tmp_path: Path) -> None:
    folder, _ = bundle(tmp_path / "b", labels={})
    with pytest.raises(ModelImportError) as caught:
        prepare(folder)
    assert "configs/metadata.json" in str(caught.value)
    assert "network_data_format.outputs.pred.channel_def is missing" in str(caught.value)


def test_unsupported_transform_is_refused_naming_it(tmp_path: Path) -> None:
    steps: list[dict[str, Any]] = [
        {"_target_": "LoadImaged", "keys": "image"},
        {"_target_": "Spacingd", "keys": "image", "pixdim": [1.0, 1.0]},
    ]
    folder, _ = bundle(tmp_path / "b", preprocessing=steps)
    with pytest.raises(ModelImportError) as caught:
        prepare(folder)
    assert "configs/inference.json" in str(caught.value)
    assert "preprocessing transform 1 'Spacingd': not supported" in str(caught.value)


def test_expressions_and_patch_inferers_are_refused(tmp_path: Path) -> None:
    steps = [{"_target_": "ScaleIntensityRanged", "keys": "image", "a_min": "$-1000 + 10"}]
    folder, _ = bundle(tmp_path / "a", preprocessing=steps)
    with pytest.raises(ModelImportError, match="is not evaluated by the importer"):
        prepare(folder)
    folder, _ = bundle(tmp_path / "b")
    config = json.loads((folder / "configs" / "inference.json").read_text())
    config["inferer"] = {"_target_": "SlidingWindowInferer", "roi_size": [16, 16]}
    (folder / "configs" / "inference.json").write_text(json.dumps(config))
    with pytest.raises(ModelImportError, match="inferer 'SlidingWindowInferer': not supported"):
        prepare(folder)


def test_three_dimensional_bundles_are_refused(tmp_path: Path) -> None:
    folder, _ = bundle(tmp_path / "b")
    meta_path = folder / "configs" / "metadata.json"
    meta = json.loads(meta_path.read_text())
    meta["network_data_format"]["inputs"]["image"]["spatial_shape"] = [96, 96, 96]
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(ModelImportError, match=r"only 2-D images"):
        prepare(folder)


def test_inference_config_in_yaml_is_read(tmp_path: Path) -> None:
    yaml = pytest.importorskip("yaml", reason="YAML configs need PyYAML")
    folder, _ = bundle(tmp_path / "yaml-bundle")
    config_json = folder / "configs" / "inference.json"
    config = json.loads(config_json.read_text())
    config["preprocessing"]["transforms"][2] = {
        "_target_": "monai.transforms.ScaleIntensityRangePercentilesd",
        "keys": ["image"],
        "lower": 1,
        "upper": 99,
        "b_min": -1.0,
        "b_max": 1.0,
        "clip": True,
    }
    (folder / "configs" / "inference.yaml").write_text(yaml.safe_dump(config))
    config_json.unlink()
    plan = prepare(folder)
    steps = plan.manifest["input"]["preprocessing"]
    assert steps[:2] == [
        {"op": "auto_window", "low_percentile": 1.0, "high_percentile": 99.0},
        {"op": "scale", "factor": 2.0, "offset": -1.0},
    ]
    assert "import/inference.yaml" in plan.files
