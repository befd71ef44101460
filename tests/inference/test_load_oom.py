"""Out of GPU memory while LOADING a model (not only while predicting) falls back to the CPU.

No GPU exists here, so the loader stands in for one (the one mock the project allows): it
resolves the device with the real ``choose_device`` as if a GPU were visible, and a load on
"gpu" fails the way torch does when the card is full. The CPU load is the real adapter's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from core.app.model_runs import run_model
from core.app.results import SessionResults
from core.imaging.header import read_header
from core.imaging.pixels import read_frame
from core.inference.manager import ModelManager
from core.inference.result import InputRef
from models.adapters import load_model
from models.adapters.base import LoadedModel
from models.devices import choose_device
from models.discovery import ZOO_DIR
from models.manifest import ModelPackage, load_package

REPO = Path(__file__).resolve().parents[2]
CR = REPO / "resources" / "sample" / "chest_cr" / "RG1_J2KI.dcm"
CHEST = "chest-xray-pneumonia"


def _oom() -> BaseException:
    import torch

    return torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")


class FullGpuLoader:
    """Resolves the device honestly for a machine with one GPU; the GPU has no room."""

    def __init__(self, error: BaseException | None = None) -> None:
        self.calls: list[tuple[str, str]] = []  # (asked, resolved)
        self.error = error

    def __call__(
        self, package: ModelPackage, device: str, *, model_override: str | None = None
    ) -> LoadedModel:
        resolved = choose_device(
            device, True, framework="torch", model_override=model_override, model_id=package.id
        )
        self.calls.append((model_override or device, resolved))
        if resolved == "gpu":
            raise self.error or _oom()
        return load_model(package, "cpu")


@pytest.fixture(scope="module")
def chest() -> ModelPackage:
    return load_package(ZOO_DIR / CHEST)


@pytest.fixture(scope="module")
def frame() -> Any:
    return read_frame(read_header(str(CR), require_uids=False).instance)


@pytest.mark.parametrize("device", ["auto", "gpu"])
def test_oom_at_load_falls_back_to_cpu_and_results_say_so(
    chest: ModelPackage, frame: Any, device: str
) -> None:
    loader = FullGpuLoader()
    manager = ModelManager([chest], device=device, loader=loader)
    try:
        result = run_model(SessionResults(), manager, CHEST, [frame], [InputRef("1.2.3")])
        assert loader.calls == [(device, "gpu"), ("cpu", "cpu")]
        assert result.provenance.device == "cpu"
        note = (
            f"model '{CHEST}' ran out of GPU memory while loading; it runs on the CPU for the "
            "rest of this session"
        )
        assert result.warnings == [note]
        (row,) = manager.status()
        assert (row.device, row.device_setting, row.warnings) == ("cpu", "cpu", [note])
        # the next run neither tries the GPU again nor repeats the note
        again = run_model(SessionResults(), manager, CHEST, [frame], [InputRef("1.2.4")])
        assert loader.calls == [(device, "gpu"), ("cpu", "cpu")]
        assert again.warnings == [note]
        # a new device choice clears the fallback: the GPU is tried again
        manager.set_device_override(CHEST, "gpu")
        assert manager.warnings(CHEST) == []
        with manager.use(CHEST) as model:
            assert model.device == "cpu"
        assert loader.calls[-2:] == [("gpu", "gpu"), ("cpu", "cpu")]
    finally:
        manager.shutdown()


def test_cpu_setting_and_other_errors_are_not_turned_into_a_cpu_fallback(
    chest: ModelPackage,
) -> None:
    # an error that is no GPU OOM (here: corrupt weights) is said as it is, never hidden
    loader = FullGpuLoader(RuntimeError("weights unreadable"))
    manager = ModelManager([chest], device="auto", loader=loader)
    with pytest.raises(RuntimeError, match="weights unreadable"), manager.use(CHEST):
        pass
    assert loader.calls == [("auto", "gpu")]
    assert manager.warnings(CHEST) == []

    def cpu_oom(package: ModelPackage, device: str, **kwargs: Any) -> LoadedModel:
        raise _oom()

    # asked for the CPU: nothing to fall back to
    manager = ModelManager([chest], device="cpu", loader=cpu_oom)
    with pytest.raises(Exception, match="CUDA out of memory"), manager.use(CHEST):
        pass


class _GpuModelFullAtFirstUse(LoadedModel):
    """Loads, then runs out of GPU memory on its first batch (the self-test's sample)."""

    def predict(self, batch: Any) -> Any:
        raise _oom()

    def memory_bytes(self) -> int:
        return 1


def test_oom_in_the_selftest_after_load_counts_as_oom_while_loading(
    chest: ModelPackage, frame: Any
) -> None:
    devices: list[str] = []

    def loader(package: ModelPackage, device: str, **kwargs: Any) -> LoadedModel:
        devices.append(device)
        if device == "cpu":
            return load_model(package, "cpu")
        return _GpuModelFullAtFirstUse(package, "cuda:0")

    manager = ModelManager([chest], device="gpu", loader=loader)
    try:
        result = run_model(SessionResults(), manager, CHEST, [frame], [InputRef("1.2.3")])
    finally:
        manager.shutdown()
    assert devices == ["gpu", "cpu"]
    assert result.provenance.device == "cpu"
    assert result.warnings == [
        f"model '{CHEST}' ran out of GPU memory while loading (its self-test); it runs on the "
        "CPU for the rest of this session"
    ]
    record = manager.status()[0].health
    assert record is not None
    assert record.ok  # the self-test passed on the CPU: the model is not refused
