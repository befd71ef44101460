"""The two cross-validated zoo models: operating points chosen on train alone, val figures
reproducible from the package, intervals that match the val predictions.

Real packages, real MedMNIST data in ../shared/data (the same files the models were trained on).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from models.evaluate import compare, evaluate_package, load_reference_data, predict_all
from models.metrics import operating_point_intervals
from tests.models.conftest import ZOO

CV_MODELS = ["chest-xray-pneumonia", "breast-ultrasound"]
TRAIN_SIZES = {"chest-xray-pneumonia": 4708, "breast-ultrasound": 546}


def _manifest(model_id: str) -> dict:  # type: ignore[type-arg]
    return dict(json.loads((ZOO / model_id / "manifest.json").read_text(encoding="utf-8")))


@pytest.mark.parametrize("model_id", CV_MODELS)
def test_threshold_and_temperature_recomputed_from_shipped_oof_predictions(model_id: str) -> None:
    """The manifest's threshold and temperature follow from train's out-of-fold logits alone."""
    from models.training.torch_cv import OOF_FILE, operating_point

    manifest = _manifest(model_id)
    out = manifest["output"]
    positive = out["labels"].index(out["positive_label"])
    with np.load(ZOO / model_id / OOF_FILE) as oof:
        logits, labels, fold = oof["logits"], oof["labels"], oof["fold"]
    # the OOF predictions cover train (not val): one per train image, every fold used
    assert len(labels) == TRAIN_SIZES[model_id]
    assert sorted(set(fold.tolist())) == list(range(manifest["extra"]["folds"]))
    temperature, threshold = operating_point(logits, labels, positive)
    assert temperature == pytest.approx(out["calibration"]["temperature"], abs=1e-6)
    assert threshold == pytest.approx(out["thresholds"][out["positive_label"]], abs=1e-4)
    assert "out-of-fold" in manifest["metrics"]["threshold_method"]
    assert "not used for any choice" in manifest["metrics"]["note"]


@pytest.mark.parametrize("model_id", CV_MODELS)
def test_val_metrics_and_intervals_reproduced_from_the_package(
    model_id: str,
    zoo_model: object,
) -> None:
    package, model = zoo_model(model_id)  # type: ignore[operator]
    measured = evaluate_package(package, model)
    assert compare(package, measured) == []
    metrics = _manifest(model_id)["metrics"]
    raw, labels = load_reference_data(metrics["data_ref"])
    probs = predict_all(model, package, raw)
    out = package.manifest.output
    positive = out.labels.index(out.positive_label)
    got = operating_point_intervals(
        labels, probs, positive, out.thresholds[out.positive_label or ""]
    )
    for name in ("sensitivity", "specificity"):
        lo, hi = metrics[f"{name}_ci"]
        assert lo <= metrics[name] <= hi
        assert got[f"{name}_ci"] == pytest.approx((lo, hi), abs=0.02)


def test_stratified_folds_keep_class_balance_and_cover_every_sample() -> None:
    from models.training.torch_cv import stratified_folds

    y = np.array([0] * 30 + [1] * 70)
    fold = stratified_folds(y, 5, seed=1)
    assert sorted(np.bincount(fold).tolist()) == [20] * 5
    for f in range(5):
        assert (y[fold == f] == 0).sum() == 6
    assert not np.array_equal(fold, stratified_folds(y, 5, seed=2))  # seeded shuffle
    with pytest.raises(ValueError, match="at least 2 folds"):
        stratified_folds(y, 1, seed=0)


def test_ensemble_scripts_and_averages_member_logits() -> None:
    """The shipped module's layout: features concatenated, logits averaged (Grad-CAM split)."""
    import torch

    from models.training.torch_train import LogitEnsemble, SmallCNN

    torch.manual_seed(0)
    members = [SmallCNN(1, 2, widths=[4, 8]).eval() for _ in range(3)]
    ens = torch.jit.script(LogitEnsemble(members, [8, 8, 8]).eval())
    x = torch.randn(2, 1, 28, 28)
    with torch.inference_mode():
        expected = torch.stack([m(x) for m in members]).mean(dim=0)
        assert torch.allclose(ens(x), expected, atol=1e-6)
        assert ens.features(x).shape == (2, 24, 14, 14)
    with pytest.raises(ValueError, match="one feature width per member"):
        LogitEnsemble(members, [8])
