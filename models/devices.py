"""Which device a model runs on: the user's wish, checked against what the framework sees.

No pretending: asking for a GPU that the framework cannot see is an error naming the framework,
not a silent CPU run; "auto" takes the GPU when there is one.
"""

from __future__ import annotations

from typing import Literal

DeviceRequest = Literal["auto", "cpu", "gpu"]
_VALID = ("auto", "cpu", "gpu")


class DeviceError(RuntimeError):
    """The requested device cannot be used."""


def choose_device(
    requested: str,
    gpu_available: bool,
    *,
    framework: str = "the framework",
    model_override: str | None = None,
    model_id: str | None = None,
) -> Literal["cpu", "gpu"]:
    """Resolve "auto"|"cpu"|"gpu" to "cpu" or "gpu".

    ``model_override`` (a per-model setting) wins over the global ``requested``. ``gpu_available``
    is the adapter's ``gpu_available()``, passed in so callers (and tests) decide when to ask.
    """
    choice = model_override or requested
    if choice not in _VALID:
        raise DeviceError(f"unknown device {choice!r}: use one of {', '.join(_VALID)}")
    if choice == "cpu":
        return "cpu"
    if choice == "gpu":
        if not gpu_available:
            who = f" for model '{model_id}'" if model_id else ""
            raise DeviceError(f"gpu requested{who} but no GPU visible to {framework}")
        return "gpu"
    return "gpu" if gpu_available else "cpu"
