"""The adapter contract: one module per framework, pydicom-plugin style.

Each adapter module defines::

    FRAMEWORK: str                 # "keras" | "torch" | "xgboost" | "transformers"
    REQUIREMENT: str               # the pip requirement that provides it, e.g. "torch==2.13.0"
    def is_available() -> bool     # importlib.util.find_spec only: never imports the framework
    def gpu_available() -> bool    # imports the framework: call on first real use only
    def load(package: ModelPackage, device: str) -> LoadedModel   # device: "cpu" | "gpu"
    def is_out_of_memory(exc: BaseException) -> bool   # the framework's GPU OOM errors

Optional hooks (for models whose samples are not arrays, e.g. text):

    def selftest(package, model) -> tuple[bool, float, str]   # used by models.selftest
    def evaluate(package, model) -> dict[str, float]          # used by models.evaluate; keys
                                                              # match manifest metrics/scores

Nothing here imports a framework; ``LoadedModel`` subclasses do, inside their adapter.
"""

from __future__ import annotations

import importlib.util
from abc import ABC, abstractmethod
from typing import Protocol

import numpy as np
import numpy.typing as npt

from models.manifest import ModelPackage

F32 = npt.NDArray[np.float32]


class AdapterModule(Protocol):
    FRAMEWORK: str
    REQUIREMENT: str

    def is_available(self) -> bool: ...

    def gpu_available(self) -> bool: ...

    def load(self, package: ModelPackage, device: str) -> LoadedModel: ...

    def is_out_of_memory(self, exc: BaseException) -> bool: ...


class ModelLoadError(RuntimeError):
    """The framework could not load the package's weights (names the model and the file)."""


class LoadedModel(ABC):
    """A model in memory, ready to predict on preprocessed batches.

    ``device`` is the framework's own name for where it runs ("cpu", "cuda:0", "/GPU:0"),
    so it can be shown and recorded with every result.
    """

    def __init__(self, package: ModelPackage, device: str) -> None:
        self.package = package
        self.device = device

    @property
    def id(self) -> str:
        return self.package.id

    @abstractmethod
    def predict(self, batch: npt.NDArray[np.float32]) -> F32:
        """(N, ...) preprocessed batch -> (N, len(labels)) calibrated probabilities."""

    def heatmap(self, batch: npt.NDArray[np.float32]) -> F32 | None:
        """(N, h, w) in [0, 1] at input resolution for the top class, or None if unsupported."""
        return None

    def features(self, batch: npt.NDArray[np.float32], layer: str | None = None) -> F32 | None:
        """(N, d) float32 features for out-of-distribution scores (models.ood), or None.

        ``layer``: None = the pooled penultimate layer; ``"logits"`` = the raw logits (energy
        score); an adapter may accept its own layer names."""
        return None

    def predict_with_features(
        self, batch: npt.NDArray[np.float32], layer: str | None = None
    ) -> tuple[F32, F32 | None]:
        """``predict`` and ``features`` together. Adapters override this to take both from one
        forward pass, so an OOD check costs no second run of the network."""
        return self.predict(batch), self.features(batch, layer)

    @abstractmethod
    def memory_bytes(self) -> int:
        """Estimate of the memory the model holds (parameter bytes)."""

    def close(self) -> None:  # noqa: B027 - optional hook, default does nothing
        """Release framework resources; the object must not be used afterwards."""


def module_available(name: str) -> bool:
    """True when ``name`` is installed, without importing it (find_spec on the top package)."""
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def normalise_cam(cam: npt.NDArray[np.float32], size: tuple[int, int]) -> F32:
    """(N, h', w') class-activation maps -> (N, h, w) in [0, 1] at input resolution."""
    from PIL import Image

    out = np.empty((cam.shape[0], *size), dtype=np.float32)
    for i, plane in enumerate(np.maximum(cam, 0.0).astype(np.float32)):
        up = Image.fromarray(np.ascontiguousarray(plane), mode="F").resize(
            (size[1], size[0]), Image.Resampling.BILINEAR
        )
        arr = np.asarray(up, dtype=np.float32)
        peak = float(arr.max())
        out[i] = arr / peak if peak > 0 else arr
    return out
