"""ONNX exports of the zoo classifiers against their native adapters, on validation images.

Each classifier is exported once (tests/models/onnx_exports.py), loaded through the registry
like any package, and run beside the native adapter on the validation data its manifest names
(MedMNIST val splits, seeded phantoms): probabilities and OOD features must agree, and the
manifest's figures must still hold for the exported model.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

pytest.importorskip("onnxruntime", reason="ONNX models run on onnxruntime (the 'ai' extra)")

from models.adapters import load_model
from models.adapters.base import LoadedModel
from models.evaluate import EvaluationError, compare, load_reference_data, predict_all
from models.manifest import ModelPackage, load_package
from models.metrics import classification_metrics
from models.preprocess import preprocess_batch
from models.training.export_onnx import OPSET
from tests.models.conftest import ZOO
from tests.models.onnx_exports import EXPORTABLE, export_result, exported

Getter = Callable[[str], tuple[ModelPackage, LoadedModel]]
TOLERANCE = 1e-4


def _validation(package: ModelPackage) -> tuple[np.ndarray, np.ndarray]:
    assert package.manifest.metrics is not None
    try:
        return load_reference_data(package.manifest.metrics.data_ref)
    except EvaluationError as exc:  # the MedMNIST files live outside the repo
        pytest.skip(f"validation data of '{package.id}' not available: {exc}")


@pytest.mark.parametrize("model_id", EXPORTABLE)
def test_onnx_scores_match_the_native_adapter_on_validation_images(
    model_id: str, zoo_model: Getter, tmp_path_factory: pytest.TempPathFactory
) -> None:
    native_pkg, native = zoo_model(model_id)
    raw, labels = _validation(native_pkg)
    onnx_pkg = exported(model_id, tmp_path_factory)
    model = load_model(onnx_pkg, "cpu")
    try:
        assert model.device == "cpu"
        ours = predict_all(model, onnx_pkg, raw, batch=64)
        theirs = predict_all(native, native_pkg, raw, batch=64)
    finally:
        model.close()
    assert ours.shape == theirs.shape == (len(raw), len(native_pkg.manifest.output.labels))
    diff = float(np.max(np.abs(ours - theirs)))
    assert diff < TOLERANCE, f"{model_id}: max |ONNX - native| = {diff:.2e} on {len(raw)} images"
    # The manifest's figures (copied from the source) hold for the exported model too.
    out = onnx_pkg.manifest.output
    positive = out.labels.index(out.positive_label) if out.positive_label else None
    threshold = out.thresholds.get(out.positive_label or "", 0.5)
    measured = classification_metrics(labels, ours, positive, threshold)
    assert compare(onnx_pkg, measured) == []


@pytest.mark.parametrize("model_id", EXPORTABLE)
def test_onnx_features_match_the_native_ood_features(
    model_id: str, zoo_model: Getter, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The exported 'features' output is the tensor the native adapter gives models.ood."""
    native_pkg, native = zoo_model(model_id)
    sample = np.load(native_pkg.file(native_pkg.manifest.selftest.input))  # type: ignore[union-attr]
    batch = preprocess_batch(list(sample), native_pkg.manifest.input, model_id)
    model = load_model(exported(model_id, tmp_path_factory), "cpu")
    try:
        probs, feats = model.predict_with_features(batch)
        _, logits = model.predict_with_features(batch, "logits")
    finally:
        model.close()
    native_probs, native_feats = native.predict_with_features(batch)
    assert feats is not None
    assert native_feats is not None
    assert feats.shape == native_feats.shape
    scale = max(1.0, float(np.abs(native_feats).max()))
    assert float(np.max(np.abs(feats - native_feats))) < TOLERANCE * scale
    np.testing.assert_allclose(probs, native_probs, atol=TOLERANCE)
    assert logits is not None
    assert logits.shape == (len(batch), len(native_pkg.manifest.output.labels))


@pytest.mark.parametrize("model_id", EXPORTABLE)
def test_exported_manifest_keeps_what_the_app_reads_from_the_source(
    model_id: str, zoo_model: Getter, tmp_path_factory: pytest.TempPathFactory
) -> None:
    source, _ = zoo_model(model_id)
    result = export_result(model_id, tmp_path_factory)
    onnx_pkg = result.package
    m, s = onnx_pkg.manifest, source.manifest
    assert (m.id, m.framework, m.weights) == (f"{model_id}-onnx", "onnx", "model.onnx")
    assert m.input == s.input
    assert m.output == s.output  # labels, thresholds, activation, calibration
    assert m.population == s.population
    assert m.metrics == s.metrics
    assert m.heatmap is None  # no gradients in ONNX Runtime
    assert m.extra["onnx"]["opset"] == OPSET
    assert m.extra["onnx"]["exported_from"]["package_hash"] == source.package_hash
    if s.ood is not None:
        assert m.ood == s.ood
        assert (
            onnx_pkg.file(m.ood.reference).read_bytes() == source.file(s.ood.reference).read_bytes()
        )
    assert result.selftest_diff < TOLERANCE


def test_exported_package_runs_through_the_app_pipeline_like_its_source(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """ModelManager + run_images on a real CR, MedMNIST frames, noise and a flat field: the same
    probabilities, decisions and guard flags (the exported 'features' output feeds the same OOD
    reference; which frames the reference flags is models.ood's business, tested there)."""
    from core.imaging.header import read_header
    from core.imaging.pixels import read_frame
    from core.inference.manager import ModelManager
    from core.inference.pipeline import run_images
    from core.inference.result import InputRef

    model_id = "chest-xray-pneumonia"
    source = load_package(ZOO / model_id)
    onnx_pkg = exported(model_id, tmp_path_factory)
    cr = ZOO.parents[1] / "resources" / "sample" / "chest_cr" / "RG1_J2KI.dcm"
    frames = [read_frame(read_header(str(cr), require_uids=False).instance)]
    val, _ = _validation(source)
    frames += list(val[:15])
    rng = np.random.default_rng(5)  # noise and a flat field: nothing like a radiograph
    frames += [rng.uniform(0, 255, size=(64, 64)).astype(np.float32), np.full((64, 64), 9.0)]
    refs = [InputRef(f"1.2.3.{i}") for i in range(len(frames))]
    manager = ModelManager([source, onnx_pkg], device="cpu")
    try:
        native = run_images(manager, model_id, frames, refs, heatmap=False)
        ours = run_images(manager, onnx_pkg.id, frames, refs, heatmap=False)
    finally:
        manager.shutdown()
    assert ours.provenance.framework == "onnx"
    assert ours.provenance.device == "cpu"
    np.testing.assert_allclose(ours.probabilities, native.probabilities, atol=TOLERANCE)
    assert ours.decisions == native.decisions
    flags = [(g.kind, g.images) for g in ours.guards]
    assert flags == [(g.kind, g.images) for g in native.guards]
