"""The zoo classifiers exported to ONNX once per test session (an export costs seconds)."""

from __future__ import annotations

from pathlib import Path

import pytest

from models.manifest import ModelPackage
from models.training.export_onnx import ExportResult, export_package
from tests.models.conftest import ZOO

EXPORTABLE = [
    "chest-xray-pneumonia",
    "breast-ultrasound",
    "lung-colon-histopathology",
    "brain-tumour-mri",
    "skin-lesion",
]
_DONE: dict[str, ExportResult] = {}


def exported(model_id: str, factory: pytest.TempPathFactory) -> ModelPackage:
    """The ONNX package of zoo model ``model_id``, exported into a session temp folder."""
    if model_id not in _DONE:
        out: Path = factory.mktemp("onnx") / model_id
        _DONE[model_id] = export_package(ZOO / model_id, out)
    return _DONE[model_id].package


def export_result(model_id: str, factory: pytest.TempPathFactory) -> ExportResult:
    exported(model_id, factory)
    return _DONE[model_id]
