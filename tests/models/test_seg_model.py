"""The zoo's segmentation demo (ONNX U-Net trained on phantoms): a verified package, its
self-test through the ONNX Runtime adapter, and softmax masks of the declared shape."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from models.adapters import load_model
from models.manifest import load_package
from models.preprocess import preprocess_batch
from models.selftest import run_selftest
from tests.models.conftest import ZOO

MODEL_ID = "brain-lesion-seg-mri"


@pytest.fixture(scope="module")
def seg():  # type: ignore[no-untyped-def]
    package = load_package(ZOO / MODEL_ID)
    model = load_model(package, "cpu")
    yield package, model
    model.close()


def test_manifest_says_demo_segmentation_onnx_and_small(seg) -> None:  # type: ignore[no-untyped-def]
    package, _ = seg
    m = package.manifest
    assert (m.task, m.framework, m.modalities, m.demo_only) == (
        "segmentation",
        "onnx",
        ["MR"],
        True,
    )
    assert "phantom" in m.intended_use.lower()
    assert "demo" in m.intended_use.lower()
    assert m.population is not None
    assert m.population.modalities == ["MR"]
    assert m.metrics is not None
    assert m.metrics.scores["dice_lesion_slices"] > 0.8
    assert (package.path / "model.onnx").stat().st_size < 2_000_000
    assert (package.path / "SOURCES.md").read_text().count("train_segmentation") >= 1


def test_selftest_passes_and_output_is_per_pixel_softmax(seg) -> None:  # type: ignore[no-untyped-def]
    package, model = seg
    outcome = run_selftest(package, model)
    assert outcome.ok, outcome.message
    raw = np.load(package.file(package.manifest.selftest.input))
    probs = model.predict(preprocess_batch(list(raw), package.manifest.input, package.id))
    assert probs.shape == (len(raw), 2, 64, 64)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    # the sample is lesion, no lesion, lesion: only the first and last have lesion pixels
    lesion_pixels = (probs.argmax(axis=1) == 1).reshape(len(raw), -1).sum(axis=1)
    assert lesion_pixels[0] > 10
    assert lesion_pixels[2] > 10
    assert lesion_pixels[1] < 5


def test_selftest_fails_on_other_weights(tmp_path: Path, seg) -> None:  # type: ignore[no-untyped-def]
    """A changed expected output is caught (the self-test compares, it does not just run)."""
    package, model = seg
    copy = tmp_path / MODEL_ID
    shutil.copytree(package.path, copy)
    expected = np.load(copy / "selftest" / "expected.npy")
    np.save(copy / "selftest" / "expected.npy", expected[::-1].copy())
    from models.manifest import read_manifest, write_manifest

    _, raw = read_manifest(copy)
    raw.pop("files")
    write_manifest(copy, raw)
    outcome = run_selftest(load_package(copy), model)
    assert not outcome.ok
    assert "DIFFERS" in outcome.message


def test_manifest_figures_are_what_the_package_measures(seg) -> None:  # type: ignore[no-untyped-def]
    """The Dice and image-level figures, recomputed from the shipped file on the validation
    phantoms the manifest names (what `models verify --eval` should compare)."""
    from models.segmentation import evaluate

    package, model = seg
    measured = evaluate(package, model)
    declared = package.manifest.metrics
    for name in ("auc", "sensitivity", "specificity"):
        assert abs(measured[name] - getattr(declared, name)) <= 1e-3, name
    for name, value in declared.scores.items():
        assert abs(measured[name] - value) <= 1e-3, name
