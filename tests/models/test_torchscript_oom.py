"""Out of GPU memory while a TorchScript file loads reaches the manager as such (not wrapped in
ModelLoadError), so the manager loads the model on the CPU instead; both torch adapters share
one loader. No GPU exists here: torch is made to see one, and ``torch.jit.load`` onto it fails
the way a full card does (the one mock the project allows). The CPU load is real."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from core.inference.manager import ModelManager
from core.inference.pipeline import run_images
from core.inference.result import InputRef
from models.adapters import get_adapter
from models.adapters.base import ModelLoadError
from models.discovery import ZOO_DIR
from models.manifest import ModelPackage, load_package, write_manifest
from tests.models.import_fixtures import small_cnn

torch = pytest.importorskip("torch", reason="TorchScript needs torch (the 'ai' extra)")

CHEST = "chest-xray-pneumonia"  # the zoo's framework "torch" package


def _torchscript_package(folder: Path) -> ModelPackage:
    folder.mkdir()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(torch.jit.script(small_cnn(2)), str(folder / "net.ts"))
    write_manifest(
        folder,
        {
            "id": "ts-oom",
            "name": "TorchScript OOM test",
            "version": "1.0.0",
            "task": "classification",
            "framework": "torchscript",
            "modalities": ["MR"],
            "input": {"kind": "image", "size": [28, 28], "channels": 1, "layout": "NCHW"},
            "output": {"labels": ["no", "yes"], "activation": "softmax"},
            "weights": "net.ts",
            "intended_use": "tests",
            "training_data": "none",
        },
    )
    return load_package(folder)


@pytest.fixture(params=["torchscript", "torch"])
def package(request: pytest.FixtureRequest, tmp_path: Path) -> ModelPackage:
    if request.param == "torch":
        return load_package(ZOO_DIR / CHEST)
    return _torchscript_package(tmp_path / "ts")


def _full_gpu(monkeypatch: pytest.MonkeyPatch, error: Callable[[], BaseException]) -> list[str]:
    """torch sees a GPU; loading onto it raises ``error()``; loading onto the CPU is real."""
    real_load = torch.jit.load
    calls: list[str] = []

    def load(path: str, map_location: Any = None, **kwargs: Any) -> Any:
        calls.append(str(map_location))
        if str(map_location).startswith("cuda"):
            raise error()
        return real_load(path, map_location=map_location, **kwargs)

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.jit, "load", load)
    return calls


def _oom() -> BaseException:
    error: BaseException = torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
    return error


def test_adapter_lets_an_oom_at_load_through_unwrapped(
    package: ModelPackage, monkeypatch: pytest.MonkeyPatch
) -> None:
    _full_gpu(monkeypatch, _oom)
    adapter = get_adapter(package.manifest.framework, model_id=package.id)
    with pytest.raises(torch.OutOfMemoryError, match="CUDA out of memory") as info:
        adapter.load(package, "gpu")
    assert not isinstance(info.value, ModelLoadError)
    assert adapter.is_out_of_memory(info.value)


def test_other_load_errors_still_name_the_model_and_file(
    package: ModelPackage, monkeypatch: pytest.MonkeyPatch
) -> None:
    _full_gpu(monkeypatch, lambda: RuntimeError("PytorchStreamReader failed reading zip archive"))
    adapter = get_adapter(package.manifest.framework, model_id=package.id)
    with pytest.raises(ModelLoadError, match="PytorchStreamReader") as info:
        adapter.load(package, "gpu")
    message = str(info.value)
    assert f"model '{package.id}'" in message
    assert str(package.file(package.manifest.weights)) in message


def test_manager_loads_on_the_cpu_after_an_oom_at_load(
    package: ModelPackage, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _full_gpu(monkeypatch, _oom)
    manager = ModelManager([package], device="auto")  # the real adapters load
    size = package.manifest.input.size or (28, 28)
    image = np.random.default_rng(4).random((size[0], size[1])).astype(np.float32)
    try:
        result = run_images(manager, package.id, [image], [InputRef("1.2.3")], heatmap=False)
        assert calls == ["cuda:0", "cpu"]
        assert result.provenance.device == "cpu"
        note = (
            f"model '{package.id}' ran out of GPU memory while loading; it runs on the CPU for "
            "the rest of this session"
        )
        (row,) = manager.status()
        assert (row.device, row.device_setting, row.warnings) == ("cpu", "cpu", [note])
        assert result.probabilities.shape == (1, len(package.manifest.output.labels))
        assert np.isfinite(result.probabilities).all()
    finally:
        manager.shutdown()
