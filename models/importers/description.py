"""The description an ONNX file comes with (``model.yaml`` or ``.json`` beside it, or
``--describe FILE``): what the graph alone cannot say, in the manifest's own vocabulary.

Example (YAML)::

    id: hospital-chest-pneumonia
    name: Chest pneumonia classifier (hospital)
    version: 1.0.0
    task: classification
    labels: [normal, pneumonia]
    positive_label: pneumonia
    threshold: 0.4            # the positive label's; or thresholds: {pneumonia: 0.4}
    activation: softmax       # softmax | sigmoid | none (applied to the graph's output)
    modalities: [CR, DX]
    body_parts: [CHEST]
    input:
      size: [28, 28]
      layout: NCHW
      channels: 1
      color: grayscale
      preprocessing:
        - {op: auto_window, low_percentile: 0.5, high_percentile: 99.5}
        - {op: resize, size: [28, 28]}
    intended_use: Flags frontal chest radiographs for a second look.
    training_data: 4,708 paediatric radiographs (site X, 2024)
    population: {age_years: [1, 5], on_mismatch: warn}   # optional
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from models.importers.errors import ModelImportError, read_config
from models.importers.validation_text import describe_errors
from models.manifest import Calibration, InputSpec, Population

DESCRIPTION_NAMES = ("model.yaml", "model.yml", "model.json")


class Description(BaseModel):
    """The sidecar's fields; anything unknown is refused (a typo must not pass silently)."""

    model_config = ConfigDict(extra="forbid")

    id: str
    name: str
    version: str
    task: Literal["classification", "segmentation"]
    labels: list[str] = Field(min_length=1)
    positive_label: str | None = None
    threshold: float | None = Field(default=None, ge=0, le=1)
    thresholds: dict[str, float] = Field(default_factory=dict)
    activation: Literal["softmax", "sigmoid", "none"] = "softmax"
    calibration: Calibration | None = None
    modalities: list[str] = Field(min_length=1)
    body_parts: list[str] = Field(default_factory=list)
    input: InputSpec
    intended_use: str
    training_data: str
    population: Population | None = None
    demo_only: bool = False


def find_description(model_file: Path, describe: Path | None) -> Path:
    """``describe``, else ``<name>.yaml|.yml|.json`` or ``model.yaml|.yml|.json`` beside it."""
    if describe is not None:
        return describe
    stem = model_file.with_suffix("")
    candidates = [stem.with_suffix(s) for s in (".yaml", ".yml", ".json")]
    candidates += [model_file.parent / name for name in DESCRIPTION_NAMES]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise ModelImportError(
        model_file,
        "description",
        f"no description found (looked for {', '.join(c.name for c in candidates)} beside "
        "it): write one with its labels, input and preprocessing, or give --describe FILE",
    )


def read_description(path: Path) -> Description:
    """Parse and check the description file; errors name the file and the field."""
    raw = read_config(path)
    try:
        desc = Description.model_validate(raw)
    except ValidationError as exc:
        raise ModelImportError(path, "description", describe_errors(Description, exc)) from exc
    if desc.input.kind != "image":
        raise ModelImportError(path, "input.kind", "only image models can be imported")
    if desc.threshold is not None and desc.positive_label is None:
        raise ModelImportError(path, "threshold", "needs positive_label (whose threshold)")
    return desc


def manifest_fields(desc: Description) -> dict[str, Any]:
    """The manifest's fields that the description gives (all but framework, weights, files)."""
    thresholds = dict(desc.thresholds)
    if desc.threshold is not None and desc.positive_label is not None:
        thresholds[desc.positive_label] = desc.threshold
    output: dict[str, Any] = {
        "labels": desc.labels,
        "positive_label": desc.positive_label,
        "thresholds": thresholds,
        "activation": desc.activation,
    }
    if desc.calibration is not None and desc.calibration.method != "none":
        output |= {"calibrated": True, "calibration": desc.calibration.model_dump()}
    fields: dict[str, Any] = {
        "id": desc.id,
        "name": desc.name,
        "version": desc.version,
        "task": desc.task,
        "modalities": desc.modalities,
        "body_parts": desc.body_parts,
        "input": desc.input.model_dump(mode="json"),
        "output": output,
        "intended_use": desc.intended_use,
        "training_data": desc.training_data,
        "demo_only": desc.demo_only,
    }
    if desc.population is not None:
        fields["population"] = desc.population.model_dump(mode="json")
    return fields
