"""The brain phantom model's Grad-CAM peaks inside a lesion placed at a known position."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from models.adapters.base import LoadedModel
from models.manifest import ModelPackage
from models.phantoms import brain_slice
from models.preprocess import preprocess_batch

Getter = Callable[[str], tuple[ModelPackage, LoadedModel]]

# (row, col, radius) inside the brain, away from the training/validation seeds' randomness
CASES = [
    (20.0, 24.0, 6.0),
    (40.0, 40.0, 6.0),
    (30.0, 44.0, 5.0),
    (44.0, 22.0, 6.5),
    (24.0, 38.0, 5.5),
]


@pytest.mark.parametrize(("row", "col", "radius"), CASES)
def test_heatmap_peak_lies_in_lesion(
    row: float, col: float, radius: float, zoo_model: Getter
) -> None:
    package, model = zoo_model("brain-tumour-mri")
    rng = np.random.default_rng(int(row * 100 + col))
    image, mask = brain_slice(rng, lesion=True, lesion_center=(row, col), lesion_radius=radius)
    assert mask.sum() > 30
    batch = preprocess_batch([image], package.manifest.input, package.id)
    probs = model.predict(batch)
    assert probs[0, package.manifest.output.labels.index("tumour")] > 0.5
    heat = model.heatmap(batch)
    assert heat is not None
    peak = np.unravel_index(int(np.argmax(heat[0])), heat[0].shape)
    assert mask[peak], f"heatmap peak {peak} outside lesion at ({row}, {col}) r={radius}"


def test_no_lesion_scores_low(zoo_model: Getter) -> None:
    package, model = zoo_model("brain-tumour-mri")
    rng = np.random.default_rng(12345)
    images = [brain_slice(rng, lesion=False)[0] for _ in range(8)]
    probs = model.predict(preprocess_batch(images, package.manifest.input, package.id))
    assert np.all(probs[:, package.manifest.output.labels.index("tumour")] < 0.5)


def test_heatmap_peaks_in_random_lesions(zoo_model: Getter) -> None:
    """Lesions at generator-chosen positions and sizes (a seed the model never saw)."""
    package, model = zoo_model("brain-tumour-mri")
    rng = np.random.default_rng(999)
    slices = [brain_slice(rng, lesion=True) for _ in range(12)]
    batch = preprocess_batch([s[0] for s in slices], package.manifest.input, package.id)
    heat = model.heatmap(batch)
    assert heat is not None
    misses = []
    for i, (_, mask) in enumerate(slices):
        peak = np.unravel_index(int(np.argmax(heat[i])), heat[i].shape)
        if not mask[peak]:
            misses.append((i, peak))
    assert misses == []
