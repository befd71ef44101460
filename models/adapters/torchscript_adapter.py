"""TorchScript adapter for models made elsewhere (MONAI bundles' ``models/model.ts``, hospital
exports): ``torch.jit.load`` with ``map_location`` per device; torch imported on first use.

The zoo's own "torch" packages are TorchScript too; this framework differs in what it accepts:
a segmentation network's (N, C, h, w) logits as well as a classifier's (N, K), each turned
into calibrated probabilities by the manifest's activation and calibration (channel axis 1).
Loading (threads, devices, a GPU out-of-memory error let through to the manager's CPU
fallback), out-of-memory detection and Grad-CAM are models.adapters.torch_adapter's.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from models.adapters import torch_adapter
from models.adapters.base import F32, LoadedModel, module_available
from models.manifest import ModelPackage, OutputSpec
from models.postprocess import probabilities

FRAMEWORK = "torchscript"
REQUIREMENT = torch_adapter.REQUIREMENT

gpu_available = torch_adapter.gpu_available
is_out_of_memory = torch_adapter.is_out_of_memory


def is_available() -> bool:
    return module_available("torch")


class OutputShapeError(ValueError):
    """The network's output does not have the shape its manifest declares."""


def map_probabilities(raw: npt.NDArray[np.float32], output: OutputSpec) -> F32:
    """(N, C, h, w) logits -> (N, len(labels), h, w) probabilities, per pixel as
    ``models.postprocess.probabilities`` does per image (one calibration code path)."""
    n, c, h, w = raw.shape
    flat = np.moveaxis(raw, 1, -1).reshape(-1, c)
    probs = probabilities(flat, output)
    return np.ascontiguousarray(np.moveaxis(probs.reshape(n, h, w, -1), -1, 1), dtype=np.float32)


def check_output(raw: npt.NDArray[np.float32], package: ModelPackage) -> None:
    """Refuse an output whose rank or width disagrees with the manifest (names the model)."""
    manifest = package.manifest
    n_labels = len(manifest.output.labels)
    want_rank = 4 if manifest.task == "segmentation" else 2
    rank = raw.ndim if not (want_rank == 2 and raw.ndim == 1) else 2
    width = raw.shape[1] if raw.ndim > 1 else 1
    binary_single = width == 1 and n_labels == 2 and manifest.output.activation == "sigmoid"
    if rank != want_rank or (width != n_labels and not binary_single):
        layout = "(N, C, h, w)" if want_rank == 4 else "(N, K)"
        raise OutputShapeError(
            f"model '{package.id}': the network returned shape {tuple(raw.shape)}, but its "
            f"manifest ({manifest.task}, {n_labels} label(s)) expects {layout} with "
            f"{n_labels} channel(s)"
        )


class TorchScriptModel(torch_adapter.TorchModel):
    """A loaded TorchScript module; ``predict`` handles classification and segmentation."""

    def predict(self, batch: npt.NDArray[np.float32]) -> F32:
        raw = self._logits(batch)
        check_output(raw, self.package)
        output = self.package.manifest.output
        if raw.ndim == 4:
            return map_probabilities(raw, output)
        return probabilities(raw, output)


def load(package: ModelPackage, device: str) -> LoadedModel:
    module, torch_device = torch_adapter.load_script(package, device)
    return TorchScriptModel(package, torch_device, module)
