"""What the GPU tests (tests/gpu) run on: one zoo package per framework and its GPU device name.

Kept beside tests/gpu.py rather than inside tests/gpu/, which has no __init__.py: that folder
must not become a package named ``tests.gpu``, the module every GPU-aware test imports.
"""

from __future__ import annotations

import os

import pytest

from models.discovery import ZOO_DIR
from models.manifest import ModelPackage, load_package
from tests.gpu import GPU_MISSING

# TensorFlow takes all of a GPU's memory at start-up unless told to grow: the torch and
# onnxruntime tests in the same process would then find none. Set before any test imports TF.
os.environ.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")

ON_GPU: dict[str, tuple[str, str]] = {  # framework -> (zoo model, the adapter's GPU device)
    "torch": ("chest-xray-pneumonia", "cuda:0"),
    "keras": ("brain-tumour-mri", "/GPU:0"),
    "xgboost": ("tabular-breast-cancer", "cuda:0"),
    "onnx": ("chest-xray-pneumonia", "onnxruntime:CUDAExecutionProvider:0"),  # its export
}
CPU_NAMES = ("cpu", "/CPU:0")


def require_gpu(*frameworks: str) -> None:
    """Skip, with the framework's own reason from tests/gpu.py, unless each one runs on a GPU."""
    for framework in frameworks:
        missing = GPU_MISSING[framework]()
        if missing is not None:
            pytest.skip(missing)


def package_for(
    framework: str, factory: pytest.TempPathFactory, model_id: str = ""
) -> ModelPackage:
    """The zoo package that ``framework`` runs (for "onnx": the export of a zoo classifier)."""
    model_id = model_id or ON_GPU[framework][0]
    if framework == "onnx":
        from tests.models.onnx_exports import exported

        return exported(model_id, factory)
    return load_package(ZOO_DIR / model_id)
