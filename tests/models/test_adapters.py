"""Each adapter on its real zoo package: shapes, probabilities, self-test, batching, heatmaps."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from models.adapters.base import LoadedModel
from models.manifest import ModelPackage, load_package, write_manifest
from models.preprocess import preprocess_batch
from models.selftest import run_selftest
from tests.models.conftest import ALL_MODELS, IMAGE_MODELS, ZOO

Getter = Callable[[str], tuple[ModelPackage, LoadedModel]]


def _sample_batch(package: ModelPackage) -> np.ndarray:
    raw = np.load(package.file(package.manifest.selftest.input))  # type: ignore[union-attr]
    items = list(raw) if package.manifest.input.kind == "image" else raw
    return preprocess_batch(items, package.manifest.input, package.id)


@pytest.mark.parametrize("model_id", ALL_MODELS)
def test_predict_shape_probabilities_and_selftest(model_id: str, zoo_model: Getter) -> None:
    package, model = zoo_model(model_id)
    batch = _sample_batch(package)
    probs = model.predict(batch)
    assert probs.shape == (len(batch), len(package.manifest.output.labels))
    assert probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    result = run_selftest(package, model)
    assert result.ok, result.message
    assert model.device == "cpu" or model.device.endswith("CPU:0")
    assert model.memory_bytes() > 1000


@pytest.mark.parametrize("model_id", ALL_MODELS)
def test_batched_equals_one_by_one(model_id: str, zoo_model: Getter) -> None:
    package, model = zoo_model(model_id)
    batch = _sample_batch(package)
    together = model.predict(batch)
    apart = np.concatenate([model.predict(batch[i : i + 1]) for i in range(len(batch))])
    np.testing.assert_allclose(together, apart, atol=1e-5)


@pytest.mark.parametrize("model_id", IMAGE_MODELS)
def test_heatmap_shape_and_range(model_id: str, zoo_model: Getter) -> None:
    package, model = zoo_model(model_id)
    batch = _sample_batch(package)
    heat = model.heatmap(batch)
    assert heat is not None
    assert heat.shape == (len(batch), *package.manifest.input.size)  # type: ignore[misc]
    assert heat.min() >= 0.0
    assert heat.max() <= 1.0
    assert np.all(heat.reshape(len(batch), -1).max(axis=1) > 0.99)  # normalised per image


def test_tabular_has_no_heatmap(zoo_model: Getter) -> None:
    package, model = zoo_model("tabular-breast-cancer")
    assert model.heatmap(_sample_batch(package)) is None


def test_selftest_detects_a_wrong_expected_output(tmp_path: Path, zoo_model: Getter) -> None:
    _, model = zoo_model("tabular-breast-cancer")
    copy = tmp_path / "pkg"
    shutil.copytree(ZOO / "tabular-breast-cancer", copy)
    expected = np.load(copy / "selftest" / "expected.npy")
    np.save(copy / "selftest" / "expected.npy", expected[:, ::-1].copy())  # swap the classes
    manifest = json.loads((copy / "manifest.json").read_text())
    write_manifest(copy, {k: v for k, v in manifest.items() if k != "files"})
    result = run_selftest(load_package(copy), model)
    assert not result.ok
    assert "DIFFERS" in result.message
    assert result.max_abs_diff > 0.5


def test_xgboost_feature_names_match_manifest(zoo_model: Getter) -> None:
    package, _ = zoo_model("tabular-breast-cancer")
    from sklearn.datasets import load_breast_cancer

    names = [str(n) for n in load_breast_cancer().feature_names]
    assert package.manifest.input.features == names
