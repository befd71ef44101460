"""PyTorch adapter: a TorchScript file, run under ``torch.no_grad``; torch imported on use.

Not ``torch.inference_mode``: TorchScript's profiling executor keeps tensors from the first runs
of a graph, and inference tensors kept that way break a later Grad-CAM pass through the same
module ("Inference tensors cannot be saved for backward", seen on the DenseNet histopathology
model once its heatmap and its features had both run). ``no_grad`` costs the same here.

Grad-CAM convention for TorchScript (hooks are not available on scripted modules): a package
with ``heatmap.target_layer = "features"`` exports two methods, ``features(x)`` giving the target
layer's activations and ``classify(feats)`` giving the logits, so ``forward = classify(features)``.
"""

from __future__ import annotations

import os
import sys
import warnings
from typing import Any

import numpy as np
import numpy.typing as npt

from models.adapters.base import F32, LoadedModel, ModelLoadError, module_available, normalise_cam
from models.manifest import ModelPackage
from models.postprocess import probabilities

FRAMEWORK = "torch"
REQUIREMENT = "torch==2.13.0"


def is_available() -> bool:
    return module_available("torch")


def gpu_available() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def is_out_of_memory(exc: BaseException) -> bool:
    torch = sys.modules.get("torch")
    if torch is None:
        return False
    oom = getattr(torch, "OutOfMemoryError", None) or getattr(torch.cuda, "OutOfMemoryError", None)
    return bool(oom is not None and isinstance(exc, oom))


class TorchModel(LoadedModel):
    def __init__(self, package: ModelPackage, device: str, module: Any) -> None:
        super().__init__(package, device)
        self._module = module

    def _logits(self, batch: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        import torch

        with torch.no_grad():
            x = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).to(self.device)
            out = self._module(x)
            return np.asarray(out.float().cpu().numpy(), dtype=np.float32)

    def predict(self, batch: npt.NDArray[np.float32]) -> F32:
        return probabilities(self._logits(batch), self.package.manifest.output)

    def _split_forward(
        self, batch: npt.NDArray[np.float32], layer: str | None
    ) -> tuple[npt.NDArray[np.float32], F32 | None]:
        """Logits and OOD features from one pass: ``forward = classify(features)`` (see the
        module docstring), so the pooled penultimate layer is ``features(x)`` averaged over
        space, the very tensor ``classify`` pools. A module without that split gives only
        logits (and None unless ``layer`` is "logits")."""
        import torch

        module = self._module
        split = hasattr(module, "features") and hasattr(module, "classify")
        with torch.no_grad():
            x = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).to(self.device)
            if layer == "logits" or not split:
                logits = module(x).float()
                feats = logits if layer == "logits" else None
            elif layer in (None, "features"):
                maps = module.features(x)
                logits = module.classify(maps).float()
                feats = maps.float().mean(dim=(2, 3))
            else:
                raise ValueError(
                    f"model '{self.id}': unknown feature layer '{layer}' "
                    "(torch packages offer 'features' and 'logits')"
                )
            logits_np = np.asarray(logits.cpu().numpy(), dtype=np.float32)
            if feats is None:
                return logits_np, None
            return logits_np, np.asarray(feats.cpu().numpy(), dtype=np.float32)

    def features(self, batch: npt.NDArray[np.float32], layer: str | None = None) -> F32 | None:
        return self._split_forward(batch, layer)[1]

    def predict_with_features(
        self, batch: npt.NDArray[np.float32], layer: str | None = None
    ) -> tuple[F32, F32 | None]:
        logits, feats = self._split_forward(batch, layer)
        return probabilities(logits, self.package.manifest.output), feats

    def heatmap(self, batch: npt.NDArray[np.float32]) -> F32 | None:
        spec = self.package.manifest.heatmap
        if spec is None or spec.method != "gradcam":
            return None
        import torch

        module = self._module
        with torch.enable_grad():
            x = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).to(self.device)
            feats = module.features(x).detach().requires_grad_(True)
            logits = module.classify(feats)
            top = logits.argmax(dim=1)
            chosen = logits.gather(1, top[:, None]).sum()
            (grads,) = torch.autograd.grad(chosen, feats)
            weights = grads.mean(dim=(2, 3), keepdim=True)
            cam = torch.relu((weights * feats).sum(dim=1)).detach().cpu().numpy()
        size = self.package.manifest.input.size or (cam.shape[1], cam.shape[2])
        return normalise_cam(np.asarray(cam, dtype=np.float32), (size[0], size[1]))

    def memory_bytes(self) -> int:
        tensors = list(self._module.parameters()) + list(self._module.buffers())
        return int(sum(t.numel() * t.element_size() for t in tensors))

    def close(self) -> None:
        self._module = None


def configure_threads(torch: Any) -> None:
    """One intra-op thread unless DOCTORAI_TORCH_THREADS says otherwise.

    Measured here (2 shared cores, load ~5): the 28 px CNN took 190 ms per image with torch's
    default 2 OpenMP threads (spinning threads fighting other work) and 1.1 ms with 1 thread.
    The app runs several jobs in parallel anyway, so parallelism comes from the worker pool.
    """
    wanted = int(os.environ.get("DOCTORAI_TORCH_THREADS", "1"))
    if wanted > 0 and torch.get_num_threads() != wanted:
        torch.set_num_threads(wanted)


def load_script(package: ModelPackage, device: str) -> tuple[Any, str]:
    """The package's TorchScript module in eval mode on ``device`` ("gpu" or "cpu"), and the
    torch device it sits on; shared by this adapter and the "torchscript" one.

    A GPU out-of-memory error is re-raised as it is (it subclasses RuntimeError): the manager's
    CPU fallback must see it; any other failure is a ModelLoadError naming the model and file.
    """
    import torch

    configure_threads(torch)
    torch_device = "cuda:0" if device == "gpu" else "cpu"
    path = package.file(package.manifest.weights)
    try:
        with warnings.catch_warnings():
            # torch 2.13 marks TorchScript deprecated in favour of torch.export; the package
            # format stays TorchScript until exported programs support our Grad-CAM split,
            # and MONAI bundles ship .ts files.
            warnings.simplefilter("ignore", DeprecationWarning)
            module = torch.jit.load(str(path), map_location=torch_device)  # type: ignore[no-untyped-call]
    except (RuntimeError, ValueError, OSError) as exc:
        if is_out_of_memory(exc):
            raise
        raise ModelLoadError(
            f"model '{package.id}': cannot load TorchScript '{path}': {exc}"
        ) from exc
    module.eval()
    return module, torch_device


def load(package: ModelPackage, device: str) -> LoadedModel:
    module, torch_device = load_script(package, device)
    return TorchModel(package, torch_device, module)
