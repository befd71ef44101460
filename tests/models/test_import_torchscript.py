"""The TorchScript adapter (framework "torchscript") on scripted networks written here: the
manifest's activation and calibration applied per image and per pixel, an output that
disagrees with the manifest refused by name, a file torch cannot read refused at import."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from models.adapters import load_model
from models.adapters.torchscript_adapter import OutputShapeError
from models.importers import ModelImportError, prepare
from models.manifest import ModelPackage, load_package, write_manifest
from tests.models.import_fixtures import bundle, small_cnn

torch = pytest.importorskip("torch", reason="TorchScript needs torch (the 'ai' extra)")


def _package(
    folder: Path, model: Any, *, task: str, labels: list[str], output: dict[str, Any]
) -> ModelPackage:
    folder.mkdir()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(torch.jit.script(model), str(folder / "net.ts"))
    write_manifest(
        folder,
        {
            "id": "ts-test",
            "name": "TorchScript test",
            "version": "1.0.0",
            "task": task,
            "framework": "torchscript",
            "modalities": ["MR"],
            "input": {"kind": "image", "size": [28, 28], "channels": 1, "layout": "NCHW"},
            "output": {"labels": labels, **output},
            "weights": "net.ts",
            "intended_use": "tests",
            "training_data": "none",
        },
    )
    return load_package(folder)


def _batch(n: int = 3) -> np.ndarray:
    return np.random.default_rng(2).random((n, 1, 28, 28)).astype(np.float32)


def _logits(model: Any, batch: np.ndarray) -> Any:
    with torch.inference_mode():
        return model(torch.from_numpy(batch))


def test_single_logit_sigmoid_with_temperature(tmp_path: Path) -> None:
    net = small_cnn(1)
    output = {
        "activation": "sigmoid",
        "positive_label": "lesion",
        "calibrated": True,
        "calibration": {"method": "temperature", "temperature": 2.0},
    }
    package = _package(
        tmp_path / "p", net, task="classification", labels=["clear", "lesion"], output=output
    )
    model = load_model(package, "cpu")
    batch = _batch()
    probs = model.predict(batch)
    expected = torch.sigmoid(_logits(net, batch)[:, 0] / 2.0).numpy()
    assert probs.shape == (3, 2)
    assert np.allclose(probs[:, 1], expected, atol=1e-6)
    assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-6)
    assert model.device == "cpu"
    assert model.memory_bytes() > 0


def test_segmentation_single_channel_sigmoid_gives_two_label_maps(tmp_path: Path) -> None:
    net = small_cnn(1, segmentation=True)
    output = {"activation": "sigmoid", "positive_label": "lesion"}
    package = _package(
        tmp_path / "p", net, task="segmentation", labels=["background", "lesion"], output=output
    )
    probs = load_model(package, "cpu").predict(_batch(2))
    assert probs.shape == (2, 2, 28, 28)
    expected = torch.sigmoid(_logits(net, _batch(2))[:, 0]).numpy()
    assert np.allclose(probs[:, 1], expected, atol=1e-6)
    assert np.allclose(probs[:, 0], 1.0 - expected, atol=1e-6)


def test_output_that_disagrees_with_the_manifest_is_refused(tmp_path: Path) -> None:
    net = small_cnn(3)  # three logits, two labels
    package = _package(tmp_path / "p", net, task="classification", labels=["a", "b"], output={})
    with pytest.raises(OutputShapeError, match=r"model 'ts-test'.*shape \(3, 3\).*2 label"):
        load_model(package, "cpu").predict(_batch())


def test_a_network_torch_cannot_read_is_refused_at_import(tmp_path: Path) -> None:
    folder, _ = bundle(tmp_path / "bad-net")
    (folder / "models" / "model.ts").write_bytes(b"PK\x03\x04 not really a TorchScript archive")
    plan = prepare(folder)  # the configs are fine: the network is read when built
    with pytest.raises(ModelImportError) as caught:
        plan.build(tmp_path / "out")
    assert "loading the network" in str(caught.value)
    assert "cannot load TorchScript" in str(caught.value)
