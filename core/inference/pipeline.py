"""One model run: preprocess -> batch -> predict -> postprocess, with timings and provenance.

Runs in a worker thread (desktop) or the CLI; never touches Qt. Cancellation is checked between
batches; an out-of-GPU-memory error reruns the job on the CPU and says so in the result. A model
with an ``ood`` section returns its features with each batch's predictions (same forward pass);
images unlike its training data get a GuardFlag(kind="ood") on the result (ood_guard).

``run_task`` is the one run loop (prefetch, load, OOM fallback, predict with features, OOD
check, cache); a ``Task`` brings what differs between tasks: a check of each batch's output and
the post-processing into scores, decisions, heatmaps and masks. ``run_images`` is the
classification task; core.inference.segment the segmentation one.
"""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, TypedDict, Unpack

import numpy as np
import numpy.typing as npt

from core.inference import ood_guard
from core.inference.cache import PredictionCache, pixel_hash
from core.inference.manager import ModelManager, is_oom
from core.inference.result import GuardFlag, InferenceResult, InputRef, Provenance
from models.adapters.base import LoadedModel
from models.manifest import InputSpec, ModelPackage
from models.ood import OodReferenceError
from models.postprocess import decide
from models.preprocess import preprocess_batch
from models.resample import resize_plane

Cancel = Callable[[], bool]
Progress = Callable[[int, int], None]
Decode = Callable[[Any], Any]
F32 = npt.NDArray[np.float32]


class InferenceCancelled(Exception):
    """The user cancelled the job between two batches."""


class RunOptions(TypedDict, total=False):
    """``run_task``'s keyword options, which ``run_images`` and ``run_segmentation`` pass on."""

    heatmap: bool
    batch_size: int
    cancel: Cancel | None
    progress: Progress | None
    cache: PredictionCache[InferenceResult] | None
    decode: Decode | None


def frame_shape(image: Any) -> tuple[int, int]:
    """(rows, cols) of a Frame or an array: what model-size maps are resized back to. A frame
    decoded at a lower resolution for the model (core.imaging.reduced) gives its full size, so
    heatmaps and masks fit the image the viewer shows."""
    full = getattr(image, "full_shape", None)
    if full is not None:
        return int(full[0]), int(full[1])
    shape = np.asarray(getattr(image, "values", image)).shape
    return int(shape[0]), int(shape[1])


def frame_map(plane: npt.NDArray[Any], shape: tuple[int, int]) -> F32:
    """One model-size (h, w) map in [0, 1] resized bilinearly to the frame and kept in [0, 1]:
    preprocessing resized the whole frame without cropping, so the map covers it 1:1."""
    return np.clip(resize_plane(plane, shape), 0.0, 1.0)


@dataclass(frozen=True)
class ModelOutputs:
    """What the model gave over a whole run, for a task's post-processing."""

    outputs: F32  # the adapter's predictions, batches concatenated
    heatmaps: F32 | None  # the adapter's (N, h, w) heatmaps at model size, when asked and given
    frames: list[Any]  # the images as decoded, in order (maps and masks are sized to them)


@dataclass(frozen=True)
class TaskOutputs:
    """A task's post-processed result: per-image scores and decisions, maps, masks."""

    probabilities: F32
    decisions: list[str]
    heatmaps: F32 | None = None  # frame size
    raw_heatmaps: F32 | None = None  # model size (kept in the cache, resized on a hit)
    masks: npt.NDArray[np.uint8] | None = None


@dataclass(frozen=True)
class Task:
    """What differs between tasks in a run; everything else is ``run_task``'s.

    ``finish(package, outputs, heatmap)`` post-processes the whole run. ``check(model, batch,
    out)`` refuses a batch's output by name before the next batch runs. ``adapter_heatmaps``:
    with ``heatmap`` asked, the adapter's ``heatmap(batch)`` runs per batch (Grad-CAM);
    a segmentation draws its heatmap from its own output instead.
    """

    finish: Callable[[ModelPackage, ModelOutputs, bool], TaskOutputs]
    check: Callable[[LoadedModel, F32, F32], None] | None = None
    adapter_heatmaps: bool = True


