"""Classification and segmentation share one run loop (core.inference.pipeline): the same cache
key (the package hash, so a changed package of the same version is never answered from an
older result) and the same out-of-GPU-memory rerun on the CPU, with the batches already used
replayed. No GPU exists here: a stand-in model on "cuda:0" answers its first batch through the
real CPU model and then fails the way a full card does (the one mock the project allows)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from core.inference.cache import PredictionCache
from core.inference.manager import ModelManager
from core.inference.pipeline import run_images
from core.inference.result import InferenceResult, InputRef
from core.inference.segment import run_segmentation
from models import phantoms
from models.adapters import load_model
from models.adapters.base import LoadedModel
from models.discovery import ZOO_DIR
from models.manifest import ModelPackage, load_package, write_manifest

SEG = "brain-lesion-seg-mri"
CLS = "breast-ultrasound"
RUNS = {SEG: run_segmentation, CLS: run_images}


@pytest.fixture(scope="module")
def slices() -> list[Any]:
    images, _labels, _masks = phantoms.brain_dataset(5, 2718)
    return list(images)


def _refs(n: int) -> list[InputRef]:
    return [InputRef(f"1.2.3.{i}", 0, "1.2.3", "1.2.3.9") for i in range(n)]


def _same_version_new_threshold(model_id: str, folder: Path) -> tuple[ModelPackage, float]:
    """A copy of the zoo package, same id and version, its positive label's threshold moved:
    what a refit (or a hand edit) of a package under an unchanged version looks like."""
    shutil.copytree(ZOO_DIR / model_id, folder)
    raw = json.loads((folder / "manifest.json").read_text())
    label = raw["output"]["positive_label"]
    moved = round(1.0 - float(raw["output"]["thresholds"][label]) * 0.5, 3)
    raw["output"]["thresholds"][label] = moved
    write_manifest(folder, raw)
    return load_package(folder), moved


@pytest.mark.parametrize("model_id", [SEG, CLS])
def test_cache_key_is_the_package_hash_not_the_version(
    model_id: str, slices: list[Any], tmp_path: Path
) -> None:
    shipped = load_package(ZOO_DIR / model_id)
    changed, moved = _same_version_new_threshold(model_id, tmp_path / model_id)
    assert changed.manifest.version == shipped.manifest.version
    assert changed.package_hash != shipped.package_hash
    run = RUNS[model_id]
    cache: PredictionCache[InferenceResult] = PredictionCache(8)
    managers = [ModelManager([shipped], device="cpu"), ModelManager([changed], device="cpu")]
    try:
        first = run(managers[0], model_id, slices, _refs(5), cache=cache, heatmap=False)
        again = run(managers[0], model_id, slices, _refs(5), cache=cache, heatmap=False)
        assert again.provenance.cache_hit  # the cache works at all
        other = run(managers[1], model_id, slices, _refs(5), cache=cache, heatmap=False)
    finally:
        for manager in managers:
            manager.shutdown()
    assert not other.provenance.cache_hit
    assert other.provenance.package_hash == changed.package_hash
    label = changed.manifest.output.positive_label
    assert label is not None
    assert other.thresholds[label] == moved != first.thresholds[label]
    np.testing.assert_allclose(other.probabilities, first.probabilities, atol=1e-6)


class _GpuFullAtSecondBatch(LoadedModel):
    """On "cuda:0": the first batch is answered (by the real CPU model), the second fails as
    onnxruntime's CUDA provider does when its arena cannot grow."""

    def __init__(self, package: ModelPackage, cpu: LoadedModel) -> None:
        super().__init__(package, "cuda:0")
        self._cpu = cpu
        self.batches = 0

    def _count(self) -> None:
        self.batches += 1
        if self.batches > 1:
            raise RuntimeError(
                "[ONNXRuntimeError] : 6 : RUNTIME_EXCEPTION : Failed to allocate memory for "
                "requested buffer of size 8388608 (CUDA failure 2: out of memory)"
            )

    def predict(self, batch: Any) -> Any:
        self._count()
        return self._cpu.predict(batch)

    def predict_with_features(self, batch: Any, layer: str | None = None) -> Any:
        self._count()
        return self._cpu.predict_with_features(batch, layer)

    def memory_bytes(self) -> int:
        return 1


def test_segmentation_out_of_gpu_memory_reruns_every_batch_on_the_cpu(
    slices: list[Any],
) -> None:
    package = load_package(ZOO_DIR / SEG)
    devices: list[str] = []

    def loader(pkg: ModelPackage, device: str, **kwargs: Any) -> LoadedModel:
        devices.append(device)
        cpu = load_model(pkg, "cpu")
        return cpu if device == "cpu" else _GpuFullAtSecondBatch(pkg, cpu)

    plain = ModelManager([package], device="cpu")
    full = ModelManager([package], device="gpu", loader=loader)
    steps: list[tuple[int, int]] = []
    try:
        want = run_segmentation(plain, SEG, slices, _refs(5), batch_size=2)
        got = run_segmentation(
            full, SEG, slices, _refs(5), batch_size=2, progress=lambda d, t: steps.append((d, t))
        )
    finally:
        plain.shutdown()
        full.shutdown()
    assert devices == ["gpu", "cpu"]
    assert got.provenance.device == "cpu"
    note = f"model '{SEG}' ran out of GPU memory on cuda:0; this job ran on the CPU"
    assert got.warnings == [note, *want.warnings]  # the OOD check's words once, not twice
    # batch 1 (used on the "GPU") is replayed with the rest: the same answer as a CPU run
    assert got.masks is not None
    assert want.masks is not None
    np.testing.assert_array_equal(got.masks, want.masks)
    np.testing.assert_allclose(got.probabilities, want.probabilities, atol=1e-6)
    assert got.decisions == want.decisions
    assert [g.kind for g in got.guards] == [g.kind for g in want.guards]
    assert steps == [(1, 3), (1, 3), (2, 3), (3, 3)]
