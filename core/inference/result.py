"""What one model run produced, with the provenance a reviewer or an auditor needs."""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt

from core import __version__
from core.imaging.model import Instance


@dataclass(frozen=True)
class InputRef:
    """One image the model saw: the instance and the frame within it."""

    sop_instance_uid: str
    frame: int = 0
    study_instance_uid: str = ""
    series_instance_uid: str = ""
    patient_id: str = ""  # stays in the encrypted store and its audit event; never upstream

    @classmethod
    def of(cls, instance: Instance, frame: int = 0) -> InputRef:
        """The reference to ``frame`` of ``instance`` with the patient, study and series it
        belongs to (what the Model Run audit event names)."""
        return cls(
            instance.sop_instance_uid,
            frame,
            instance.study_instance_uid,
            instance.series_instance_uid,
            instance.patient_id,
        )


@dataclass
class Provenance:
    model_id: str
    model_version: str
    package_hash: str
    framework: str
    device: str
    inputs: list[InputRef]
    timings_ms: dict[str, float]
    cache_hit: bool = False
    app_version: str = __version__
    created_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())


@dataclass
class GuardFlag:
    """A reason to doubt a result, shown beside it, stored with it and named in its audit event.

    ``kind``: "population" (the header is outside the manifest's intended population), "ood"
    (the image is unlike the model's training data), "unvalidated" (the model has neither an
    OOD reference nor an intended population), "selftest", "verification". ``images``: indices
    into the result's inputs the flag is about; None = the whole run."""

    kind: str
    message: str
    images: list[int] | None = None
    refused: bool = False  # the run did not happen because of it
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class InferenceResult:
    """Per-image scores and decisions; ``heatmaps`` are (N, h, w) in [0, 1] at frame size."""

    labels: list[str]
    probabilities: npt.NDArray[np.float32]  # (N, len(labels)) calibrated
    decisions: list[str]  # thresholded label per image
    thresholds: dict[str, float]
    provenance: Provenance
    demo_notice: str | None = None
    warnings: list[str] = field(default_factory=list)
    heatmaps: npt.NDArray[np.float32] | None = None
    raw_heatmaps: npt.NDArray[np.float32] | None = None  # (N, h, w) at model input size
    texts: list[str] | None = None  # text-generation models
    guards: list[GuardFlag] = field(default_factory=list)
    masks: npt.NDArray[np.uint8] | None = None  # segmentation: (N, h, w) label map at frame size
    result_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    def scores(self, index: int = 0) -> dict[str, float]:
        return {
            label: float(p) for label, p in zip(self.labels, self.probabilities[index], strict=True)
        }

    def to_json(self) -> dict[str, Any]:
        """JSON-able form for the results store, sync and ``doctorai infer --json``."""
        prov = asdict(self.provenance)
        return {
            "result_id": self.result_id,
            "model": {"id": prov.pop("model_id"), "version": prov.pop("model_version")},
            "labels": self.labels,
            "scores": [self.scores(i) for i in range(len(self.decisions))],
            "decisions": self.decisions,
            "thresholds": self.thresholds,
            "texts": self.texts,
            "demo_notice": self.demo_notice,
            "warnings": self.warnings,
            "guards": [asdict(g) for g in self.guards],
            "has_mask": self.masks is not None,
            "has_heatmap": self.heatmaps is not None,
            "provenance": prov,
        }
