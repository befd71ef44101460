"""Guards that could be walked around (issue 18 review): a refusing manifest and an image with
no usable header (the shared adult CR saved as PNG), a NaN out-of-distribution score, and a
shadow candidate run without its self-test or its population check. Real zoo packages."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from core.app.model_runs import PopulationRefusedError, run_model
from core.app.results import SessionResults, StoredResults
from core.app.workstation import Workstation
from core.audit.vocabulary import EventType, Outcome
from core.imaging.display import render
from core.imaging.index import build_index
from core.imaging.model import Instance
from core.imaging.pixels import read_frame
from core.inference import ood_guard
from core.inference.applicability import check_instances
from core.inference.manager import ModelManager, ModelRefusedError, SelftestRefusedError
from core.inference.result import InputRef
from core.inference.shadow import ShadowModels
from core.security.users import Role
from models.discovery import ZOO_DIR
from models.manifest import load_package, sha256_file

REPO = Path(__file__).resolve().parents[2]
CR = REPO / "resources" / "sample" / "chest_cr" / "RG1_J2KI.dcm"
CHEST = "chest-xray-pneumonia"
PASSWORD = "correct horse battery"


def _copy(tmp_path: Path, new_id: str, version: str | None = None, **population: Any) -> Path:
    """The zoo's chest package under another id (and version), its population changed
    (manifest.json is not among the hashed files: the copy verifies)."""
    folder = tmp_path / f"{new_id}-{version or 'x'}"
    shutil.copytree(ZOO_DIR / CHEST, folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["id"] = new_id
    if version:
        manifest["version"] = version
    manifest["population"] = {**manifest["population"], **population}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def _indexed(*paths: Path) -> tuple[list[Any], list[InputRef], list[Instance]]:
    index = build_index([str(p) for p in paths])
    assert not index.errors, index.errors
    instances = [i for _p, _s, series in index.iter_series() for i in series.instances]
    return [read_frame(i, 0) for i in instances], [InputRef.of(i, 0) for i in instances], instances


@pytest.fixture(scope="module")
def cr_png(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The adult CR as a radiologist's export would be: a PNG, no header at all."""
    (frame,), _refs, _inst = _indexed(CR)
    png = tmp_path_factory.mktemp("png") / "chest.png"
    Image.fromarray(render(frame)).save(png)
    return png


@pytest.fixture
def ws(tmp_path: Path) -> Iterator[Workstation]:
    workstation = Workstation.open(tmp_path / "ws.db")
    workstation.users.create_user("admin", PASSWORD, Role.ADMIN, by="system")
    workstation.users.create_user("dr-a", PASSWORD, Role.RADIOLOGIST, by="admin")
    workstation.session.login("dr-a", PASSWORD)
    yield workstation
    workstation.close()


def _runs(ws: Workstation) -> list[Any]:
    return [e for e in ws.audit.iter_events() if e.event_type == EventType.MODEL_RUN]


# --- a refusing manifest and inputs without a usable header ----------------------------------
def test_a_png_through_a_refusing_manifest_is_refused_and_audited(
    ws: Workstation, tmp_path: Path, cr_png: Path
) -> None:
    frames, refs, instances = _indexed(cr_png)
    assert instances[0].is_plain_image
    package = load_package(_copy(tmp_path, "chest-refuse", on_mismatch="refuse"))
    assert package.manifest.population is not None
    assert package.manifest.population.on_unknown is None  # unset: follows on_mismatch
    manager = ModelManager([package], device="cpu")
    try:
        with pytest.raises(PopulationRefusedError) as caught:
            run_model(StoredResults(ws), manager, package.id, frames, refs, instances=instances)
    finally:
        manager.shutdown()
    message = str(caught.value)
    assert message.startswith(
        "model 'chest-refuse' is not run: the images could not be checked against its intended "
        "population, and its manifest says to refuse them"
    )
    assert "the image is not a DICOM file, so it has no header" in message
    (event,) = _runs(ws)
    assert (event.outcome, event.details["refused"]) == (Outcome.MINOR_FAILURE, "population")
    assert event.details["guards"][0]["refused"] is True


def test_on_unknown_warn_runs_the_png_with_the_soft_flag(tmp_path: Path, cr_png: Path) -> None:
    frames, refs, instances = _indexed(cr_png)
    package = load_package(
        _copy(tmp_path, "chest-refuse-warn", on_mismatch="refuse", on_unknown="warn")
    )
    manager = ModelManager([package], device="cpu")
    try:
        result = run_model(SessionResults(), manager, package.id, frames, refs, instances=instances)
    finally:
        manager.shutdown()
    (flag,) = [g for g in result.guards if g.kind == "population"]
    assert flag.message.startswith("intended population could not be checked: the image is not")
    assert not flag.refused
    assert flag.details == {"outside": False, "on_mismatch": "refuse", "on_unknown": "warn"}
    assert result.decisions  # it ran


