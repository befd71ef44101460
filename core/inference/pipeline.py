"""One model run: preprocess -> batch -> predict -> postprocess, with timings and provenance.

Runs in a worker thread (desktop) or the CLI; never touches Qt. Cancellation is checked between
batches; an out-of-GPU-memory error reruns the job on the CPU and says so in the result.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt

from core.inference.cache import PredictionCache, pixel_hash
from core.inference.manager import ModelManager
from core.inference.result import InferenceResult, InputRef, Provenance
from models.adapters.base import LoadedModel
from models.postprocess import decide
from models.preprocess import preprocess_batch

Cancel = Callable[[], bool]
Progress = Callable[[int, int], None]


class InferenceCancelled(Exception):
    """The user cancelled the job between two batches."""


def _resize_map(heat: npt.NDArray[Any], shape: tuple[int, int]) -> npt.NDArray[np.float32]:
    """Bilinear resize of one (h, w) map to the frame: preprocessing resized the whole frame
    without cropping, so the map covers it 1:1."""
    from PIL import Image

    image = Image.fromarray(np.asarray(heat, dtype=np.float32), mode="F")
    resized = image.resize((shape[1], shape[0]), Image.Resampling.BILINEAR)
    return np.clip(np.asarray(resized, dtype=np.float32), 0.0, 1.0)


def _is_oom(model: LoadedModel, exc: BaseException) -> bool:
    from models.adapters import get_adapter

    adapter = get_adapter(model.package.manifest.framework, model_id=model.id)
    return bool(adapter.is_out_of_memory(exc))


def _predict(
    model: LoadedModel,
    batches: list[npt.NDArray[np.float32]],
    with_heatmap: bool,
    cancel: Cancel | None,
    progress: Progress | None,
) -> tuple[list[npt.NDArray[np.float32]], list[npt.NDArray[np.float32]] | None]:
    probs: list[npt.NDArray[np.float32]] = []
    heats: list[npt.NDArray[np.float32]] | None = [] if with_heatmap else None
    for done, batch in enumerate(batches):
        if cancel is not None and cancel():
            raise InferenceCancelled()
        probs.append(np.asarray(model.predict(batch), dtype=np.float32))
        if heats is not None:
            heat = model.heatmap(batch)
            if heat is None:
                heats = None
            else:
                heats.append(heat)
        if progress is not None:
            progress(done + 1, len(batches))
    return probs, heats


def run_images(
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
) -> InferenceResult:
    """Run an image model on frames (core.imaging Frame objects or 2-D/RGB arrays)."""
    package = manager.package(model_id)
    manifest = package.manifest
    timings: dict[str, float] = {}
    key = None
    if cache is not None:
        start = time.perf_counter()
        key = (pixel_hash(*[getattr(i, "values", i) for i in images]), package.id, manifest.version)
        hit = cache.get(key)
        if hit is not None:
            return _from_cache(hit, images, inputs, (time.perf_counter() - start) * 1000)

    start = time.perf_counter()
    batch_all = preprocess_batch(list(images), manifest.input, package.id)
    batches = [batch_all[i : i + batch_size] for i in range(0, len(batch_all), batch_size)]
    timings["preprocess"] = (time.perf_counter() - start) * 1000

    warnings: list[str] = []
    start = time.perf_counter()
    with manager.use(model_id) as model:
        timings["load"] = (time.perf_counter() - start) * 1000  # ~0 when already loaded
        start = time.perf_counter()
        try:
            probs, heats = _predict(model, batches, heatmap, cancel, progress)
            device = model.device
        except InferenceCancelled:
            raise
        except Exception as exc:
            if not _is_oom(model, exc) or model.device == "cpu":
                raise
            oom_error: BaseException | None = exc
        else:
            oom_error = None
    if oom_error is not None:
        warnings.append(
            f"model '{model_id}' ran out of GPU memory on {model.device}; this job ran on the CPU"
        )
        manager.fall_back_to_cpu(model_id)
        with manager.use(model_id) as model:
            start = time.perf_counter()
            probs, heats = _predict(model, batches, heatmap, cancel, progress)
            device = model.device
    timings["inference"] = (time.perf_counter() - start) * 1000

    start = time.perf_counter()
    probabilities = np.concatenate(probs, axis=0)
    decisions = decide(probabilities, manifest.output)
    raw_maps = np.concatenate(heats, axis=0) if heats else None
    maps = _frame_maps(raw_maps, images)
    timings["postprocess"] = (time.perf_counter() - start) * 1000

    result = InferenceResult(
        labels=list(manifest.output.labels),
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
    )
    if cache is not None and key is not None:
        # the frame-size maps are rebuilt from the small model-size ones on a hit, so a cache
        # of hundreds of entries holds kilobytes per entry, not a full-size float map per image
        cache.put(key, replace(result, heatmaps=None))
    return result


def _frame_maps(
    raw_maps: npt.NDArray[np.float32] | None, images: Sequence[Any]
) -> npt.NDArray[np.float32] | None:
    if raw_maps is None:
        return None
    return np.stack(
        [
            _resize_map(raw_maps[i], tuple(np.asarray(getattr(img, "values", img)).shape[:2]))
            for i, img in enumerate(images)
        ]
    )


def _from_cache(
    hit: InferenceResult, images: Sequence[Any], inputs: Sequence[InputRef], lookup_ms: float
) -> InferenceResult:
    """A new result (own id, time, inputs) with the cached outputs and ``cache_hit`` set."""
    start = time.perf_counter()
    maps = _frame_maps(hit.raw_heatmaps, images)
    provenance = replace(
        hit.provenance,
        inputs=list(inputs),
        cache_hit=True,
        timings_ms={"cache": lookup_ms, "postprocess": (time.perf_counter() - start) * 1000},
        created_at=datetime.now(UTC).isoformat(),
    )
    return replace(
        hit,
        provenance=provenance,
        heatmaps=maps,
        warnings=list(hit.warnings),
        result_id=str(uuid.uuid4()),
    )
