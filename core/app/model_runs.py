"""Use case: run a model on images and record the run (store, audit, upstream) in one step.

The window's inference jobs and ``doctorai infer`` both call ``run_model``, so a run from
either front end gives the same Model Run event naming the same patient, study, series and
instances. It runs on the caller's thread: a worker in the window, the main thread in the CLI.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from core.app.results import ReadingResults
from core.app.workstation import Workstation
from core.audit.events import Participants
from core.audit.vocabulary import EventType
from core.inference.cache import PredictionCache
from core.inference.manager import ModelManager
from core.inference.pipeline import Cancel, Progress, run_images
from core.inference.result import InferenceResult, InputRef
from core.security.users import Permission


def run_model(
    results: ReadingResults,
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
    **details: Any,
) -> InferenceResult:
    """Check the actor may run models, run, then record the result (raises if it cannot be
    recorded: a result that is not kept must not be shown as if it were)."""
    results.check_run()
    result = run_images(
        manager,
        model_id,
        images,
        inputs,
        heatmap=heatmap,
        batch_size=batch_size,
        cancel=cancel,
        progress=progress,
        cache=cache,
    )
    results.record(result.to_json(), **details)
    return result


def record_text_run(
    ws: Workstation, model_id: str, version: str, n_texts: int, **details: Any
) -> None:
    """A text model (the report drafter) read ``n_texts`` findings texts: no patient objects,
    the texts stay out of the trail."""
    ws.require(Permission.RUN_AI)
    ws.record(
        EventType.MODEL_RUN,
        Participants().add("model", f"{model_id}@{version}"),
        texts=n_texts,
        **details,
    )
