"""One segmentation run: preprocess -> batch -> per-pixel class probabilities -> label masks at
frame size, with per-image scores, decisions and provenance like a classification run.

``run_segmentation`` has ``run_images``' signature so a use case dispatches on the manifest's
task alone. It reuses the pipeline's prefetcher (decode + preprocessing of batch k+1 overlap
prediction of batch k), its out-of-GPU-memory test, its out-of-distribution check (features
from the same forward pass, flagged against the manifest's ``ood`` reference) and its cache-hit
rebuild. The adapter's
``predict`` gives (N, C, h, w) softmax probabilities; each class map is resized bilinearly to
the frame and the mask is their argmax there (a nearest-neighbour resize of the model-size label
map would draw 5-pixel stairs on a 320-pixel slice). An image's score per class is
``models.segmentation.image_scores`` (the mean of its top-k pixels), thresholded by the manifest.
Progress counts batches, as ``run_images``' does (the window's queue turns it into images).
Written here on purpose rather than in pipeline.py: the classification path stays as it is.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import numpy.typing as npt

from core.inference import ood_guard
from core.inference.cache import PredictionCache, pixel_hash
from core.inference.manager import ModelManager
from core.inference.pipeline import (
    Cancel,
    Decode,
    InferenceCancelled,
    Progress,
    _Features,
    _from_cache,
    _is_oom,
    _ood_check,
    _Prefetcher,
)
from core.inference.result import GuardFlag, InferenceResult, InputRef, Provenance
from models.adapters.base import LoadedModel
from models.postprocess import decide
from models.segmentation import image_scores, top_k

F32 = npt.NDArray[np.float32]
U8 = npt.NDArray[np.uint8]


class SegmentationOutputError(ValueError):
    """The model's output is not (N, C, h, w) probabilities over the manifest's labels."""


def _resize_plane(plane: npt.NDArray[Any], shape: tuple[int, int]) -> F32:
    from PIL import Image

    image = Image.fromarray(np.ascontiguousarray(plane, dtype=np.float32), mode="F")
    return np.asarray(image.resize((shape[1], shape[0]), Image.Resampling.BILINEAR), np.float32)


def frame_mask(probs: npt.NDArray[Any], shape: tuple[int, int]) -> U8:
    """(C, h, w) probabilities of one image -> (rows, cols) label map at frame size."""
    if tuple(probs.shape[1:]) == tuple(shape):
        return np.asarray(np.argmax(probs, axis=0), dtype=np.uint8)
    planes = np.stack([_resize_plane(p, shape) for p in probs])
    return np.asarray(np.argmax(planes, axis=0), dtype=np.uint8)


def _frame_shape(image: Any) -> tuple[int, int]:
    shape = np.asarray(getattr(image, "values", image)).shape
    return int(shape[0]), int(shape[1])


def _check_output(out: npt.NDArray[Any], n: int, n_labels: int, model_id: str) -> None:
    if out.ndim != 4 or out.shape[0] != n or out.shape[1] != n_labels:
        raise SegmentationOutputError(
            f"model '{model_id}' gave output of shape {tuple(out.shape)}; a segmentation model "
            f"must give (N={n}, C={n_labels}, h, w) class probabilities, one per label"
        )


def _predict(
    model: LoadedModel,
    batches: Iterator[F32],
    n_batches: int,
    n_labels: int,
    cancel: Cancel | None,
    progress: Progress | None,
    seen: list[F32] | None,
    features: _Features | None,
) -> tuple[list[F32], float]:
    """Probabilities per batch and the seconds spent in the model; progress per batch.
    ``features`` (a manifest with an ``ood`` section) collects the OOD features of the same
    forward pass."""
    outs: list[F32] = []
    busy = 0.0
    if features is not None:
        features.batches.clear()
        features.missing = False
    for done, batch in enumerate(batches, start=1):
        if seen is not None:
            seen.append(batch)
        if cancel is not None and cancel():
            raise InferenceCancelled()
        start = time.perf_counter()
        if features is None or features.missing:
            out = np.asarray(model.predict(batch), dtype=np.float32)
        else:
            probs, feats = model.predict_with_features(batch, features.layer)
            out = np.asarray(probs, dtype=np.float32)
            if feats is None:
                features.missing = True
            else:
                features.batches.append(np.asarray(feats, dtype=np.float32))
        busy += time.perf_counter() - start
        _check_output(out, len(batch), n_labels, model.id)
        outs.append(out)
        if progress is not None:
            progress(done, n_batches)
    return outs, busy


def run_segmentation(
    manager: ModelManager,
    model_id: str,
    images: Sequence[Any],
    inputs: Sequence[InputRef],
    *,
    heatmap: bool = True,
    batch_size: int = 16,
    cancel: Cancel | None = None,
    progress: Progress | None = None,
    cache: PredictionCache[InferenceResult] | None = None,
    decode: Decode | None = None,
) -> InferenceResult:
    """Run a segmentation model on frames (core.imaging Frames or 2-D arrays).

    ``masks``: (N, rows, cols) uint8 label maps at each frame's size (0 = the first label,
    background); all frames must share one size (a series). With ``heatmap`` the first
    foreground class's probability is the heatmap (frame size, [0, 1]), so the viewer's
    heatmap overlay shows where the model sees it. The rest as ``run_images``.
    """
    package = manager.package(model_id)
    manifest = package.manifest
    labels = list(manifest.output.labels)
    timings: dict[str, float] = {}
    key = None
    if cache is not None:
        start = time.perf_counter()
        if decode is not None:
            images, decode = [decode(item) for item in images], None
        key = (
            pixel_hash(*[getattr(i, "values", i) for i in images]),
            package.id,
            manifest.version,
        )
        hit = cache.get(key)
        if hit is not None:
            return _from_cache(hit, images, inputs, (time.perf_counter() - start) * 1000)

    prefetch = _Prefetcher(images, manifest.input, package.id, max(1, batch_size), decode)
    batches = iter(prefetch)
    seen: list[F32] = []
    warnings: list[str] = []
    guards: list[GuardFlag] = []
    features = _Features(ood_guard.feature_layer(package)) if manifest.ood is not None else None
    oom: BaseException | None = None
    gpu = ""
    try:
        start = time.perf_counter()
        with manager.use(model_id) as model:
            timings["load"] = (time.perf_counter() - start) * 1000
            on_gpu = model.device != "cpu"
            try:
                outs, busy = _predict(
                    model, batches, len(prefetch), len(labels), cancel, progress,
                    seen if on_gpu else None, features,
                )  # fmt: skip
                device = model.device
            except (InferenceCancelled, SegmentationOutputError):
                raise
            except Exception as exc:
                if not on_gpu or not _is_oom(model, exc):
                    raise
                oom, gpu = exc, model.device
        if oom is not None:
            warnings.append(
                f"model '{model_id}' ran out of GPU memory on {gpu}; this job ran on the CPU"
            )
            manager.fall_back_to_cpu(model_id)
            with manager.use(model_id) as model:
                rest = iter([*seen, *batches])
                n_batches = len(prefetch)
                outs, busy = _predict(
                    model, rest, n_batches, len(labels), cancel, progress, None, features
                )
                device = model.device
    finally:
        prefetch.close()
    timings["preprocess"] = prefetch.seconds * 1000
    timings["inference"] = busy * 1000
    frames = prefetch.frames if decode is not None else list(images)

    start = time.perf_counter()
    if features is not None:  # scoring the features is part of postprocessing
        _ood_check(package, features, guards, warnings)
    probs = np.concatenate(outs, axis=0)
    probabilities = image_scores(probs, top_k(manifest))
    decisions = decide(probabilities, manifest.output)
    shapes = [_frame_shape(f) for f in frames]
    if len(set(shapes)) > 1:
        raise SegmentationOutputError(
            f"model '{model_id}': the images have different sizes {sorted(set(shapes))}; "
            "run a segmentation on one series (one frame size) at a time"
        )
    masks = np.stack([frame_mask(p, s) for p, s in zip(probs, shapes, strict=True)])
    raw_maps = np.clip(probs[:, 1], 0.0, 1.0) if heatmap and probs.shape[1] > 1 else None
    maps = None
    if raw_maps is not None:
        pairs = zip(raw_maps, shapes, strict=True)
        maps = np.stack([np.clip(_resize_plane(m, s), 0.0, 1.0) for m, s in pairs])
    timings["postprocess"] = (time.perf_counter() - start) * 1000

    result = InferenceResult(
        labels=labels,
        probabilities=probabilities,
        decisions=decisions,
        thresholds=dict(manifest.output.thresholds),
        provenance=Provenance(
            model_id=package.id,
            model_version=manifest.version,
            package_hash=package.package_hash,
            framework=manifest.framework,
            device=device,
            inputs=list(inputs),
            timings_ms=timings,
        ),
        demo_notice=manifest.demo_notice,
        warnings=warnings,
        heatmaps=maps,
        raw_heatmaps=raw_maps,
        masks=masks,
        guards=guards,
    )
    if cache is not None and key is not None:
        cache.put(key, replace(result, heatmaps=None))  # rebuilt from raw_heatmaps on a hit
    return result


def mask_pixels(result: InferenceResult, label: int = 1) -> list[int]:
    """Pixels of class ``label`` per image of a segmentation result (0s without masks)."""
    if result.masks is None:
        return [0] * len(result.decisions)
    return [int(np.count_nonzero(m == label)) for m in result.masks]
