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
    import tensorflow as tf
    import torch

    for n in (1, 32):
        package, x = _batch("brain-tumour-mri", n)
        model = load_model(package, "cpu")
        keras_model = model._model  # type: ignore[attr-defined]
        graph = model._forward  # type: ignore[attr-defined]
        tensor = tf.convert_to_tensor(x)
        bare = _best(lambda: graph(tensor).numpy())  # noqa: B023 - used inside this iteration
        adapter = _best(lambda: model.predict(x))  # noqa: B023
        eager = _best(lambda: keras_model(x, training=False).numpy())  # noqa: B023
        naive = _best(lambda: keras_model.predict(x, verbose=0))  # noqa: B023
        print(
            f"keras brain-tumour-mri batch {n}: bare tf.function {bare * 1e3:.2f} ms; "
            f"adapter.predict {adapter / bare:.2f}x bare; eager model(x) {eager / bare:.1f}x; "
            f"model.predict {naive / bare:.1f}x"
        )
    for n in (1, 32):
        package, x = _batch("chest-xray-pneumonia", n)
        model = load_model(package, "cpu")
        module = model._module  # type: ignore[attr-defined]
        tensor = torch.from_numpy(x)

        def bare_call() -> Any:
            with torch.inference_mode():
                return module(tensor).numpy()  # noqa: B023

        bare = _best(bare_call)
        adapter = _best(lambda: model.predict(x))  # noqa: B023
        grad_on = _best(lambda: module(tensor).detach().numpy())  # noqa: B023
        print(
            f"torch chest-xray-pneumonia batch {n} ({torch.get_num_threads()} thread): bare "
            f"inference_mode call {bare * 1e3:.2f} ms; adapter.predict {adapter / bare:.2f}x "
            f"bare; autograd-on call {grad_on / bare:.2f}x"
        )


if __name__ == "__main__":
    main()
