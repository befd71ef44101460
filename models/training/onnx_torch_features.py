"""A TorchScript wrapper giving (logits, pooled features) for the ONNX export of a zoo model.

In its own module because TorchScript compiles the class from its source and resolves the
annotations against this module's globals (torch imported here, at module level, which
models/training allows); models.training.export_onnx imports it only for a torch export.
"""

from __future__ import annotations

import warnings

import torch


class LogitsAndFeatures(torch.nn.Module):
    """``forward(x) = (classify(features(x)), features(x) averaged over space)``: the torch
    adapter's Grad-CAM split, and the pooled features its OOD check reads."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        maps = self.inner.features(x)  # type: ignore[operator]
        return self.inner.classify(maps), maps.mean(dim=(2, 3))  # type: ignore[operator]


def scripted(inner: torch.nn.Module) -> torch.jit.ScriptModule:
    """The wrapper compiled with TorchScript, in eval mode (scripting leaves training on)."""
    with warnings.catch_warnings():
        # torch 2.13 marks TorchScript deprecated; the zoo's packages are TorchScript, and the
        # exporter that reads them (the TorchScript-based one) takes a scripted module.
        warnings.simplefilter("ignore", DeprecationWarning)
        module = torch.jit.script(LogitsAndFeatures(inner))
    module.eval()
    return module
