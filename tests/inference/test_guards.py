"""The guards around ``run_model`` on a real encrypted profile and real zoo packages: the adult
chest CR through the paediatric model (flag on the result, in the stored JSON, in the audit
event), a manifest that refuses, a package whose self-test fails, and a signed update tampered
on disk after it was installed (the model is refused, not silently replaced by the zoo's)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from core.app.model_runs import PopulationRefusedError, run_model
from core.app.results import SessionResults, StoredResults
from core.app.workstation import Workstation
from core.audit.vocabulary import EventType, Outcome
from core.imaging.index import build_index
from core.imaging.model import Instance
from core.imaging.pixels import read_frame
from core.inference.catalog import load_catalog
from core.inference.manager import (
    ModelManager,
    SelftestRefusedError,
    UnknownModelError,
    UpdateRefusedError,
    manager_from_settings,
)
from core.inference.result import InputRef
from core.paths import profile_dir
from core.security.users import Role
from models.discovery import ZOO_DIR
from models.manifest import load_package

REPO = Path(__file__).resolve().parents[2]
CR = REPO / "resources" / "sample" / "chest_cr" / "RG1_J2KI.dcm"
CHEST = "chest-xray-pneumonia"
TABULAR = "tabular-breast-cancer"
PASSWORD = "correct horse battery"


@pytest.fixture
def ws(tmp_path: Path) -> Iterator[Workstation]:
    workstation = Workstation.open(tmp_path / "ws.db")
    workstation.users.create_user("admin", PASSWORD, Role.ADMIN, by="system")
    workstation.users.create_user("dr-a", PASSWORD, Role.RADIOLOGIST, by="admin")
    workstation.session.login("dr-a", PASSWORD)
    yield workstation
    workstation.close()


@pytest.fixture(scope="module")
def cr() -> tuple[list[Any], list[InputRef], list[Instance]]:
    index = build_index([str(CR)])
    instances = [i for _p, _s, series in index.iter_series() for i in series.instances]
    frames = [read_frame(i, 0) for i in instances]
    return frames, [InputRef.of(i, 0) for i in instances], instances


def _copy(tmp_path: Path, model_id: str, new_id: str, **population: Any) -> Path:
    """A copy of a zoo package under another id, its population changed (manifest.json is
    not among the hashed files, so the copy verifies)."""
    folder = tmp_path / new_id
    shutil.copytree(ZOO_DIR / model_id, folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["id"] = new_id
    manifest["population"] = {**manifest["population"], **population}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def _events(ws: Workstation, after: int = -1) -> list[Any]:
    return [
        e for e in ws.audit.iter_events() if e.event_type == EventType.MODEL_RUN and e.index > after
    ]


def test_population_flag_is_on_the_result_in_the_store_and_in_the_audit_event(
    ws: Workstation, cr: tuple[list[Any], list[InputRef], list[Instance]]
) -> None:
    frames, refs, instances = cr
    manager = ModelManager([load_package(ZOO_DIR / CHEST)], device="cpu")
    try:
        result = run_model(
            StoredResults(ws), manager, CHEST, frames, refs, instances=instances, command="t"
        )
    finally:
        manager.shutdown()
    # the retrained chest model's OOD check may flag the adult film too; the population flag
    # is the one this test is about
    (flag,) = [g for g in result.guards if g.kind == "population"]
    assert "patient age 64 y is outside this model's intended population 1-5 y" in flag.message
    assert flag.message in [g["message"] for g in result.to_json()["guards"]]
    stored = ws.results.get(result.result_id)
    assert flag.message in [g["message"] for g in stored.payload["guards"]]
    (event,) = _events(ws)
    assert event.outcome == Outcome.SUCCESS
    assert event.details["command"] == "t"
    assert {"kind": "population", "message": flag.message, "images": [0], "refused": False} in (
        event.details["guards"]
    )
    assert [g["kind"] for g in event.details["guards"]] == [g.kind for g in result.guards]
    assert ("patient", refs[0].patient_id) in [(o["kind"], o["id"]) for o in event.objects]
    # the result scores were computed all the same (warn, not refuse)
    assert np.isclose(result.probabilities.sum(), 1.0, atol=1e-5)


def test_a_manifest_that_refuses_stops_the_run_and_the_refusal_is_audited(
    ws: Workstation, tmp_path: Path, cr: tuple[list[Any], list[InputRef], list[Instance]]
) -> None:
    frames, refs, instances = cr
    package = load_package(_copy(tmp_path, CHEST, "chest-refuse", on_mismatch="refuse"))
    manager = ModelManager([package], device="cpu")
    try:
        with pytest.raises(PopulationRefusedError) as caught:
            run_model(
                StoredResults(ws),
                manager,
                package.id,
                frames,
                refs,
                instances=instances,
                command="t",
            )
    finally:
        manager.shutdown()
    error = caught.value
    assert error.kind == "population"
    assert "model 'chest-refuse' is not run" in str(error)
    assert "patient age 64 y is outside" in str(error)
    (event,) = _events(ws)
    assert event.outcome == Outcome.MINOR_FAILURE
    assert event.details["refused"] == "population"
    assert event.details["guards"][0]["refused"] is True
    kinds = {o["kind"]: o["id"] for o in event.objects}
    assert kinds["model"] == f"chest-refuse@{package.version}"
    assert kinds["instance"] == refs[0].sop_instance_uid
    assert ws.results.list_for_study(refs[0].study_instance_uid) == []  # no result kept


def _drift_selftest(folder: Path) -> tuple[Path, bytes]:
    """Change the expected answer of the package's self-test (hash updated: the package still
    verifies, its model no longer gives its own answer). Returns the file and its old bytes."""
    manifest = json.loads((folder / "manifest.json").read_text())
    rel = manifest["selftest"]["expected"]
    path = folder / rel
    before = path.read_bytes()
    expected = np.load(path)
    np.save(path, np.abs(expected - 0.5))
    from models.manifest import sha256_file

    manifest["files"][rel] = sha256_file(path)
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return path, before


def test_a_model_whose_selftest_fails_is_refused_until_it_passes_again(
    ws: Workstation, tmp_path: Path, cr: tuple[list[Any], list[InputRef], list[Instance]]
) -> None:
    frames, refs, instances = cr
    folder = _copy(tmp_path, CHEST, "chest-drifted")
    path, before = _drift_selftest(folder)
    manager = ModelManager([load_package(folder)], device="cpu")
    try:
        with pytest.raises(SelftestRefusedError) as caught:
            run_model(
                StoredResults(ws), manager, "chest-drifted", frames, refs, instances=instances
            )
        message = str(caught.value)
        assert message.startswith("model 'chest-drifted' is not run: its self-test failed (")
        assert "max abs diff" in message or "differ" in message or "expected" in message
        (event,) = _events(ws)
        assert (event.outcome, event.details["refused"]) == (Outcome.MINOR_FAILURE, "selftest")
        # the record stays: no run, no load, until someone runs the self-test again
        (row,) = manager.status()
        assert row.refused is not None
        assert row.refused.startswith("self-test failed")
        assert isinstance(manager.refusal("chest-drifted"), SelftestRefusedError)
        with pytest.raises(SelftestRefusedError), manager.use("chest-drifted"):
            pass
        # mended (the model's own answer back in place): a new self-test lets it run again
        path.write_bytes(before)
        assert manager.health_check("chest-drifted").ok
        assert manager.refusal("chest-drifted") is None
        result = run_model(SessionResults(), manager, "chest-drifted", frames, refs)
        assert result.decisions
    finally:
        manager.shutdown()


def test_the_selftest_runs_once_per_session_before_the_first_run(
    cr: tuple[list[Any], list[InputRef], list[Instance]],
) -> None:
    frames, refs, _instances = cr
    manager = ModelManager([load_package(ZOO_DIR / CHEST)], device="cpu")
    try:
        assert manager.status()[0].health is None  # nothing at start-up
        run_model(SessionResults(), manager, CHEST, frames, refs)
        first = manager.status()[0].health
        assert first is not None
        assert first.ok
        run_model(SessionResults(), manager, CHEST, frames, refs)
        assert manager.status()[0].health is first  # not again
        assert manager.load_count(CHEST) == 1
    finally:
        manager.shutdown()


def _install_tampered_update(profile: Path, model_id: str) -> Path:
    """``<profile>/models/ID/1.0.1`` as the store installs it (current pointer naming it,
    1.0.0 kept for rollback), then one byte appended to its weights on disk."""
    folder = profile / "models" / model_id
    update = folder / "1.0.1"
    shutil.copytree(ZOO_DIR / model_id, update)
    shutil.copytree(ZOO_DIR / model_id, folder / "1.0.0")
    manifest = json.loads((update / "manifest.json").read_text())
    manifest["version"] = "1.0.1"
    (update / "manifest.json").write_text(json.dumps(manifest))
    (folder / "current").write_text(json.dumps({"version": "1.0.1", "previous": "1.0.0"}))
    assert load_package(update).version == "1.0.1"  # verified as installed
    with (update / manifest["weights"]).open("ab") as fh:
        fh.write(b" ")
    return update


def test_a_tampered_signed_update_refuses_the_model_not_the_shipped_copy_silently(
    ws: Workstation,
) -> None:
    update = _install_tampered_update(profile_dir(), TABULAR)
    catalog = load_catalog()
    assert TABULAR in catalog.blocked
    assert TABULAR not in catalog.ids()  # the zoo's 1.0.0 is not offered in its place
    assert catalog.shipped[TABULAR].path == ZOO_DIR / TABULAR
    assert "chest-xray-pneumonia" in catalog.ids()  # the others are untouched
    manager = manager_from_settings(device="cpu")
    try:
        with pytest.raises(UpdateRefusedError) as caught:
            manager.package(TABULAR)
        error = caught.value
        assert isinstance(error, UnknownModelError)  # callers that catch KeyError still do
        text = str(error)
        assert f"model '{TABULAR}' is not run: its installed signed update 1.0.1 failed " in text
        assert "model.json: SHA-256 mismatch" in text
        assert str(update) in text
        assert "the shipped version 1.0.0 is not run in its place" in text
        assert f"doctorai sync rollback {TABULAR}" in text
        assert f"doctorai sync models --force {TABULAR}" in text
        assert set(manager.refused_models()) == {TABULAR}
        assert TABULAR not in [row.model_id for row in manager.status()]
        rows = [[float(v) for v in np.zeros(30)]]
        with pytest.raises(UpdateRefusedError):
            run_model(StoredResults(ws), manager, TABULAR, rows, [InputRef("row-0")], t="x")
    finally:
        manager.shutdown()
    (event,) = _events(ws)
    assert (event.outcome, event.details["refused"]) == (Outcome.MINOR_FAILURE, "verification")
    assert "model.json: SHA-256 mismatch" in event.details["reason"]


def test_a_missing_update_folder_blocks_too_and_a_tampered_previous_one_does_not() -> None:
    update = _install_tampered_update(profile_dir(), TABULAR)
    shutil.rmtree(update)
    catalog = load_catalog()
    assert "folder or manifest is missing" in catalog.blocked[TABULAR].reason
    # the current version sound, the kept previous one tampered: nothing is blocked
    shutil.copytree(ZOO_DIR / TABULAR, update)
    manifest = json.loads((update / "manifest.json").read_text())
    (update / "manifest.json").write_text(json.dumps({**manifest, "version": "1.0.1"}))
    with (update.parent / "1.0.0" / "model.json").open("ab") as fh:
        fh.write(b" ")
    catalog = load_catalog()
    assert catalog.blocked == {}
    assert catalog.get(TABULAR) is not None
    assert catalog.get(TABULAR).version == "1.0.1"  # type: ignore[union-attr]


def test_a_damaged_update_pointer_costs_its_own_update_only_and_is_said() -> None:
    """No version to refuse: the shipped copy runs (as before), the refusal is listed for the
    window and infer to say, and the other models' signed updates stay in use."""
    folder = profile_dir() / "models" / TABULAR
    shutil.copytree(ZOO_DIR / TABULAR, folder / "1.0.1")
    (folder / "current").write_text("{not json")
    chest = profile_dir() / "models" / CHEST
    shutil.copytree(ZOO_DIR / CHEST, chest / "1.0.0")
    (chest / "current").write_text(json.dumps({"version": "1.0.0"}))
    catalog = load_catalog()
    assert catalog.blocked == {}
    assert catalog.get(CHEST).path == chest / "1.0.0"  # type: ignore[union-attr]
    assert catalog.get(TABULAR).path == ZOO_DIR / TABULAR  # type: ignore[union-attr]
    manager = ModelManager(catalog.packages, package_errors=catalog.errors, device="cpu")
    (error,) = manager.refusals(TABULAR)
    assert str(error).startswith(
        f"model package '{folder / 'current'}' refused: current: pointer file "
    )


