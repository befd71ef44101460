"""ModelManager and the inference pipeline on the real zoo packages."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from core.inference.cache import PredictionCache
from core.inference.manager import ModelManager, UnknownModelError
from core.inference.pipeline import InferenceCancelled, run_images
from core.inference.result import InferenceResult, InputRef
from models.adapters import load_model
from models.adapters.base import LoadedModel
from models.discovery import ZOO_DIR, discover
from tests.gpu import xgboost_gpu_missing

REPO = Path(__file__).resolve().parents[2]
CR = REPO / "resources" / "sample" / "chest_cr" / "RG1_J2KI.dcm"
TORCH_A = "chest-xray-pneumonia"
TORCH_B = "breast-ultrasound"


@pytest.fixture(scope="module")
def packages() -> list[Any]:
    found, errors = discover([ZOO_DIR], verify_hashes=True)
    assert errors == []
    return found


@pytest.fixture(scope="module")
def cr_frame() -> Any:
    from core.imaging.header import read_header
    from core.imaging.pixels import read_frame

    return read_frame(read_header(str(CR), require_uids=False).instance)


class CountingLoader:
    """The real adapter loader, counting calls (and slowed so concurrent callers overlap)."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.lock = threading.Lock()

    def __call__(self, package: Any, device: str, **kwargs: Any) -> LoadedModel:
        with self.lock:
            self.calls.append(package.id)
        threading.Event().wait(0.2)
        return load_model(package, device, **kwargs)


def test_unknown_model_is_named(packages: list[Any]) -> None:
    manager = ModelManager(packages)
    with pytest.raises(UnknownModelError, match="'no-such-model'"):
        manager.package("no-such-model")


def test_applicable_by_modality(packages: list[Any]) -> None:
    manager = ModelManager(packages)
    assert [p.id for p in manager.applicable("CR")] == [TORCH_A]
    assert "brain-tumour-mri" in [p.id for p in manager.applicable("MR")]
    assert manager.applicable("") == []


