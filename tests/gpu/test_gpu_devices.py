"""On a GPU machine (make gpu-check): each framework's adapter sees the GPU and "auto" takes it.

Every test skips with the framework's own reason (tests/gpu.py) where it has no GPU, so the
same file runs, and skips, in `make test` on a CPU-only machine.
"""

from __future__ import annotations

import pytest

from models.adapters import get_adapter, load_model
from models.selftest import run_selftest
from tests.gpu_zoo import CPU_NAMES, ON_GPU, package_for, require_gpu


@pytest.mark.parametrize("framework", sorted(ON_GPU))
def test_auto_and_gpu_requests_run_on_the_gpu(
    framework: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    require_gpu(framework)
    package = package_for(framework, tmp_path_factory)
    assert get_adapter(package.manifest.framework).gpu_available()
    for request in ("auto", "gpu"):
        model = load_model(package, request)
        try:
            assert model.device == ON_GPU[framework][1], request
            result = run_selftest(package, model)  # the package's own sample, on the GPU
            assert result.ok, f"{request}: {result.message}"
        finally:
            model.close()


@pytest.mark.parametrize("framework", sorted(ON_GPU))
def test_cpu_request_stays_on_the_cpu_beside_a_gpu(
    framework: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    require_gpu(framework)
    package = package_for(framework, tmp_path_factory)
    model = load_model(package, "cpu")
    try:
        assert model.device in CPU_NAMES
        assert run_selftest(package, model).ok
    finally:
        model.close()


@pytest.mark.parametrize("framework", sorted(ON_GPU))
def test_a_per_model_cpu_override_wins_over_a_global_gpu(
    framework: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    require_gpu(framework)
    from core.inference.manager import ModelManager

    package = package_for(framework, tmp_path_factory)
    manager = ModelManager([package], device="gpu", device_overrides={package.id: "cpu"})
    try:
        with manager.use(package.id) as model:
            assert model.device in CPU_NAMES
        manager.set_device_override(package.id, None)
        with manager.use(package.id) as model:
            assert model.device == ON_GPU[framework][1]
    finally:
        manager.shutdown()
