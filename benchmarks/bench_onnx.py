"""ONNX Runtime against the native adapter, per classifier of the zoo, batch 1 and batch 32.

Each classifier is exported (models.training.export_onnx) into a temporary folder and both
packages are loaded through the registry on the CPU, as the app loads them. The two
``predict`` calls (preprocessed batch in, calibrated probabilities out) are timed alternately
in the same loop, so drift on a shared machine hits both alike; the figure is the ratio of the
medians, onnx / native (below 1: ONNX Runtime is faster). The largest probability difference
on the timed batch is printed beside it.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from models.adapters import load_model
from models.discovery import ZOO_DIR
from models.manifest import ModelPackage, load_package
from models.preprocess import preprocess_batch
from models.training.export_onnx import OPSET, export_package

MODELS = (
    "chest-xray-pneumonia",
    "breast-ultrasound",
    "lung-colon-histopathology",
    "brain-tumour-mri",
    "skin-lesion",
)
BATCHES = (1, 32)
REPEAT = 30


def _paired(
    a: Callable[[], Any], b: Callable[[], Any], repeat: int = REPEAT
) -> tuple[float, float]:
    """Medians of ``a`` and ``b`` timed alternately, after two warm-up calls each."""
    for _ in range(2):
        a()
        b()
    ta, tb = [], []
    for _ in range(repeat):
        start = time.perf_counter()
        a()
        ta.append(time.perf_counter() - start)
        start = time.perf_counter()
        b()
        tb.append(time.perf_counter() - start)
    return float(np.median(ta)), float(np.median(tb))


def _batch(package: ModelPackage, n: int) -> np.ndarray:
    raw = np.load(package.file(package.manifest.selftest.input))  # type: ignore[union-attr]
    items = [raw[i % len(raw)] for i in range(n)]
    return preprocess_batch(items, package.manifest.input, package.id)


def main() -> None:
    print(
        "threads: onnxruntime intra-op 1 (DOCTORAI_ONNX_THREADS), torch 1 "
        "(DOCTORAI_TORCH_THREADS), TensorFlow its default; CPU execution provider"
    )
    with tempfile.TemporaryDirectory(prefix="bench-onnx-") as tmp:
        for model_id in MODELS:
            source = load_package(ZOO_DIR / model_id)
            start = time.perf_counter()
            exported = export_package(source.path, Path(tmp) / model_id).package
            export_s = time.perf_counter() - start
            native = load_model(source, "cpu")
            onnx = load_model(exported, "cpu")
            try:
                for n in BATCHES:
                    x = _batch(source, n)
                    diff = float(np.max(np.abs(onnx.predict(x) - native.predict(x))))
                    t_native, t_onnx = _paired(
                        lambda: native.predict(x),  # noqa: B023 - used inside this iteration
                        lambda: onnx.predict(x),  # noqa: B023
                    )
                    print(
                        f"onnx {model_id} ({source.manifest.framework}) batch {n}: native "
                        f"{t_native * 1e3:.3f} ms, onnxruntime {t_onnx * 1e3:.3f} ms; "
                        f"onnx/native {t_onnx / t_native:.2f}x; max |diff| {diff:.1e}",
                        flush=True,
                    )
            finally:
                native.close()
                onnx.close()
            print(f"onnx {model_id}: export (opset {OPSET}) and verification {export_s:.1f} s")


if __name__ == "__main__":
    main()
