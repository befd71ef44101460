"""One segmentation run: preprocess -> batch -> per-pixel class probabilities -> label masks at
frame size, with per-image scores, decisions and provenance like a classification run.

The run itself is the pipeline's (``core.inference.pipeline.run_task``: prefetch, load, the
out-of-GPU-memory rerun on the CPU, the out-of-distribution check on features from the same
forward pass, the cache); this module is the segmentation ``Task``: each batch's output checked,
and its post-processing. ``run_segmentation`` has ``run_images``' signature so a use case
dispatches on the manifest's task alone. The adapter's ``predict`` gives (N, C, h, w) softmax
probabilities; each class map is resized bilinearly to the frame and the mask is their argmax
there (a nearest-neighbour resize of the model-size label map would draw 5-pixel stairs on a
320-pixel slice). An image's score per class is ``models.segmentation.image_scores`` (the mean
of its top-k pixels), thresholded by the manifest. Progress counts batches, as ``run_images``'
does (the window's queue turns it into images).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Unpack

import numpy as np
import numpy.typing as npt

from core.inference.manager import ModelManager
from core.inference.pipeline import (
    ModelOutputs,
    RunOptions,
    Task,
    TaskOutputs,
    frame_map,
    frame_shape,
    run_task,
)
from core.inference.result import InferenceResult, InputRef
from models.adapters.base import LoadedModel
from models.manifest import ModelPackage
from models.postprocess import decide
from models.resample import resize_plane
from models.segmentation import image_scores, top_k

F32 = npt.NDArray[np.float32]
U8 = npt.NDArray[np.uint8]


class SegmentationOutputError(ValueError):
    """The model's output is not (N, C, h, w) probabilities over the manifest's labels."""


def frame_mask(probs: npt.NDArray[Any], shape: tuple[int, int]) -> U8:
    """(C, h, w) probabilities of one image -> (rows, cols) label map at frame size."""
    if tuple(probs.shape[1:]) == tuple(shape):
        return np.asarray(np.argmax(probs, axis=0), dtype=np.uint8)
    planes = np.stack([resize_plane(p, shape) for p in probs])
    return np.asarray(np.argmax(planes, axis=0), dtype=np.uint8)


def _check_output(model: LoadedModel, batch: F32, out: F32) -> None:
    n, n_labels = len(batch), len(model.package.manifest.output.labels)
    if out.ndim != 4 or out.shape[0] != n or out.shape[1] != n_labels:
        raise SegmentationOutputError(
            f"model '{model.id}' gave output of shape {tuple(out.shape)}; a segmentation model "
            f"must give (N={n}, C={n_labels}, h, w) class probabilities, one per label"
        )


def _segment(package: ModelPackage, out: ModelOutputs, heatmap: bool) -> TaskOutputs:
    """Image scores and decisions, masks at frame size; with ``heatmap`` the first foreground
    class's probability map (model size, and at frame size)."""
    probs = out.outputs
    probabilities = image_scores(probs, top_k(package.manifest))
    decisions = decide(probabilities, package.manifest.output)
    shapes = [frame_shape(f) for f in out.frames]
    if len(set(shapes)) > 1:
        raise SegmentationOutputError(
            f"model '{package.id}': the images have different sizes {sorted(set(shapes))}; "
            "run a segmentation on one series (one frame size) at a time"
        )
    masks = np.stack([frame_mask(p, s) for p, s in zip(probs, shapes, strict=True)])
    raw_maps = np.clip(probs[:, 1], 0.0, 1.0) if heatmap and probs.shape[1] > 1 else None
    maps = None
    if raw_maps is not None:
        maps = np.stack([frame_map(m, s) for m, s in zip(raw_maps, shapes, strict=True)])
    return TaskOutputs(probabilities, decisions, maps, raw_maps, masks)


SEGMENTATION = Task(finish=_segment, check=_check_output, adapter_heatmaps=False)


def run_segmentation(
    manager: ModelManager,
    model_id: str,
    images: Sequence[Any],
    inputs: Sequence[InputRef],
    **options: Unpack[RunOptions],
) -> InferenceResult:
    """Run a segmentation model on frames (core.imaging Frames or 2-D arrays).

    ``masks``: (N, rows, cols) uint8 label maps at each frame's size (0 = the first label,
    background); all frames must share one size (a series). With ``heatmap`` the first
    foreground class's probability is the heatmap (frame size, [0, 1]), so the viewer's
    heatmap overlay shows where the model sees it. The rest as ``run_images``.
    """
    return run_task(SEGMENTATION, manager, model_id, images, inputs, **options)


def mask_pixels(result: InferenceResult, label: int = 1) -> list[int]:
    """Pixels of class ``label`` per image of a segmentation result (0s without masks)."""
    if result.masks is None:
        return [0] * len(result.decisions)
    return [int(np.count_nonzero(m == label)) for m in result.masks]