def test_refusing_manifests_refuse_what_their_headers_cannot_tell(tmp_path: Path) -> None:
    """A header without the attribute, and a caller that gives no headers (instances=None)."""
    import pydicom

    ds = pydicom.dcmread(CR)
    del ds.PatientBirthDate
    copy = tmp_path / "no-age.dcm"
    ds.save_as(copy)
    _frames, _refs, instances = _indexed(copy)
    refusing = load_package(_copy(tmp_path, "chest-r", on_mismatch="refuse")).manifest.population
    warning = load_package(_copy(tmp_path, "chest-w")).manifest.population
    (flag,) = check_instances(refusing, instances, 1)
    assert "the header lacks patient age" in flag.message
    assert flag.refused
    (flag,) = check_instances(refusing, None, 2)
    assert (flag.images, flag.refused) == ([0, 1], True)
    # the shipped "warn" manifests keep their soft flag
    (flag,) = check_instances(warning, None, 1)
    assert not flag.refused


# --- out-of-distribution scores that cannot be computed -----------------------------------
def test_a_nan_ood_score_is_flagged_not_taken_as_in_distribution() -> None:
    package = load_package(ZOO_DIR / CHEST)
    ref = ood_guard.reference(package)
    assert ref.means is not None
    inside = np.asarray(ref.means[:1], dtype=np.float32)  # a class mean: score 0, in
    assert ood_guard.check(package, inside) is None
    features = np.repeat(inside, 3, axis=0)
    features[1, 0] = np.nan
    features[2, 3] = np.inf
    flag = ood_guard.check(package, features)
    assert flag is not None
    assert flag.images == [1, 2]
    assert flag.message == (
        f"the OOD score of image 2, image 3 could not be computed (NaN or inf): whether they are "
        f"like the training data of {CHEST} is unknown"
    )
    assert flag.details["scores"][0] == 0.0
    assert flag.details["scores"][1:] == [None, None]
    json.dumps(flag.details, allow_nan=False)  # fit for the audit event and the wire


# --- shadow candidates get the same guards -------------------------------------------------
def _drift_selftest(folder: Path) -> None:
    """Change the package's expected self-test answer (its hash updated: it still verifies,
    its model no longer gives its own answer)."""
    manifest = json.loads((folder / "manifest.json").read_text())
    rel = manifest["selftest"]["expected"]
    path = folder / rel
    np.save(path, np.abs(np.load(path) - 0.5))
    manifest["files"][rel] = sha256_file(path)
    (folder / "manifest.json").write_text(json.dumps(manifest))


def test_a_shadow_candidate_whose_selftest_fails_sends_nothing_up(tmp_path: Path) -> None:
    frames, refs, instances = _indexed(CR)
    folder = _copy(tmp_path, CHEST, version="9.2.0")
    _drift_selftest(folder)
    shadow = ShadowModels.from_dirs([(folder, 3)], device="cpu")
    shown = {"result_id": "r1", "labels": [], "decisions": [], "model": {"version": "1"}}
    try:
        with pytest.raises(SelftestRefusedError, match="its self-test failed"):
            shadow.run(CHEST, frames, refs, shown, instances=instances)
    finally:
        shadow.shutdown()


def test_a_shadow_candidate_refuses_a_population_its_manifest_refuses(tmp_path: Path) -> None:
    frames, refs, instances = _indexed(CR)
    folder = _copy(tmp_path, CHEST, version="9.3.0", on_mismatch="refuse")
    shadow = ShadowModels.from_dirs([(folder, 4)], device="cpu")
    shown = {"result_id": "r1", "labels": [], "decisions": [], "model": {"version": "1"}}
    try:
        with pytest.raises(ModelRefusedError) as caught:
            shadow.run(CHEST, frames, refs, shown, instances=instances)
        assert caught.value.kind == "population"
        assert "patient age 64 y is outside" in str(caught.value)
        # the same candidate with a warning manifest: it runs, its guards in the item's summary
        warn = _copy(tmp_path, CHEST, version="9.3.1")
        item = ShadowModels.from_dirs([(warn, 5)], device="cpu").run(
            CHEST, frames, refs, shown, instances=instances
        )
        kinds = [g["kind"] for g in item["summary"]["guards"]]
        assert "population" in kinds
        assert {"kind": "population", "images": [0]} in item["summary"]["guards"]
        assert "64" not in json.dumps(item["summary"]["guards"])  # no header values upstream
    finally:
        shadow.shutdown()
