"""On a GPU machine: a real out-of-GPU-memory error, while predicting and while loading, sends
the model to the CPU with a warning, and the job still gives the CPU's answer.

The card is filled for real, not mocked: torch through ``set_per_process_memory_fraction`` (its
caching allocator then refuses what passes the cap with ``torch.OutOfMemoryError``), and
onnxruntime by letting torch take all the free memory first, so the CUDA provider's own
allocations fail. Each test skips with the framework's reason where there is no GPU.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pytest

from core.inference.manager import ModelManager
from core.inference.pipeline import run_images
from core.inference.result import InputRef
from models.adapters import load_model
from models.manifest import ModelPackage
from tests.gpu_zoo import CPU_NAMES, ON_GPU, package_for, require_gpu

N_FRAMES = 512  # one batch of this many 28x28 inputs needs tens of MB of activations


def _frames(n: int = N_FRAMES) -> list[np.ndarray]:
    rng = np.random.default_rng(18)
    return [rng.integers(0, 4096, size=(64, 64)).astype(np.float32) for _ in range(n)]


def _refs(n: int = N_FRAMES) -> list[InputRef]:
    return [InputRef(f"1.2.826.0.1.3680043.18.{i}") for i in range(n)]


def _cpu_probabilities(package: ModelPackage, frames: list[np.ndarray]) -> np.ndarray:
    manager = ModelManager([package], device="cpu")
    try:
        result = run_images(manager, package.id, frames, _refs(len(frames)), heatmap=False)
    finally:
        manager.shutdown()
    return np.asarray(result.probabilities)


@contextmanager
def torch_memory_cap(extra_bytes: int) -> Iterator[None]:
    """Cap torch's allocator at what it holds now plus ``extra_bytes``; lift it afterwards."""
    import torch

    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    total = torch.cuda.get_device_properties(0).total_memory
    cap = (torch.cuda.memory_reserved(0) + extra_bytes) / total
    torch.cuda.set_per_process_memory_fraction(min(1.0, cap), 0)
    try:
        yield
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0, 0)
        torch.cuda.empty_cache()


@contextmanager
def gpu_filled_by_torch() -> Iterator[int]:
    """Take every free byte of the GPU with torch tensors (halving the block size down to
    64 KiB), so another framework's next CUDA allocation fails; yields the bytes taken."""
    import torch

    blocks: list[Any] = []
    size = 1 << 32
    try:
        while size >= 1 << 16:
            try:
                blocks.append(torch.empty(size, dtype=torch.uint8, device="cuda:0"))
            except torch.OutOfMemoryError:
                size //= 2
        torch.cuda.synchronize()
        yield sum(int(b.numel()) for b in blocks)
    finally:
        blocks.clear()
        torch.cuda.empty_cache()


def _assert_ran_on_cpu_after_oom(result: Any, reference: np.ndarray) -> None:
    assert result.provenance.device in CPU_NAMES
    assert any("out of GPU memory" in w for w in result.warnings), result.warnings
    np.testing.assert_allclose(result.probabilities, reference, atol=1e-5)


def test_torch_oom_while_predicting_finishes_the_job_on_the_cpu(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    require_gpu("torch")
    package = package_for("torch", tmp_path_factory)
    frames = _frames()
    reference = _cpu_probabilities(package, frames)
    manager = ModelManager([package], device="gpu")
    try:
        with manager.use(package.id) as model:  # loaded on the GPU before the cap
            assert model.device == ON_GPU["torch"][1]
        with torch_memory_cap(extra_bytes=1 << 20):
            result = run_images(
                manager, package.id, frames, _refs(), heatmap=False, batch_size=N_FRAMES
            )
        _assert_ran_on_cpu_after_oom(result, reference)
        with manager.use(package.id) as model:  # and stays there for the session
            assert model.device in CPU_NAMES
    finally:
        manager.shutdown()


def test_torch_oom_while_loading_loads_on_the_cpu_with_a_warning(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    require_gpu("torch")
    package = package_for("torch", tmp_path_factory)
    manager = ModelManager([package], device="gpu")
    try:
        with torch_memory_cap(extra_bytes=0), manager.use(package.id) as model:
            assert model.device in CPU_NAMES
        warnings = manager.warnings(package.id)
        assert any("out of GPU memory while loading" in w for w in warnings), warnings
    finally:
        manager.shutdown()


def test_onnxruntime_oom_while_predicting_finishes_the_job_on_the_cpu(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    require_gpu("onnx", "torch")  # torch fills the card
    package = package_for("onnx", tmp_path_factory)
    frames = _frames()
    reference = _cpu_probabilities(package, frames)
    manager = ModelManager([package], device="gpu")
    try:
        with manager.use(package.id) as model:
            assert model.device == ON_GPU["onnx"][1]
            model.predict(np.zeros((1, 1, 28, 28), dtype=np.float32))  # the arena's first chunk
        with gpu_filled_by_torch() as taken:
            assert taken > 0
            result = run_images(
                manager, package.id, frames, _refs(), heatmap=False, batch_size=N_FRAMES
            )
        _assert_ran_on_cpu_after_oom(result, reference)
    finally:
        manager.shutdown()


def test_onnxruntime_oom_while_loading_loads_on_the_cpu_with_a_warning(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """Loading counts the self-test that follows it (ModelManager.ensure_selftest): the CUDA
    provider may allocate its first arena chunk or cuBLAS workspace only then."""
    require_gpu("onnx", "torch")
    package = package_for("onnx", tmp_path_factory)
    manager = ModelManager([package], device="gpu")
    try:
        with gpu_filled_by_torch():
            record = manager.ensure_selftest(package.id)
            assert record.ok, record.message
            with manager.use(package.id) as model:
                assert model.device in CPU_NAMES
        warnings = manager.warnings(package.id)
        assert any("out of GPU memory while loading" in w for w in warnings), warnings
    finally:
        manager.shutdown()


def test_direct_gpu_load_of_a_full_card_is_recognised_as_out_of_memory(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """Below the manager: the adapters raise their framework's OOM (not a wrapped load error),
    and their ``is_out_of_memory`` says so; that is what the manager's fallback reads."""
    require_gpu("onnx", "torch")
    from models.adapters import onnx_adapter

    package = package_for("onnx", tmp_path_factory)
    failures: list[BaseException] = []
    with gpu_filled_by_torch():
        try:
            model = load_model(package, "gpu")
        except Exception as exc:  # noqa: BLE001 - the point is which error it is
            failures.append(exc)
        else:  # the session started: its first large run must then be the one that fails
            try:
                model.predict(np.zeros((N_FRAMES, 1, 28, 28), dtype=np.float32))
            except Exception as exc:  # noqa: BLE001
                failures.append(exc)
            finally:
                model.close()
    assert failures, "neither the load nor a large run failed on a full GPU"
    text = f"{type(failures[0]).__name__}: {failures[0]}"
    assert onnx_adapter.is_out_of_memory(failures[0]), text
