"""On a GPU machine: the zoo's scores on the GPU agree with the CPU's on validation data.

Not bit-equal: cuDNN picks other convolution algorithms and, on Ampere and later, TensorFlow and
torch's cuDNN convolutions use TF32 by default, as the app runs them. So the check is what a
user would notice: probabilities within PARITY_ATOL, the same decision on at least 99% of
images, and the AUC within 0.005. The largest difference is in the message either way.
"""

from __future__ import annotations

import numpy as np
import pytest

from models.adapters import load_model
from models.evaluate import EvaluationError, load_reference_data, predict_all
from models.manifest import ModelPackage
from models.metrics import classification_metrics
from models.postprocess import decide
from tests.gpu_zoo import ON_GPU, package_for, require_gpu

PARITY_ATOL = 5e-3
CASES = [
    ("torch", "chest-xray-pneumonia"),
    ("torch", "breast-ultrasound"),
    ("torch", "lung-colon-histopathology"),
    ("keras", "brain-tumour-mri"),
    ("keras", "skin-lesion"),
    ("xgboost", "tabular-breast-cancer"),
    ("onnx", "chest-xray-pneumonia"),
    ("onnx", "brain-tumour-mri"),
]


def _scores(package: ModelPackage, device: str, raw: np.ndarray) -> tuple[np.ndarray, str]:
    model = load_model(package, device)
    try:
        return predict_all(model, package, raw, batch=64), model.device
    finally:
        model.close()


@pytest.mark.parametrize(("framework", "model_id"), CASES, ids=[f"{f}-{m}" for f, m in CASES])
def test_gpu_scores_match_the_cpu_on_validation_data(
    framework: str, model_id: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    require_gpu(framework)
    package = package_for(framework, tmp_path_factory, model_id)
    assert package.manifest.metrics is not None
    try:
        raw, labels = load_reference_data(package.manifest.metrics.data_ref)
    except EvaluationError as exc:
        pytest.skip(f"validation data of '{package.id}' not available: {exc}")
    gpu, gpu_device = _scores(package, "gpu", raw)
    cpu, _ = _scores(package, "cpu", raw)
    assert gpu_device == ON_GPU[framework][1]
    diff = float(np.max(np.abs(gpu - cpu)))
    out = package.manifest.output
    same = np.mean(np.array(decide(gpu, out)) == np.array(decide(cpu, out)))
    where = f"{package.id} on {gpu_device}: max |GPU - CPU| {diff:.2e}, same decision {same:.2%}"
    assert diff < PARITY_ATOL, where
    assert same >= 0.99, where
    positive = out.labels.index(out.positive_label) if out.positive_label else None
    threshold = out.thresholds.get(out.positive_label or "", 0.5)
    auc_gpu = classification_metrics(labels, gpu, positive, threshold).get("auc")
    auc_cpu = classification_metrics(labels, cpu, positive, threshold).get("auc")
    if auc_gpu is not None and auc_cpu is not None:
        assert abs(auc_gpu - auc_cpu) < 0.005, where


def test_onnx_segmentation_on_cuda_matches_the_cpu_per_pixel() -> None:
    """The zoo's ONNX U-Net: its self-test passes on CUDA, and the per-pixel probabilities of
    its sample agree with the CPU's (same label map on at least 99.9% of pixels)."""
    require_gpu("onnx")
    from models.discovery import ZOO_DIR
    from models.manifest import load_package
    from models.preprocess import preprocess_batch
    from models.selftest import run_selftest

    folder = ZOO_DIR / "brain-lesion-seg-mri"
    if not folder.is_dir():
        pytest.skip(f"no segmentation package at {folder}")
    package = load_package(folder)
    assert package.manifest.selftest is not None
    sample = np.load(package.file(package.manifest.selftest.input))
    batch = preprocess_batch(list(sample), package.manifest.input, package.id)
    out = {}
    for device in ("gpu", "cpu"):
        model = load_model(package, device)
        try:
            assert run_selftest(package, model).ok, device
            out[model.device] = model.predict(batch)
        finally:
            model.close()
    gpu, cpu = out[ON_GPU["onnx"][1]], out["cpu"]
    diff = float(np.max(np.abs(gpu - cpu)))
    same = float(np.mean(gpu.argmax(axis=1) == cpu.argmax(axis=1)))
    assert diff < PARITY_ATOL, f"max |GPU - CPU| {diff:.2e}"
    assert same >= 0.999, f"same label on {same:.4%} of pixels"
