"""Model runs as background jobs, and the queue of them the user sees and can cancel.

Each run is one ``JobRunner`` job (the viewer's job shape) that also records the run (core.app:
store, audit, upstream), so no database transaction happens on the GUI thread. Progress,
result, error and cancellation arrive as queued signals on the GUI thread. Slices the viewer
has not decoded yet are decoded in the job; the GUI never waits on a model.

Progress counts images: each image decoded ("decoding"), then the images of each batch the
model finished ("running"). Smaller batches give a finer progress bar but cost throughput
(``python -m benchmarks series_progress``: the brain model with Grad-CAM on the 24-slice MR
ran at 0.81-0.94x in batches of 8, 0.65-0.72x of 4 and 0.49x of 1 against batches of 16 in
two runs, where the whole run takes 60-150 ms). So a model's batch is sized by its measured speed
(``progress_batch``): as many images as take about ``PROGRESS_STEP_MS``, capped by the
queue's ``batch_size`` - a slow model moves the bar image by image, a fast one keeps full
batches (and finishes before a finer bar could be seen).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from PySide6.QtCore import QObject, Signal

from core.app.model_runs import run_model
from core.app.results import ReadingResults
from core.imaging.model import Frame, SliceRef
from core.inference.cache import PredictionCache
from core.inference.manager import ModelManager, ModelRefusedError
from core.inference.result import InferenceResult, InputRef
from core.inference.shadow import ShadowModels
from desktop.workers import Job, JobContext, JobRunner

QUEUED, RUNNING, DONE, FAILED, CANCELLED = "queued", "running", "done", "failed", "cancelled"
DECODING = "decoding"
#: Time a model call (one batch) may take before the progress bar moves again.
PROGRESS_STEP_MS = 250.0
#: Batch of a model not timed yet on this workstation (first run of the session).
FIRST_RUN_BATCH = 4


def progress_batch(ms_per_image: float | None, batch_size: int) -> int:
    """Images per model call: those that fit in ``PROGRESS_STEP_MS`` at the model's measured
    speed (``FIRST_RUN_BATCH`` before it was measured), 1 to ``batch_size``."""
    if ms_per_image is None:
        return max(1, min(batch_size, FIRST_RUN_BATCH))
    return max(1, min(batch_size, int(PROGRESS_STEP_MS // max(ms_per_image, 1e-3))))


def ms_per_image(result: InferenceResult) -> float | None:
    """Model + preprocessing time per image of a run (None for a cache hit: nothing ran)."""
    prov = result.provenance
    n = len(prov.inputs)
    if prov.cache_hit or n == 0 or "inference" not in prov.timings_ms:
        return None
    return (prov.timings_ms["inference"] + prov.timings_ms.get("preprocess", 0.0)) / n


class JobCancelled(Exception):
    """Cancelled before the model ran (while queued or decoding)."""


def display_maps(result: InferenceResult) -> list[npt.NDArray[np.uint8]] | None:
    """The heatmaps as 8-bit (what the viewport overlays): a quarter of the float memory."""
    if result.heatmaps is None:
        return None
    return [np.round(np.clip(h, 0, 1) * 255).astype(np.uint8) for h in result.heatmaps]


@dataclass
class RunOutput:
    result: InferenceResult
    maps: list[npt.NDArray[np.uint8]] | None  # per input image, frame size, uint8


def _decoded(
    ctx: JobContext,
    refs: Sequence[SliceRef],
    frames: Sequence[Frame | None],
    report: bool = False,
    target: tuple[int, int] | None = None,
) -> list[Frame]:
    """The frames, decoding the missing ones; with ``report``, (DECODING, n done, total) after
    each image decoded here. With ``target`` (the size the model resizes to), a large JPEG 2000
    frame the viewer has not decoded is decoded at a lower resolution level for the model only
    (core.imaging.reduced; heatmaps and masks still come back at the full size)."""
    from core.imaging.reduced import read_frame_for_model
    from core.imaging.volume import load_slice

    ready: list[Frame] = []
    for ref, frame in zip(refs, frames, strict=True):
        if ctx.cancelled:
            raise JobCancelled()
        if frame is not None:
            loaded: Frame | None = frame
        elif target is not None:
            loaded = read_frame_for_model(ref.instance, ref.frame, target)
        else:
            loaded = load_slice(ref.instance, ref.frame)
        assert loaded is not None  # want_frame=True always returns a frame
        ready.append(loaded)
        if report and frame is None:
            ctx.report((DECODING, len(ready), len(refs)))
    return ready


def _input_refs(refs: Sequence[SliceRef]) -> list[InputRef]:
    return [InputRef.of(r.instance, r.frame) for r in refs]


def shadow_job(
    ctx: JobContext,
    results: ReadingResults,
    shadow: ShadowModels,
    model_id: str,
    refs: Sequence[SliceRef],
    frames: Sequence[Frame | None],
    shown: dict[str, Any],
) -> dict[str, Any]:
    """Run the shadow candidate on the images of a shown result and record it (worker thread;
    after the shown result reached the screen, so the radiologist never waits for it)."""
    if ctx.cancelled:
        raise JobCancelled()
    ready = _decoded(ctx, refs, frames)
    item = shadow.run(
        model_id,
        ready,
        _input_refs(refs),
        shown,
        cancel=ctx.cancel_event.is_set,
        instances=[r.instance for r in refs],  # the population check reads their headers
    )
    results.record_shadow(item)
    return item


def _model_input_size(manager: ModelManager, model_id: str) -> tuple[int, int] | None:
    """What the model resizes a frame to (None: it needs every pixel, or it is refused: the run
    says why)."""
    from models.preprocess import decode_size

    try:
        return decode_size(manager.package(model_id).manifest.input)
    except Exception:  # noqa: BLE001 - a refused or unknown model: run_model reports it
        return None


def inference_job(
    ctx: JobContext,
    results: ReadingResults,
    manager: ModelManager,
    model_id: str,
    refs: Sequence[SliceRef],
    frames: Sequence[Frame | None],
    cache: PredictionCache[InferenceResult] | None = None,
    batch_size: int = 16,
) -> RunOutput:
    """Decode what is missing, run the model batch by batch and record the run (store, audit,
    upstream: core.app.model_runs), all in a worker thread."""
    if ctx.cancelled:
        raise JobCancelled()
    ctx.report((DECODING if any(f is None for f in frames) else RUNNING, 0, len(refs)))
    ready = _decoded(ctx, refs, frames, report=True, target=_model_input_size(manager, model_id))
    ctx.report((RUNNING, 0, len(refs)))
    inputs = _input_refs(refs)
    result = run_model(
        results,
        manager,
        model_id,
        ready,
        inputs,
        batch_size=batch_size,
        cancel=ctx.cancel_event.is_set,
        # run_images counts batches; the queue shows images ("24/24", not "2/2")
        progress=lambda done, _batches: ctx.report(
            (RUNNING, min(done * batch_size, len(refs)), len(refs))
        ),
        cache=cache,
        instances=[r.instance for r in refs],  # the intended-population check reads them
        scope=f"{len(refs)} image(s)",
    )
    return RunOutput(result, display_maps(result))


@dataclass
class QueueRow:
    """One run in the visible queue."""

    row_id: int
    model_id: str
    scope: str  # "slice 12" / "series (40 images)"
    series_uid: str
    slice_indices: list[int]
    state: str = QUEUED
    done: int = 0
    total: int = 0
    message: str = ""
    batch: int = 0  # images per model call (progress_batch)
    refused: bool = False  # a guard refused the run (message: why); nothing ran
    result: InferenceResult | None = None
    maps: list[npt.NDArray[np.uint8]] | None = field(default=None, repr=False)
    job: Job | None = field(default=None, repr=False)
    # what the run saw, kept until a shadow candidate (if any) has been started on it
    sources: tuple[list[SliceRef], list[Frame | None]] | None = field(default=None, repr=False)

    @property
    def finished(self) -> bool:
        return self.state in (DONE, FAILED, CANCELLED)


class InferenceQueue(QObject):
    """Submits runs to the JobRunner and keeps their rows; every change is a signal."""

    changed = Signal()  # some row changed (state, progress)
    result_ready = Signal(object)  # QueueRow whose result just arrived
    failed = Signal(object)  # QueueRow that failed (message set)

    def __init__(
        self,
        runner: JobRunner,
        results: ReadingResults,
        cache: PredictionCache[InferenceResult] | None = None,
        batch_size: int = 16,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.runner = runner
        self.results = results
        self.cache = cache
        self.batch_size = batch_size
        self.speed: dict[str, float] = {}  # model id -> measured ms per image (last run)
        self.rows: list[QueueRow] = []
        self._ids = itertools.count(1)

    def submit(
        self,
        manager: ModelManager,
        model_id: str,
        series_uid: str,
        slice_indices: list[int],
        refs: Sequence[SliceRef],
        frames: Sequence[Frame | None],
        scope: str,
    ) -> QueueRow:
        row = QueueRow(next(self._ids), model_id, scope, series_uid, list(slice_indices))
        row.total = len(refs)
        row.batch = progress_batch(self.speed.get(model_id), self.batch_size)
        row.sources = (list(refs), list(frames))
        self.rows.append(row)

        def progress(value: Any) -> None:
            row.state, row.done, row.total = value
            self.changed.emit()

        def result(value: RunOutput) -> None:
            measured = ms_per_image(value.result)
            if measured is not None:
                self.speed[model_id] = measured
            row.result, row.maps, row.state, row.done = value.result, value.maps, DONE, row.total
            row.message = "; ".join(value.result.warnings)
            self.changed.emit()
            self.result_ready.emit(row)

        def error(exc: BaseException) -> None:
            row.refused = isinstance(exc, ModelRefusedError)
            # a refusal's own message says what and why; other errors name their type
            message = str(exc) if row.refused else f"{type(exc).__name__}: {exc}"
            row.state, row.message, row.sources = FAILED, message, None
            self.changed.emit()
            self.failed.emit(row)

        def finished(job: Job) -> None:
            if job.cancelled and not row.finished:
                row.state, row.sources = CANCELLED, None
            self.changed.emit()

        row.job = self.runner.start(
            f"AI model '{model_id}' on {scope}",
            inference_job,
            self.results,
            manager,
            model_id,
            list(refs),
            list(frames),
            self.cache,
            row.batch,
            on_progress=progress,
            on_result=result,
            on_error=error,
            on_finished=finished,
        )
        self.changed.emit()
        return row

    def cancel(self, row_id: int) -> None:
        for row in self.rows:
            if row.row_id == row_id and row.job is not None and not row.finished:
                row.job.cancel()
                row.state = CANCELLED
        self.changed.emit()

    def cancel_all(self) -> None:
        for row in self.rows:
            if row.job is not None and not row.finished:
                row.job.cancel()
                row.state = CANCELLED
        self.changed.emit()

    def active(self) -> list[QueueRow]:
        return [r for r in self.rows if not r.finished]

    def clear_finished(self) -> None:
        self.rows = [r for r in self.rows if not r.finished]
        self.changed.emit()
