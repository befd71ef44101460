"""Shared, module-scoped access to the shipped zoo packages (loading a model costs seconds)."""

from __future__ import annotations

from pathlib import Path

import pytest

from models.adapters import load_model
from models.adapters.base import LoadedModel
from models.manifest import ModelPackage, load_package

ZOO = Path(__file__).resolve().parents[2] / "models" / "zoo"
IMAGE_MODELS = [
    "chest-xray-pneumonia",
    "breast-ultrasound",
    "brain-tumour-mri",
    "lung-colon-histopathology",
    "skin-lesion",
]
ALL_MODELS = [*IMAGE_MODELS, "tabular-breast-cancer"]

_LOADED: dict[str, tuple[ModelPackage, LoadedModel]] = {}


@pytest.fixture(scope="session")
def zoo_model() -> object:
    """``zoo_model(id) -> (package, loaded model on CPU)``, each loaded once per session."""

    def get(model_id: str) -> tuple[ModelPackage, LoadedModel]:
        if model_id not in _LOADED:
            package = load_package(ZOO / model_id)
            _LOADED[model_id] = (package, load_model(package, "cpu"))
        return _LOADED[model_id]

    return get