class _Prefetcher:
    """Decode + preprocess batch k+1 on one helper thread while the caller predicts batch k.

    numpy, pillow and the frameworks release the GIL in their heavy loops, so on two cores the
    two stages overlap (measured in ``python -m benchmarks inference``, throughput). One batch:
    no thread at all. ``frames`` keeps each decoded image (heatmaps are resized to them).
    """

    def __init__(
        self,
        items: Sequence[Any],
        spec: InputSpec,
        model_id: str,
        batch_size: int,
        decode: Decode | None,
    ) -> None:
        self._chunks = [list(items[i : i + batch_size]) for i in range(0, len(items), batch_size)]
        self._spec = spec
        self._model_id = model_id
        self._decode = decode
        self.frames: list[Any] = []
        self.seconds = 0.0  # preprocessing (and decoding) time, summed over batches
        self._pool: ThreadPoolExecutor | None = None
        if len(self._chunks) > 1:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="doctorai-prefetch")

    def __len__(self) -> int:
        return len(self._chunks)

    def _prepare(self, chunk: list[Any]) -> tuple[list[Any], npt.NDArray[np.float32]]:
        start = time.perf_counter()
        frames = [self._decode(item) for item in chunk] if self._decode is not None else chunk
        batch = preprocess_batch(frames, self._spec, self._model_id)
        self.seconds += time.perf_counter() - start
        return frames, batch

    def __iter__(self) -> Iterator[npt.NDArray[np.float32]]:
        if self._pool is None:
            for chunk in self._chunks:
                frames, batch = self._prepare(chunk)
                self.frames.extend(frames)
                yield batch
            return
        pending: Future[tuple[list[Any], npt.NDArray[np.float32]]] = self._pool.submit(
            self._prepare, self._chunks[0]
        )
        for k in range(len(self._chunks)):
            frames, batch = pending.result()  # re-raises a decode/preprocess error here
            if k + 1 < len(self._chunks):
                pending = self._pool.submit(self._prepare, self._chunks[k + 1])
            self.frames.extend(frames)
            yield batch

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)


class _Features:
    """OOD features collected from the same forward pass as the predictions (one per batch);
    ``missing`` when the adapter offers none, so the run says the check could not be made."""

    def __init__(self, layer: str | None) -> None:
        self.layer = layer
        self.batches: list[npt.NDArray[np.float32]] = []
        self.missing = False


def _predict(
    model: LoadedModel,
    batches: Iterable[npt.NDArray[np.float32]],
    total: int,
    with_heatmap: bool,
    cancel: Cancel | None,
    progress: Progress | None,
    seen: list[npt.NDArray[np.float32]] | None,
    features: _Features | None = None,
    check: Callable[[LoadedModel, F32, F32], None] | None = None,
) -> tuple[list[npt.NDArray[np.float32]], list[npt.NDArray[np.float32]] | None, float]:
    """Model outputs per batch, and the seconds spent in the model (not waiting for input).

    ``seen`` collects the batches already used, for a rerun on the CPU after an
    out-of-GPU-memory error; None on the CPU, where there is no such rerun. ``features``
    (models with an ``ood`` section) collects OOD features from the same forward pass.
    ``check`` (the task's) sees each batch's output before the next batch runs."""
    probs: list[npt.NDArray[np.float32]] = []
    heats: list[npt.NDArray[np.float32]] | None = [] if with_heatmap else None
    if features is not None:
        features.batches.clear()
        features.missing = False
    busy = 0.0
    for done, batch in enumerate(batches):
        if seen is not None:
            seen.append(batch)
        if cancel is not None and cancel():
            raise InferenceCancelled()
        start = time.perf_counter()
        if features is None or features.missing:
            probs.append(np.asarray(model.predict(batch), dtype=np.float32))
        else:
            out, feats = model.predict_with_features(batch, features.layer)
            probs.append(np.asarray(out, dtype=np.float32))
            if feats is None:
                features.missing = True
            else:
                features.batches.append(np.asarray(feats, dtype=np.float32))
        if heats is not None:
            heat = model.heatmap(batch)
            if heat is None:
                heats = None
            else:
                heats.append(heat)
        busy += time.perf_counter() - start
        if check is not None:
            check(model, batch, probs[-1])
        if progress is not None:
            progress(done + 1, total)
    return probs, heats, busy


def _classify(package: ModelPackage, out: ModelOutputs, heatmap: bool) -> TaskOutputs:
    """Thresholded decisions; the adapter's heatmaps (Grad-CAM) resized to each frame."""
    probabilities = out.outputs
    decisions = decide(probabilities, package.manifest.output)
    return TaskOutputs(
        probabilities, decisions, _frame_maps(out.heatmaps, out.frames), out.heatmaps
    )


CLASSIFICATION = Task(finish=_classify)


def run_images(
    manager: ModelManager,
    model_id: str,
    images: Sequence[Any],
    inputs: Sequence[InputRef],
    **options: Unpack[RunOptions],
) -> InferenceResult:
    """Run an image model on frames (core.imaging Frame objects or 2-D/RGB arrays).

    With ``decode``, ``images`` are sources (e.g. slice refs) that ``decode(item)`` turns into
    frames on the prefetch thread, so decoding overlaps inference too (with a ``cache`` they
    are decoded up front: the cache key hashes the pixels). ``timings_ms``: ``preprocess``
    (decode + preprocessing, summed) and ``inference`` (time in the model) overlap when the
    series has more than one batch.
    """
    return run_task(CLASSIFICATION, manager, model_id, images, inputs, **options)


