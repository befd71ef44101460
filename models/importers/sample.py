"""Generated self-test images for an imported model (it ships no sample of its own).

The images only need to be reproducible and to exercise the declared preprocessing: a seeded
mix of a gradient, a disc and noise, spanning the intensity range the first intensity step
maps to [0, 1] (a fixed window's range, a scale's inverse), larger than the network's input
when a resize step follows, so the resize runs too.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from models.manifest import AutoWindowStep, InputSpec, ResizeStep, ScaleStep, WindowStep

SEED = 20261207


def _intensity_range(spec: InputSpec) -> tuple[float, float]:
    for step in spec.preprocessing:
        if isinstance(step, WindowStep):
            return step.center - step.width, step.center + step.width
        if isinstance(step, ScaleStep) and step.factor != 0:
            ends = sorted(((0.0 - step.offset) / step.factor, (1.0 - step.offset) / step.factor))
            return ends[0], ends[1]
        if isinstance(step, AutoWindowStep):
            return 0.0, 1000.0
    return 0.0, 1.0


def sample_images(spec: InputSpec, n: int = 2) -> npt.NDArray[np.float32]:
    """(n, H, W) grey or (n, H, W, 3) RGB float32 images, before preprocessing."""
    if spec.size is None:
        raise ValueError("an image model's input size is needed for a sample")
    height, width = spec.size
    if any(isinstance(step, ResizeStep) for step in spec.preprocessing):
        height, width = height + height // 2, width + width // 3
    low, high = _intensity_range(spec)
    rng = np.random.default_rng(SEED)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    images: list[npt.NDArray[Any]] = []
    for i in range(n):
        cy, cx = height * (0.35 + 0.3 * i / max(n, 1)), width * (0.6 - 0.2 * i / max(n, 1))
        disc = ((yy - cy) ** 2 + (xx - cx) ** 2) < (0.2 * min(height, width)) ** 2
        base = 0.5 * xx / max(width - 1, 1) + 0.4 * disc + 0.1 * rng.random((height, width))
        plane = low + (high - low) * np.clip(base, 0.0, 1.0)
        if spec.color == "rgb":
            tint = np.array([1.0, 0.8, 0.6])[None, None, :]
            plane = np.clip(plane[:, :, None] * tint, min(low, high), max(low, high))
        images.append(plane)
    return np.stack(images).astype(np.float32)
