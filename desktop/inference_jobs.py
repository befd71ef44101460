"""Model runs as background jobs, and the queue of them the user sees and can cancel.

Each run is one ``JobRunner`` job (the viewer's job shape) that also records the run (core.app:
store, audit, upstream), so no database transaction happens on the GUI thread. Progress per
batch, result, error and cancellation arrive as queued signals on the GUI thread. Slices the
viewer has not decoded yet are decoded in the job; the GUI never waits on a model.
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
from core.inference.manager import ModelManager
from core.inference.result import InferenceResult, InputRef
from core.inference.shadow import ShadowModels
from desktop.workers import Job, JobContext, JobRunner

QUEUED, RUNNING, DONE, FAILED, CANCELLED = "queued", "running", "done", "failed", "cancelled"


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
    ctx: JobContext, refs: Sequence[SliceRef], frames: Sequence[Frame | None]
) -> list[Frame]:
    from core.imaging.volume import load_slice

    ready: list[Frame] = []
    for ref, frame in zip(refs, frames, strict=True):
        if ctx.cancelled:
            raise JobCancelled()
        loaded = frame if frame is not None else load_slice(ref.instance, ref.frame)
        assert loaded is not None  # want_frame=True always returns a frame
        ready.append(loaded)
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
    item = shadow.run(model_id, ready, _input_refs(refs), shown, cancel=ctx.cancel_event.is_set)
    results.record_shadow(item)
    return item


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
    ctx.report((RUNNING, 0, len(refs)))
    ready = _decoded(ctx, refs, frames)
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
        row.sources = (list(refs), list(frames))
        self.rows.append(row)

        def progress(value: Any) -> None:
            row.state, row.done, row.total = value
            self.changed.emit()

        def result(value: RunOutput) -> None:
            row.result, row.maps, row.state, row.done = value.result, value.maps, DONE, row.total
            row.message = "; ".join(value.result.warnings)
            self.changed.emit()
            self.result_ready.emit(row)

        def error(exc: BaseException) -> None:
            row.state, row.message, row.sources = FAILED, f"{type(exc).__name__}: {exc}", None
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
            self.batch_size,
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