def run_task(
    task: Task,
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
    """The run loop every image task shares; the arguments are ``run_images``'."""
    package = manager.package(model_id)
    manifest = package.manifest
    timings: dict[str, float] = {}
    key = None
    if cache is not None:
        start = time.perf_counter()
        if decode is not None:
            images, decode = [decode(item) for item in images], None
        # the package hash, not only the version: a refitted OOD threshold or a changed
        # population in the same version must not be answered from an older result
        pixels = pixel_hash(*[getattr(i, "values", i) for i in images])
        key = (pixels, package.id, package.package_hash)
        hit = cache.get(key)
        if hit is not None:
            return _from_cache(hit, images, inputs, (time.perf_counter() - start) * 1000)

    prefetch = _Prefetcher(images, manifest.input, package.id, max(1, batch_size), decode)
    batches = iter(prefetch)
    features = _Features(ood_guard.feature_layer(package)) if manifest.ood is not None else None
    with_heatmap = heatmap and task.adapter_heatmaps
    seen: list[npt.NDArray[np.float32]] = []
    warnings: list[str] = []
    try:
        start = time.perf_counter()
        with manager.use(model_id) as model:
            timings["load"] = (time.perf_counter() - start) * 1000  # ~0 when already loaded
            try:
                probs, heats, busy = _predict(
                    model,
                    batches,
                    len(prefetch),
                    with_heatmap,
                    cancel,
                    progress,
                    seen if model.device != "cpu" else None,
                    features,
                    task.check,
                )
                device = model.device
            except InferenceCancelled:
                raise
            except Exception as exc:
                if model.device == "cpu" or not is_oom(model.package, exc):
                    raise
                oom_error: BaseException | None = exc
            else:
                oom_error = None
        if oom_error is not None:
            warnings.append(
                f"model '{model_id}' ran out of GPU memory on {model.device}; "
                "this job ran on the CPU"
            )
            manager.fall_back_to_cpu(model_id)
            rest = itertools.chain(list(seen), batches)  # the same generator goes on
            with manager.use(model_id) as model:
                probs, heats, busy = _predict(
                    model,
                    rest,
                    len(prefetch),
                    with_heatmap,
                    cancel,
                    progress,
                    None,
                    features,
                    task.check,
                )
                device = model.device
    finally:
        prefetch.close()
    timings["preprocess"] = prefetch.seconds * 1000
    timings["inference"] = busy * 1000
    frames = prefetch.frames if decode is not None else list(images)

    start = time.perf_counter()
    outputs = ModelOutputs(
        np.concatenate(probs, axis=0), np.concatenate(heats, axis=0) if heats else None, frames
    )
    post = task.finish(package, outputs, heatmap)
    guards: list[GuardFlag] = []
    if features is not None:  # scoring the features is part of postprocessing
        _ood_check(package, features, guards, warnings)
    timings["postprocess"] = (time.perf_counter() - start) * 1000

    result = InferenceResult(
        labels=list(manifest.output.labels),
        probabilities=post.probabilities,
        decisions=post.decisions,
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
        heatmaps=post.heatmaps,
        raw_heatmaps=post.raw_heatmaps,
        masks=post.masks,
        guards=guards,
    )
    if cache is not None and key is not None:
        # the frame-size maps are rebuilt from the small model-size ones on a hit, so a cache
        # of hundreds of entries holds kilobytes per entry, not a full-size float map per image
        cache.put(key, replace(result, heatmaps=None))
    return result


def _ood_check(
    package: ModelPackage, features: _Features, guards: list[GuardFlag], warnings: list[str]
) -> None:
    """Add the OOD flag, or a warning saying why the check could not be made: a failed check
    never loses the result, and never passes silently as "in distribution"."""
    if features.missing or not features.batches:
        warnings.append(
            f"model '{package.id}': its adapter gives no features, so the out-of-distribution "
            "check was not made"
        )
        return
    try:
        flag = ood_guard.check(package, np.concatenate(features.batches, axis=0))
    except OodReferenceError as exc:
        warnings.append(f"out-of-distribution check not made: {exc}")
        return
    if flag is not None:
        guards.append(flag)


def _frame_maps(
    raw_maps: npt.NDArray[np.float32] | None, images: Sequence[Any]
) -> npt.NDArray[np.float32] | None:
    if raw_maps is None:
        return None
    return np.stack([frame_map(raw_maps[i], frame_shape(img)) for i, img in enumerate(images)])


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
        guards=[
            replace(g, images=None if g.images is None else list(g.images)) for g in hit.guards
        ],
        result_id=str(uuid.uuid4()),
    )
