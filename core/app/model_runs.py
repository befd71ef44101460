"""Use case: run a model on images and record the run (store, audit, upstream) in one step.

The window's inference jobs and ``doctorai infer`` both call ``run_model``, so a run from
either front end gives the same Model Run event naming the same patient, study, series and
instances. It runs on the caller's thread: a worker in the window, the main thread in the CLI.

Before the run, the guards (issue 18): a model whose signed update fails verification or whose
self-test failed is refused (``ModelRefusedError``), and so is a run outside the manifest's
intended population when the manifest says "refuse"; otherwise population flags travel with
the result (``result.guards``), into its stored JSON and its audit event, and so does an
"unvalidated" flag when the manifest has neither an OOD reference nor a population. A refused run is
audited too (Model Run, outcome "minor failure", the reason), then raised for the caller to say.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from core.app.results import ReadingResults, StoredResults, input_participants
from core.app.workstation import Workstation
from core.audit.events import Participants
from core.audit.vocabulary import EventType, Outcome
from core.imaging.model import Instance
from core.inference.applicability import check_instances
from core.inference.cache import PredictionCache
from core.inference.manager import ModelManager, ModelRefusedError
from core.inference.pipeline import Cancel, Progress, run_images
from core.inference.result import GuardFlag, InferenceResult, InputRef
from core.security.users import Permission
from models.manifest import ModelPackage

#: The flag every result of a model with neither guard carries (an imported model, typically):
#: nothing about its inputs was checked, and the reader must know that.
UNVALIDATED_MESSAGE = (
    "this model has no out-of-distribution reference and no intended population: "
    "its results are not checked against either"
)


def unvalidated_flags(package: ModelPackage) -> list[GuardFlag]:
    """``[GuardFlag("unvalidated")]`` for a model whose manifest has no ``ood`` section and no
    ``population`` (no check can flag its inputs), else none."""
    manifest = package.manifest
    if manifest.ood is not None or manifest.population is not None:
        return []
    return [GuardFlag("unvalidated", UNVALIDATED_MESSAGE)]


class PopulationRefusedError(ModelRefusedError):
    """The inputs are outside the model's intended population and its manifest says refuse."""

    def __init__(self, model_id: str, flags: list[GuardFlag]) -> None:
        refused = [f for f in flags if f.refused]
        reasons = "; ".join(f.message for f in refused)
        outside = {bool(f.details.get("outside", True)) for f in refused}
        # a header that cannot tell: a refusing manifest refuses what cannot be checked too
        why = {
            frozenset({True}): "the images are outside its intended population",
            frozenset({False}): "the images could not be checked against its intended population",
        }.get(
            frozenset(outside),
            "the images are outside its intended population or could not be checked against it",
        )
        super().__init__(
            model_id,
            "population",
            f"{why}, and its manifest says to refuse them ({reasons})",
            "Choose a model made for these images",
        )
        self.flags = flags


def audit_guards(flags: Sequence[GuardFlag]) -> list[dict[str, Any]]:
    """What the audit event says of each flag: kind, message, images, refused (no details:
    those may hold header values the message does not need)."""
    return [
        {"kind": f.kind, "message": f.message, "images": f.images, "refused": f.refused}
        for f in flags
    ]


def audit_refusal(
    results: ReadingResults,
    error: ModelRefusedError,
    inputs: Sequence[InputRef],
    version: str = "",
    flags: Sequence[GuardFlag] = (),
    **details: Any,
) -> None:
    """A Model Run that did not happen, in the trail: who, on which patient's images, which
    model, and why not. A window without a profile has no trail (``SessionResults``)."""
    if not isinstance(results, StoredResults):
        return
    participants = input_participants([asdict(ref) for ref in inputs])
    participants.add("model", f"{error.model_id}@{version}" if version else error.model_id)
    shown = list(flags) or [GuardFlag(error.kind, error.message, refused=True)]
    results.ws.record(
        EventType.MODEL_RUN,
        participants,
        Outcome.MINOR_FAILURE,
        refused=error.kind,
        reason=error.message,
        guards=audit_guards(shown),
        **details,
    )


def record_refused_updates(ws: Workstation, manager: ModelManager) -> int:
    """A Security Alert per model blocked because its installed signed update no longer
    verifies (a file changed on disk after install): said once when the models are found
    (the window's start-up job, ``doctorai selftest``), besides every refused run. Returns
    how many were recorded."""
    refused = manager.refused_models()
    for model_id in sorted(manager.blocked):
        error = manager.blocked[model_id]
        ws.record(
            EventType.SECURITY_ALERT,
            Participants().add("model", model_id),
            Outcome.SERIOUS_FAILURE,
            source="model verification",
            file=error.where,
            message=refused[model_id].message,
        )
    return len(manager.blocked)


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
    instances: Sequence[Instance | None] | None = None,
    **details: Any,
) -> InferenceResult:
    """Check the actor may run models and the guards, run, then record the result (raises if
    it cannot be recorded: a result that is not kept must not be shown as if it were).

    ``instances``: the indexed instance of each input (None for one without a header), for the
    intended-population check; without them every input is flagged "could not be checked".
    Raises ``ModelRefusedError`` (audited) when a guard refuses the run."""
    results.check_run()
    version = ""
    try:
        package = manager.package(model_id)  # a refused signed update raises here
        version = package.version
        manager.ensure_selftest(model_id)
        flags = check_instances(package.manifest.population, instances, len(inputs))
        if any(f.refused for f in flags):
            raise PopulationRefusedError(model_id, flags)
    except ModelRefusedError as exc:
        audit_refusal(results, exc, inputs, version, getattr(exc, "flags", ()), **details)
        raise
    if package.manifest.task == "segmentation":
        from core.inference.segment import run_segmentation

        run = run_segmentation
    else:
        run = run_images
    result = run(
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
    # new lists, not appends: a cached result shares its lists with the cache entry, and the
    # flags belong to this run's headers, not to the pixels the cache is keyed on
    result.guards = [*result.guards, *flags, *unvalidated_flags(package)]
    result.warnings = [
        *result.warnings,
        *(w for w in manager.warnings(model_id) if w not in result.warnings),
    ]
    if result.guards:
        details["guards"] = audit_guards(result.guards)
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
