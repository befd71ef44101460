"""Device choice: honest about GPUs. ``choose_device`` is given the answer as an argument; the
loads ask the real framework, and are checked against what that framework itself says about
the GPU here (tests/gpu.py): the GPU path where it sees one, the refusal where it does not."""

from __future__ import annotations

import pytest

from models.adapters import FrameworkUnavailableError, get_adapter, load_model
from models.devices import DeviceError, choose_device
from models.manifest import load_package
from models.selftest import run_selftest
from tests.gpu import GPU_MISSING
from tests.models.conftest import ZOO

#: One zoo model per framework whose adapter places models on a device by itself (the text
#: model's GPU path is tests/models/test_transformers_adapter.py's).
ON_DEVICE = {
    "torch": ("chest-xray-pneumonia", "cuda:0", "cpu"),
    "keras": ("brain-tumour-mri", "/GPU:0", "/CPU:0"),
    "xgboost": ("tabular-breast-cancer", "cuda:0", "cpu"),
}


@pytest.mark.parametrize(
    ("requested", "gpu", "override", "expected"),
    [
        ("auto", True, None, "gpu"),
        ("auto", False, None, "cpu"),
        ("cpu", True, None, "cpu"),
        ("gpu", True, None, "gpu"),
        ("gpu", True, "cpu", "cpu"),
        ("cpu", True, "gpu", "gpu"),
        ("cpu", False, "auto", "cpu"),
        ("gpu", False, "cpu", "cpu"),
    ],
)
def test_choose_device(requested: str, gpu: bool, override: str | None, expected: str) -> None:
    assert choose_device(requested, gpu, framework="torch", model_override=override) == expected


def test_gpu_requested_without_gpu_is_an_error_naming_framework_and_model() -> None:
    with pytest.raises(
        DeviceError, match="gpu requested for model 'm1' but no GPU visible to torch"
    ):
        choose_device("auto", False, framework="torch", model_override="gpu", model_id="m1")


def test_unknown_device_rejected() -> None:
    with pytest.raises(DeviceError, match="unknown device 'tpu'"):
        choose_device("tpu", True)


@pytest.mark.parametrize("framework", sorted(ON_DEVICE))
def test_gpu_request_refused_where_the_framework_sees_no_gpu(framework: str) -> None:
    if GPU_MISSING[framework]() is None:
        pytest.skip(f"{framework} runs on a GPU here: the refusal cannot happen")
    model_id, _gpu_name, cpu_name = ON_DEVICE[framework]
    package = load_package(ZOO / model_id)
    with pytest.raises(
        DeviceError, match=f"gpu requested for model '{model_id}' but no GPU visible to {framework}"
    ):
        load_model(package, "gpu")
    model = load_model(package, "auto")  # "auto" quietly takes the CPU
    try:
        assert model.device == cpu_name
    finally:
        model.close()


@pytest.mark.parametrize("framework", sorted(ON_DEVICE))
def test_gpu_request_runs_on_the_gpu_where_the_framework_sees_one(framework: str) -> None:
    missing = GPU_MISSING[framework]()
    if missing is not None:
        pytest.skip(missing)
    model_id, gpu_name, _cpu_name = ON_DEVICE[framework]
    package = load_package(ZOO / model_id)
    for request in ("gpu", "auto"):
        model = load_model(package, request)
        try:
            assert model.device == gpu_name, request
            result = run_selftest(package, model)  # the package's own sample, on the GPU
            assert result.ok, result.message
        finally:
            model.close()


def test_unknown_framework_names_known_ones() -> None:
    with pytest.raises(FrameworkUnavailableError, match="no adapter for framework 'caffe'"):
        get_adapter("caffe", model_id="x")


def test_missing_framework_names_pip_requirement(monkeypatch: pytest.MonkeyPatch) -> None:
    import models.adapters.torch_adapter as torch_adapter

    monkeypatch.setattr(torch_adapter, "is_available", lambda: False)  # as on a slim install
    with pytest.raises(
        FrameworkUnavailableError,
        match=r"model 'p': framework 'torch' is not installed; install it with: "
        r"pip install 'torch==2\.13\.0'",
    ):
        get_adapter("torch", model_id="p")


def test_is_out_of_memory_recognises_framework_errors() -> None:
    import torch

    from models.adapters import torch_adapter

    assert torch_adapter.is_out_of_memory(torch.OutOfMemoryError("CUDA out of memory"))
    assert not torch_adapter.is_out_of_memory(RuntimeError("shape mismatch"))
