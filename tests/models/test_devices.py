"""Device choice: honest about GPUs (given as an argument; no GPU is pretended to have run)."""

from __future__ import annotations

import pytest

from models.adapters import FrameworkUnavailableError, get_adapter, load_model
from models.devices import DeviceError, choose_device
from models.manifest import load_package
from tests.models.conftest import ZOO


@pytest.mark.parametrize(
    ("requested", "gpu", "override", "expected"),
    [("auto", True, None, "gpu"), ("auto", False, None, "cpu"), ("cpu", True, None, "cpu"),
     ("gpu", True, None, "gpu"), ("gpu", True, "cpu", "cpu"), ("cpu", True, "gpu", "gpu"),
     ("cpu", False, "auto", "cpu"), ("gpu", False, "cpu", "cpu")],
)
def test_choose_device(requested: str, gpu: bool, override: str | None, expected: str) -> None:
    assert choose_device(requested, gpu, framework="torch", model_override=override) == expected


def test_gpu_requested_without_gpu_is_an_error_naming_framework_and_model() -> None:
    with pytest.raises(DeviceError,
                       match="gpu requested for model 'm1' but no GPU visible to torch"):
        choose_device("auto", False, framework="torch", model_override="gpu", model_id="m1")


def test_unknown_device_rejected() -> None:
    with pytest.raises(DeviceError, match="unknown device 'tpu'"):
        choose_device("tpu", True)


def test_load_on_gpu_refused_on_this_machine() -> None:
    adapter = get_adapter("xgboost")
    if adapter.gpu_available():
        pytest.skip("a GPU is visible to xgboost here; the refusal path cannot be exercised")
    package = load_package(ZOO / "tabular-breast-cancer")
    with pytest.raises(DeviceError, match="no GPU visible to xgboost"):
        load_model(package, "gpu")
    assert load_model(package, "auto").device == "cpu"


def test_unknown_framework_names_known_ones() -> None:
    with pytest.raises(FrameworkUnavailableError, match="no adapter for framework 'onnx'"):
        get_adapter("onnx", model_id="x")


def test_missing_framework_names_pip_requirement(monkeypatch: pytest.MonkeyPatch) -> None:
    import models.adapters.torch_adapter as torch_adapter

    monkeypatch.setattr(torch_adapter, "is_available", lambda: False)  # as on a slim install
    with pytest.raises(FrameworkUnavailableError,
                       match=r"model 'p': framework 'torch' is not installed; install it with: "
                             r"pip install 'torch==2\.13\.0'"):
        get_adapter("torch", model_id="p")


def test_is_out_of_memory_recognises_framework_errors() -> None:
    import torch

    from models.adapters import torch_adapter

    assert torch_adapter.is_out_of_memory(torch.OutOfMemoryError("CUDA out of memory"))
    assert not torch_adapter.is_out_of_memory(RuntimeError("shape mismatch"))
