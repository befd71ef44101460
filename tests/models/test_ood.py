"""models.ood: the statistics, the file, the adapters' features and the zoo's references."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from models import ood
from models.evaluate import load_reference_data
from models.training.fit_ood import features_of
from tests.models.conftest import IMAGE_MODELS, ZOO


def _blobs(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    a = rng.normal(0.0, 1.0, (300, 6)) + np.array([5, 0, 0, 0, 0, 0])
    b = rng.normal(0.0, 1.0, (300, 6)) - np.array([5, 0, 0, 0, 0, 0])
    return np.concatenate([a, b]), np.repeat([0, 1], 300)


def test_ledoit_wolf_matches_scikit_learn() -> None:
    sklearn_cov = pytest.importorskip("sklearn.covariance")
    rng = np.random.default_rng(3)
    x = rng.normal(size=(80, 12)) @ rng.normal(size=(12, 12))  # few samples: real shrinkage
    x -= x.mean(axis=0)
    ours, a = ood.ledoit_wolf(x)
    ref = sklearn_cov.LedoitWolf(assume_centered=True).fit(x)
    assert a == pytest.approx(ref.shrinkage_, rel=1e-9)
    np.testing.assert_allclose(ours, ref.covariance_, rtol=1e-9, atol=1e-12)


def test_class_conditional_distance_is_to_the_nearest_class() -> None:
    x, y = _blobs()
    ref = ood.fit_mahalanobis(x, y)
    assert ref.means is not None
    assert ref.means.shape == (2, 6)
    near_a, near_b = np.array([[5.0, 0, 0, 0, 0, 0]]), np.array([[-5.0, 0, 0, 0, 0, 0]])
    between = np.array([[0.0, 0, 0, 0, 0, 0]])  # the pooled mean: far from both classes
    far = np.array([[0.0, 0, 0, 0, 0, 30.0]])
    s = ood.score(ref, np.concatenate([near_a, near_b, between, far]))
    assert s[0] < 1.5
    assert s[1] < 1.5
    assert s[2] > 15  # a single-Gaussian fit would call this the most typical point
    assert s[3] > 400
    pooled = ood.score(ood.fit_mahalanobis(x), between)
    assert pooled[0] < s[2]


def test_singular_features_still_give_finite_scores() -> None:
    x, y = _blobs()
    x = np.concatenate([x, np.zeros((len(x), 3))], axis=1)  # three dead ReLU channels
    ref = ood.fit_mahalanobis(x, y)
    s = ood.score(ref, x[:5])
    assert np.all(np.isfinite(s))
    assert ref.shrinkage > 0


def test_energy_score() -> None:
    logits = np.array([[10.0, -10.0], [0.1, 0.0], [200.0, 199.0]])
    s = ood.score(ood.energy_reference(), logits)
    expected = -np.log(np.exp(logits[:2]).sum(axis=1))
    np.testing.assert_allclose(s[:2], expected, rtol=1e-6)
    assert s[0] < s[1]  # confident = low energy = in distribution
    assert np.isfinite(s[2])  # no overflow with large logits


def test_threshold_is_the_quantile_of_validation_scores() -> None:
    scores = np.arange(100, dtype=np.float32)
    t = ood.threshold_at(scores, 0.95)
    assert np.mean(scores > t) == pytest.approx(0.05, abs=0.011)


def test_file_round_trip_is_exact_and_deterministic(tmp_path: Path) -> None:
    x, y = _blobs()
    ref = ood.fit_mahalanobis(x, y)
    ood.save(ref, tmp_path / "a.npz")
    ood.save(ood.fit_mahalanobis(x, y), tmp_path / "b.npz")
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()
    back = ood.load(tmp_path / "a.npz")
    np.testing.assert_array_equal(ood.score(back, x), ood.score(ref, x))
    ood.save(ood.energy_reference(2.0), tmp_path / "e.npz")
    assert ood.load(tmp_path / "e.npz").temperature == 2.0


def test_bad_reference_files_are_named(tmp_path: Path) -> None:
    bad = tmp_path / "ood.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(ood.OodReferenceError, match=r"ood\.npz"):
        ood.load(bad)
    np.savez(bad, format=np.asarray(1), method=np.asarray("mahalanobis"))
    with pytest.raises(ood.OodReferenceError, match="means or the precision"):
        ood.load(bad)
    x, y = _blobs()
    with pytest.raises(ood.OodReferenceError, match="4 dimensions, the reference 6"):
        ood.score(ood.fit_mahalanobis(x, y), np.zeros((2, 4)))


@pytest.mark.parametrize("model_id", IMAGE_MODELS)
def test_adapter_features_come_with_the_same_predictions(zoo_model: Any, model_id: str) -> None:
    package, model = zoo_model(model_id)
    raw = np.load(ZOO / model_id / "selftest" / "input.npy")
    from models.preprocess import preprocess_batch

    batch = preprocess_batch(list(raw), package.manifest.input, model_id)
    probs, feats = model.predict_with_features(batch)
    np.testing.assert_allclose(probs, model.predict(batch), atol=1e-6)
    assert feats is not None
    assert feats.dtype == np.float32
    assert feats.shape[0] == len(raw)
    assert feats.ndim == 2
    np.testing.assert_allclose(model.features(batch), feats, atol=1e-6)
    _, logits = model.predict_with_features(batch, "logits")
    assert logits is not None
    assert logits.shape == probs.shape
    with pytest.raises(ValueError, match="nonexistent"):
        model.predict_with_features(batch, "nonexistent")


@pytest.mark.parametrize("model_id", IMAGE_MODELS)
def test_zoo_reference_flags_about_five_percent_of_own_validation(
    zoo_model: Any, model_id: str
) -> None:
    """The shipped ood.npz and threshold, recomputed on the package's validation data."""
    package, model = zoo_model(model_id)
    spec = package.manifest.ood
    assert spec is not None
    assert spec.method == "mahalanobis"
    raw = json.loads((ZOO / model_id / "manifest.json").read_text())
    assert "train" in raw["ood"]["fit_on"]
    assert package.manifest.metrics is not None
    x_val, _ = load_reference_data(package.manifest.metrics.data_ref)
    scores = ood.score(ood.load(package.file(spec.reference)), features_of(model, x_val, None))
    flagged = float(np.mean(scores > spec.threshold))
    assert flagged <= 0.10
    assert flagged == pytest.approx(spec.validation["own_val_flagged"], abs=0.01)