def test_a_segmentation_model_runs_through_run_model_with_its_guards() -> None:
    """run_model sends a segmentation package to core.inference.segment (masks on the result)
    and checks its population like any other: frames without headers are flagged unchecked."""
    from models.discovery import discover

    packages, _errors = discover([ZOO_DIR], verify_hashes=True)
    segmenters = [p for p in packages if p.manifest.task == "segmentation"]
    if not segmenters:
        pytest.skip("no segmentation package in the zoo (models/training/train_segmentation.py)")
    package = segmenters[0]
    assert package.manifest.selftest is not None
    sample = np.load(package.file(package.manifest.selftest.input))
    images = list(sample)
    refs = [InputRef(f"1.2.3.{i}") for i in range(len(images))]
    manager = ModelManager([package], device="cpu")
    try:
        result = run_model(SessionResults(), manager, package.id, images, refs)
    finally:
        manager.shutdown()
    assert result.masks is not None
    assert result.masks.shape[0] == len(images)
    (flag,) = result.guards
    assert flag.kind == "population"
    assert "no DICOM header came with the image" in flag.message
    assert flag.images == list(range(len(images)))


def test_refused_updates_raise_one_security_alert_each(ws: Workstation) -> None:
    from core.app.model_runs import record_refused_updates

    _install_tampered_update(profile_dir(), TABULAR)
    manager = manager_from_settings(device="cpu")
    assert record_refused_updates(ws, manager) == 1
    (alert,) = [
        e
        for e in ws.audit.iter_events()
        if e.event_type == EventType.SECURITY_ALERT
        and e.details.get("source") == "model verification"
    ]
    assert alert.outcome == Outcome.SERIOUS_FAILURE
    assert alert.details["file"] == "model.json"
    assert "its installed signed update 1.0.1 failed verification" in alert.details["message"]
    assert {"kind": "model", "id": TABULAR, "name": ""} in alert.objects
    assert record_refused_updates(ws, manager_from_settings(device="cpu")) == 1  # per start


def test_a_cache_hit_gets_this_runs_flags_once(
    cr: tuple[list[Any], list[InputRef], list[Instance]],
) -> None:
    """The flags belong to the headers of this run, not to the cached pixels: a hit has them
    once, and the cached entry is not changed by the runs that read it."""
    from core.inference.cache import PredictionCache
    from core.inference.result import InferenceResult

    frames, refs, instances = cr
    cache: PredictionCache[InferenceResult] = PredictionCache(4)
    manager = ModelManager([load_package(ZOO_DIR / CHEST)], device="cpu")
    try:
        first = run_model(
            SessionResults(), manager, CHEST, frames, refs, instances=instances, cache=cache
        )
        second = run_model(
            SessionResults(), manager, CHEST, frames, refs, instances=instances, cache=cache
        )
        third = run_model(SessionResults(), manager, CHEST, frames, refs, cache=cache)
    finally:
        manager.shutdown()
    assert second.provenance.cache_hit
    assert [g.message for g in second.guards] == [g.message for g in first.guards]
    assert len([g for g in second.guards if g.kind == "population"]) == 1
    (unchecked,) = [
        g for g in third.guards if g.kind == "population"
    ]  # no headers given this time: said, not the earlier flag
    assert "could not be checked" in unchecked.message
