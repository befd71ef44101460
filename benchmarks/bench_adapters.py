"""Adapter inference paths against the naive framework calls, same model, same input, same run.

Keras: the adapter's ``tf.function`` call vs eager ``model(x)`` and ``model.predict(x)``.
Torch: the adapter (TorchScript under ``inference_mode``) vs the same module with autograd on.
Figures are ratios naive / adapter (above 1: the adapter is faster), batch 1 and batch 32.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from models.adapters import load_model
from models.discovery import ZOO_DIR
from models.manifest import load_package
from models.preprocess import preprocess_batch


def _best(fn: Callable[[], Any], repeat: int = 20) -> float:
    fn()
    fn()  # warm-up: tracing, allocator
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def _batch(model_id: str, n: int) -> tuple[Any, np.ndarray]:
    package = load_package(ZOO_DIR / model_id)
    raw = np.load(package.file(package.manifest.selftest.input))  # type: ignore[union-attr]
    items = [raw[i % len(raw)] for i in range(n)]
    return package, preprocess_batch(items, package.manifest.input, package.id)


def main() -> None:
    for n in (1, 32):
        package, x = _batch("brain-tumour-mri", n)
        model = load_model(package, "cpu")
        keras_model = model._model  # type: ignore[attr-defined]
        adapter = _best(lambda: model.predict(x))  # noqa: B023 - used inside this iteration
        eager = _best(lambda: keras_model(x, training=False))  # noqa: B023
        naive = _best(lambda: keras_model.predict(x, verbose=0))  # noqa: B023
        print(f"keras brain-tumour-mri batch {n}: adapter {adapter * 1e3:.2f} ms; "
              f"eager model(x) {eager / adapter:.1f}x slower; model.predict "
              f"{naive / adapter:.1f}x slower")
    import torch

    for n in (1, 32):
        package, x = _batch("chest-xray-pneumonia", n)
        model = load_model(package, "cpu")
        module = model._module  # type: ignore[attr-defined]
        tensor = torch.from_numpy(x)
        adapter = _best(lambda: model.predict(x))  # noqa: B023
        grad_on = _best(lambda: module(tensor))  # noqa: B023
        print(f"torch chest-xray-pneumonia batch {n}: adapter {adapter * 1e3:.2f} ms; "
              f"autograd-on call {grad_on / adapter:.2f}x the adapter's time")


if __name__ == "__main__":
    main()
