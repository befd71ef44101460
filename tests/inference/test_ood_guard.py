"""The out-of-distribution flag on results: real zoo models on real MR and on their own data."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from core.inference.cache import PredictionCache
from core.inference.manager import ModelManager
from core.inference.pipeline import run_images
from core.inference.result import InferenceResult, InputRef
from models.adapters import load_model
from models.adapters.base import LoadedModel
from models.discovery import ZOO_DIR
from models.evaluate import load_reference_data
from models.manifest import MANIFEST_NAME, load_package, write_manifest

BRAIN = "brain-tumour-mri"
MR = Path("plotly__dash-vtk") / "demos" / "data" / "mri_brain"


def _decode(path: Path) -> Any:
    from core.imaging.header import read_header
    from core.imaging.pixels import read_frame

    return read_frame(read_header(str(path), require_uids=False).instance)


@pytest.fixture(scope="module")
def brain_manager() -> Any:
    manager = ModelManager([load_package(ZOO_DIR / BRAIN)], device="cpu")
    yield manager
    manager.shutdown()


@pytest.fixture
def real_mr(dicom_data: Path) -> list[Any]:
    paths = sorted((dicom_data / MR).glob("*.dcm"))
    if len(paths) < 8:
        pytest.skip(f"the shared real MR series is not at '{dicom_data / MR}'")
    return [_decode(p) for p in paths]


def _refs(n: int) -> list[InputRef]:
    return [InputRef(f"1.2.826.0.1.{i}", 0) for i in range(n)]


def test_phantom_trained_brain_model_flags_the_real_mr(
    brain_manager: ModelManager, real_mr: list[Any]
) -> None:
    result = run_images(brain_manager, BRAIN, real_mr, _refs(len(real_mr)), heatmap=False)
    flags = [g for g in result.guards if g.kind == "ood"]
    assert len(flags) == 1
    flag = flags[0]
    assert flag.images is not None
    assert len(flag.images) >= 0.9 * len(real_mr)  # measured: every slice
    assert not flag.refused  # a warning beside the result, not a refusal
    assert BRAIN in flag.message
    assert "threshold" in flag.message
    scores = flag.details["scores"]
    assert len(scores) == len(real_mr)
    threshold = flag.details["threshold"]
    assert [i for i, s in enumerate(scores) if s > threshold] == flag.images
    text = json.dumps(result.to_json())  # JSON and the audit event carry it as it is
    assert '"kind": "ood"' in text


def test_own_validation_images_are_mostly_not_flagged(brain_manager: ModelManager) -> None:
    package = brain_manager.package(BRAIN)
    assert package.manifest.metrics is not None
    x_val, _ = load_reference_data(package.manifest.metrics.data_ref)
    images = list(x_val[:120])
    result = run_images(brain_manager, BRAIN, images, _refs(len(images)), heatmap=False)
    flagged = sum(len(g.images or []) for g in result.guards if g.kind == "ood")
    assert flagged <= 0.10 * len(images)


def test_single_image_message_and_cache_keeps_the_guard(
    brain_manager: ModelManager, real_mr: list[Any]
) -> None:
    cache: PredictionCache[InferenceResult] = PredictionCache(4)
    frame = real_mr[len(real_mr) // 2]
    first = run_images(brain_manager, BRAIN, [frame], _refs(1), cache=cache)
    assert [g.kind for g in first.guards] == ["ood"]
    assert first.guards[0].images == [0]
    assert first.guards[0].message.startswith("the image is unlike the training data of")
    second = run_images(brain_manager, BRAIN, [frame], _refs(1), cache=cache)
    assert second.provenance.cache_hit
    assert second.guards == first.guards
    second.guards[0].images = []  # one result's guard is not another's
    third = run_images(brain_manager, BRAIN, [frame], _refs(1), cache=cache)
    assert third.guards[0].images == [0]


def test_several_flagged_images_are_named_one_based(
    brain_manager: ModelManager, real_mr: list[Any]
) -> None:
    package = brain_manager.package(BRAIN)
    assert package.manifest.metrics is not None
    x_val, _ = load_reference_data(package.manifest.metrics.data_ref)
    images = [x_val[0], real_mr[10], x_val[1], real_mr[12]]
    result = run_images(brain_manager, BRAIN, images, _refs(4), heatmap=False)
    (flag,) = result.guards
    assert flag.images == [1, 3]
    assert flag.message.startswith("2 of 4 images are unlike the training data of brain-tumour-mri")
    assert "image 2 (" in flag.message
    assert "image 4 (" in flag.message


def test_a_package_without_ood_section_gets_no_flag(tmp_path: Path, real_mr: list[Any]) -> None:
    folder = tmp_path / BRAIN
    shutil.copytree(ZOO_DIR / BRAIN, folder)
    raw = json.loads((folder / MANIFEST_NAME).read_text())
    raw.pop("ood")
    raw.pop("files")
    (folder / "ood.npz").unlink()
    write_manifest(folder, raw)
    manager = ModelManager([load_package(folder)], device="cpu")
    try:
        result = run_images(manager, BRAIN, real_mr[:3], _refs(3), heatmap=False)
    finally:
        manager.shutdown()
    assert result.guards == []
    assert not any("out-of-distribution" in w for w in result.warnings)


class _NoFeatures(LoadedModel):
    """A real model behind an adapter that offers no features (as a third-party one may)."""

    def __init__(self, inner: LoadedModel) -> None:
        super().__init__(inner.package, inner.device)
        self.inner = inner

    def predict(self, batch: Any) -> Any:
        return self.inner.predict(batch)

    def memory_bytes(self) -> int:
        return self.inner.memory_bytes()


def test_an_adapter_without_features_says_the_check_was_not_made(real_mr: list[Any]) -> None:
    def loader(package: Any, device: str, **kwargs: Any) -> LoadedModel:
        return _NoFeatures(load_model(package, device, **kwargs))

    manager = ModelManager([load_package(ZOO_DIR / BRAIN)], device="cpu", loader=loader)
    try:
        result = run_images(manager, BRAIN, real_mr[:2], _refs(2), heatmap=False)
    finally:
        manager.shutdown()
    assert result.guards == []
    assert any("out-of-distribution check was not made" in w for w in result.warnings)
    assert np.all(np.isfinite(result.probabilities))


COLOUR = Path("pydicom__pydicom-data") / "data_store" / "data"


@pytest.mark.parametrize("model_id", ["skin-lesion", "lung-colon-histopathology"])
@pytest.mark.parametrize("name", ["US1_UNCR.dcm", "HTJ2KLossless_08_RGB.dcm"])
def test_phantom_trained_colour_models_flag_real_colour_images(
    dicom_data: Path, model_id: str, name: str
) -> None:
    """The other phantom-trained models on real RGB images (an ultrasound, a photograph)."""
    path = dicom_data / COLOUR / name
    if not path.is_file():
        pytest.skip(f"the shared colour DICOM is not at '{path}'")
    manager = ModelManager([load_package(ZOO_DIR / model_id)], device="cpu")
    try:
        result = run_images(manager, model_id, [_decode(path)], _refs(1), heatmap=False)
    finally:
        manager.shutdown()
    assert [(g.kind, g.images) for g in result.guards] == [("ood", [0])]
    assert model_id in result.guards[0].message
