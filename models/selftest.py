"""A package's own health check: run its stored sample through preprocessing and the model.

The expected probabilities were written by the training script from the trained network in
memory, so a match shows the shipped file, the adapter and the preprocessing agree with it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from models.adapters.base import LoadedModel
from models.manifest import ModelPackage
from models.preprocess import preprocess_batch


@dataclass(frozen=True)
class SelftestResult:
    model_id: str
    ok: bool
    max_abs_diff: float
    tolerance: float
    n: int
    message: str


def run_selftest(package: ModelPackage, model: LoadedModel) -> SelftestResult:
    from models.adapters import get_adapter

    hook = getattr(get_adapter(package.manifest.framework, model_id=package.id), "selftest", None)
    spec = package.manifest.selftest
    if spec is not None and callable(hook):  # adapters with non-array samples (text models)
        ok, diff, message = hook(package, model)
        return SelftestResult(package.id, bool(ok), float(diff), spec.tolerance, 0, str(message))
    if spec is None:
        return SelftestResult(
            package.id,
            False,
            float("nan"),
            0.0,
            0,
            f"model '{package.id}' ships no self-test sample",
        )
    raw = np.load(package.file(spec.input), allow_pickle=False)
    expected = np.load(package.file(spec.expected), allow_pickle=False)
    batch = preprocess_batch(
        list(raw) if package.manifest.input.kind == "image" else raw,
        package.manifest.input,
        package.id,
    )
    got = model.predict(batch)
    if got.shape != expected.shape:
        return SelftestResult(
            package.id,
            False,
            float("inf"),
            spec.tolerance,
            len(raw),
            f"output shape {got.shape} != expected {expected.shape}",
        )
    diff = float(np.max(np.abs(got - expected)))
    ok = diff <= spec.tolerance
    verdict = "matches" if ok else "DIFFERS from"
    return SelftestResult(
        package.id,
        ok,
        diff,
        spec.tolerance,
        len(raw),
        f"output {verdict} expected (max |diff| {diff:.2e}, "
        f"tolerance {spec.tolerance:.0e}) on {device_note(model)}",
    )


def device_note(model: LoadedModel) -> str:
    return f"device {model.device}"