def test_listing_and_loading_import_only_the_framework_in_use() -> None:
    code = (
        "import sys\n"
        "from core.inference.manager import manager_from_settings\n"
        "m = manager_from_settings(device='cpu')\n"
        "assert len(m.packages()) >= 6, m.packages()\n"
        "before = sorted(k for k in ('torch','tensorflow','keras','xgboost','transformers') if k in sys.modules)\n"
        "with m.use('tabular-breast-cancer'):\n"
        "    pass\n"
        "after = sorted(k for k in ('torch','tensorflow','keras','xgboost','transformers') if k in sys.modules)\n"
        "print(before, after)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[] ['xgboost']"


def test_concurrent_first_use_loads_once(packages: list[Any]) -> None:
    loader = CountingLoader()
    manager = ModelManager(packages, device="cpu", loader=loader)
    seen: list[LoadedModel] = []

    def job() -> None:
        with manager.use(TORCH_A) as model:
            seen.append(model)

    threads = [threading.Thread(target=job) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert loader.calls == [TORCH_A]
    assert len({id(m) for m in seen}) == 1
    manager.shutdown()


def test_lru_eviction_under_budget_and_pinning(packages: list[Any]) -> None:
    sizes = {}
    for model_id in (TORCH_A, TORCH_B):
        probe = ModelManager(packages, device="cpu")
        with probe.use(model_id):
            pass
        sizes[model_id] = probe.loaded_bytes()
        probe.shutdown()
    assert min(sizes.values()) > 0
    manager = ModelManager(packages, device="cpu")
    # room for either of the two torch models, not both
    manager.budget_bytes = max(sizes.values()) + 1
    assert manager.budget_bytes < sum(sizes.values())
    with manager.use(TORCH_A):
        with manager.use(TORCH_B):
            # A is pinned by the outer block: over budget, but never evicted mid-prediction.
            assert set(manager.loaded_ids()) == {TORCH_A, TORCH_B}
        assert manager.loaded_ids() == [TORCH_A]  # B was least recently used, and unpinned
    with manager.use(TORCH_B):
        pass
    assert manager.loaded_ids() == [TORCH_B]
    assert manager.load_count(TORCH_A) == 1
    assert manager.load_count(TORCH_B) == 2
    manager.shutdown()


def test_result_provenance_and_cache_hit(packages: list[Any], cr_frame: Any) -> None:
    manager = ModelManager(packages, device="cpu")
    cache: PredictionCache[InferenceResult] = PredictionCache(8)
    ref = InputRef("1.2.3", 0)
    first = run_images(manager, TORCH_A, [cr_frame], [ref], cache=cache)
    prov = first.provenance
    assert (prov.model_id, prov.device, prov.framework) == (TORCH_A, "cpu", "torch")
    assert prov.package_hash == manager.package(TORCH_A).package_hash
    assert prov.inputs == [ref]
    assert set(prov.timings_ms) == {"preprocess", "load", "inference", "postprocess"}
    assert first.probabilities.shape == (1, 2)
    assert np.isclose(first.probabilities.sum(), 1.0, atol=1e-5)
    assert first.decisions[0] in first.labels
    assert first.heatmaps is not None
    assert first.heatmaps.shape == (1, *cr_frame.values.shape)
    assert first.demo_notice == "Demo model - not for clinical use"
    assert not prov.cache_hit
    ref2 = InputRef("1.2.3.4", 0)  # same pixels under another instance
    second = run_images(manager, TORCH_A, [cr_frame], [ref2], cache=cache)
    assert second.provenance.cache_hit
    assert cache.hits == 1
    np.testing.assert_array_equal(second.probabilities, first.probabilities)
    assert second.decisions == first.decisions
    np.testing.assert_allclose(second.heatmaps, first.heatmaps, atol=1e-6)
    assert second.result_id != first.result_id  # its own result, to accept or reject
    assert second.provenance.inputs == [ref2]
    assert sum(second.provenance.timings_ms.values()) < sum(prov.timings_ms.values())
    assert not first.provenance.cache_hit  # the first result is not rewritten
    json.dumps(first.to_json())  # JSON-able as it is
    manager.shutdown()


def test_batches_progress_and_cancel(packages: list[Any], cr_frame: Any) -> None:
    manager = ModelManager(packages, device="cpu")
    frames = [cr_frame] * 5
    refs = [InputRef("1.2.3", i) for i in range(5)]
    steps: list[tuple[int, int]] = []
    result = run_images(
        manager,
        TORCH_A,
        frames,
        refs,
        batch_size=2,
        heatmap=False,
        progress=lambda d, t: steps.append((d, t)),
    )
    assert steps == [(1, 3), (2, 3), (3, 3)]
    assert result.probabilities.shape == (5, 2)
    calls = {"n": 0}

    def cancel_after_first() -> bool:
        calls["n"] += 1
        return calls["n"] > 1

    with pytest.raises(InferenceCancelled):
        run_images(manager, TORCH_A, frames, refs, batch_size=2, cancel=cancel_after_first)
    manager.shutdown()


class _GpuThatRunsOutOfMemory(LoadedModel):
    """Stands in for a model on a GPU that runs out of memory, which no machine does on
    demand (and this one may have no GPU at all): it fails the way torch does."""

    def predict(self, batch: Any) -> Any:
        import torch

        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    def memory_bytes(self) -> int:
        return 1


def test_out_of_gpu_memory_falls_back_to_cpu(packages: list[Any], cr_frame: Any) -> None:
    devices: list[str] = []

    def loader(package: Any, device: str, **kwargs: Any) -> LoadedModel:
        devices.append(device)
        if device == "cpu":
            return load_model(package, "cpu")
        return _GpuThatRunsOutOfMemory(package, "cuda:0")

    manager = ModelManager(packages, device="gpu", loader=loader)
    result = run_images(manager, TORCH_A, [cr_frame], [InputRef("1.2.3")], heatmap=False)
    assert devices == ["gpu", "cpu"]
    assert result.provenance.device == "cpu"
    assert any("out of GPU memory" in w for w in result.warnings)
    manager.shutdown()


@pytest.mark.parametrize(
    "model_id",
    [
        "chest-xray-pneumonia",
        "breast-ultrasound",
        "lung-colon-histopathology",
        "brain-tumour-mri",
        "skin-lesion",
        "tabular-breast-cancer",
    ],
)
def test_health_check_on_real_package(packages: list[Any], model_id: str) -> None:
    manager = ModelManager(packages, device="cpu")
    record = manager.health_check(model_id)
    assert record.ok, record.message
    status = {s.model_id: s for s in manager.status()}[model_id]
    assert status.loaded
    assert status.health is record
    assert status.memory_bytes > 0
    manager.shutdown()


def test_device_override_and_background_preload(packages: list[Any]) -> None:
    from models.devices import DeviceError

    events: list[str] = []
    manager = ModelManager(packages, device="cpu")
    manager.changed.connect(events.append)
    manager.set_device_override("tabular-breast-cancer", "gpu")
    assert manager.device_setting("tabular-breast-cancer") == "gpu"
    if xgboost_gpu_missing() is None:  # the per-model override takes the GPU xgboost sees
        with manager.use("tabular-breast-cancer") as model:
            assert model.device == "cuda:0"
    else:  # honoured, and refused by name: never a quiet CPU run
        refused = "'tabular-breast-cancer' but no GPU visible to xgboost"
        with pytest.raises(DeviceError, match=refused), manager.use("tabular-breast-cancer"):
            pass
    manager.set_device_override("tabular-breast-cancer", None)
    assert manager.device_setting("tabular-breast-cancer") == "cpu"
    problems = manager.preload(["tabular-breast-cancer", "no-such-model"])
    assert manager.loaded_ids() == ["tabular-breast-cancer"]
    assert len(problems) == 1
    assert "'no-such-model'" in problems[0]
    status = {s.model_id: s for s in manager.status()}["tabular-breast-cancer"]
    assert (status.loaded, status.device, status.device_setting) == (True, "cpu", "cpu")
    assert "tabular-breast-cancer" in events
    manager.shutdown()
