"""Adapter registry: framework name -> adapter module, imported only when asked for.

A missing framework gives an error naming the model, the framework and the exact pip
requirement that provides it (as pydicom names the missing decoder plugins).
"""

from __future__ import annotations

import importlib
from typing import cast

from models.adapters.base import AdapterModule, LoadedModel
from models.devices import choose_device
from models.manifest import ModelPackage

ADAPTER_MODULES: dict[str, str] = {
    "keras": "models.adapters.keras_adapter",
    "torch": "models.adapters.torch_adapter",
    "xgboost": "models.adapters.xgboost_adapter",
    "transformers": "models.adapters.transformers_adapter",
    "onnx": "models.adapters.onnx_adapter",
    "torchscript": "models.adapters.torchscript_adapter",
}


class FrameworkUnavailableError(RuntimeError):
    """No adapter, or the adapter's framework is not installed."""


def get_adapter(framework: str, *, model_id: str | None = None) -> AdapterModule:
    """The adapter module for ``framework``; raises if it or its framework is missing."""
    who = f"model '{model_id}': " if model_id else ""
    module_name = ADAPTER_MODULES.get(framework)
    if module_name is None:
        raise FrameworkUnavailableError(
            f"{who}no adapter for framework '{framework}' (known: {', '.join(ADAPTER_MODULES)})"
        )
    adapter = cast(AdapterModule, importlib.import_module(module_name))
    if not adapter.is_available():
        raise FrameworkUnavailableError(
            f"{who}framework '{framework}' is not installed; install it with: "
            f"pip install '{adapter.REQUIREMENT}'"
        )
    return adapter


def availability() -> dict[str, tuple[bool, str]]:
    """framework -> (installed, pip requirement); imports adapters, never frameworks."""
    result: dict[str, tuple[bool, str]] = {}
    for framework, module_name in ADAPTER_MODULES.items():
        module = importlib.import_module(module_name)
        check = getattr(module, "is_available", None)  # an adapter still being written
        installed = bool(check()) if callable(check) else False
        result[framework] = (installed, str(getattr(module, "REQUIREMENT", framework)))
    return result


def load_model(
    package: ModelPackage, device: str = "auto", *, model_override: str | None = None
) -> LoadedModel:
    """Pick the device (asking the framework about GPUs now, on first use) and load."""
    framework = package.manifest.framework
    adapter = get_adapter(framework, model_id=package.id)
    choice = model_override or device
    gpu = adapter.gpu_available() if choice != "cpu" else False
    resolved = choose_device(
        device, gpu, framework=framework, model_override=model_override, model_id=package.id
    )
    return adapter.load(package, resolved)
