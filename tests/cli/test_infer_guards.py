"""``doctorai infer`` says the guards: the adult CR through the paediatric chest model gives a
population flag in the text, in --json and in the audit event; a refused run (population
refused by the manifest, a signed update tampered on disk) exits 1 with the reason, audited."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from cli import main
from core.audit.vocabulary import EventType, Outcome
from core.paths import profile_dir
from models.discovery import ZOO_DIR

REPO = Path(__file__).resolve().parents[2]
CR = REPO / "resources" / "sample" / "chest_cr" / "RG1_J2KI.dcm"
CHEST = "chest-xray-pneumonia"
AGE_FLAG = (
    "patient age 64 y is outside this model's intended population 1-5 y "
    "(paediatric frontal chest radiographs)"
)


def _model_runs() -> list[Any]:
    from core.audit.log import AuditLog
    from core.store.database import open_database

    db = open_database()
    try:
        return [e for e in AuditLog(db).iter_events() if e.event_type == EventType.MODEL_RUN]
    finally:
        db.close()


def test_infer_prints_the_population_flag_in_text_and_json(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["infer", "--model", CHEST, str(CR), "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert f"  population flag [image 1]: {AGE_FLAG}\n" in out
    assert main(["infer", "--model", CHEST, str(CR), "--device", "cpu", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    # the retrained chest model's OOD check flags the adult film too: the population flag is the
    # one this test is about
    (guard,) = [g for g in report["guards"] if g["kind"] == "population"]
    assert guard == {
        "kind": "population",
        "message": AGE_FLAG,
        "images": [0],
        "refused": False,
        "details": {"outside": True, "on_mismatch": "warn"},
    }
    text_run, json_run = _model_runs()
    for event in (text_run, json_run):
        assert event.outcome == Outcome.SUCCESS
        assert {"kind": "population", "message": AGE_FLAG, "images": [0], "refused": False} in (
            event.details["guards"]
        )
    assert {"kind": "result", "id": report["result_id"], "name": ""} in json_run.objects


def test_a_population_the_manifest_refuses_exits_1_with_the_reason(
    capsys: pytest.CaptureFixture[str],
) -> None:
    models = profile_dir() / "models"
    copy = models / "chest-refuse"
    shutil.copytree(ZOO_DIR / CHEST, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["id"] = "chest-refuse"
    manifest["population"]["on_mismatch"] = "refuse"
    (copy / "manifest.json").write_text(json.dumps(manifest))
    assert main(["infer", "--model", "chest-refuse", str(CR), "--device", "cpu"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""  # no scores shown for a run that did not happen
    assert "error: model 'chest-refuse' is not run: the images are outside its intended " in (
        captured.err
    )
    assert AGE_FLAG in captured.err
    (event,) = _model_runs()
    assert (event.outcome, event.details["refused"]) == (Outcome.MINOR_FAILURE, "population")
    assert event.details["command"] == "infer"
    assert "instance" in [o["kind"] for o in event.objects]


def test_a_tampered_signed_update_is_refused_not_replaced_by_the_shipped_version(
    capsys: pytest.CaptureFixture[str],
) -> None:
    folder = profile_dir() / "models" / CHEST
    update = folder / "9.0.1"
    shutil.copytree(ZOO_DIR / CHEST, update)
    manifest = json.loads((update / "manifest.json").read_text())
    (update / "manifest.json").write_text(json.dumps({**manifest, "version": "9.0.1"}))
    (folder / "current").write_text(json.dumps({"version": "9.0.1", "previous": None}))
    assert main(["infer", "--model", CHEST, str(CR), "--device", "cpu", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["model"]["version"] == "9.0.1"  # sound: it runs
    with (update / "model.pt").open("ab") as fh:
        fh.write(b"\0")
    assert main(["infer", "--model", CHEST, str(CR), "--device", "cpu", "--json"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert (
        f"error: model '{CHEST}' is not run: its installed signed update 9.0.1 failed "
        "verification (model.pt: SHA-256 mismatch"
    ) in captured.err
    shipped = manifest["version"]
    assert f"the shipped version {shipped} is not run in its place" in captured.err
    assert "report it to IT" in captured.err
    refused = _model_runs()[-1]
    assert (refused.outcome, refused.details["refused"]) == (Outcome.MINOR_FAILURE, "verification")
    assert f"model '{CHEST}' is not run" in refused.details["reason"]
    # doctorai selftest lists it as failed, with the same reason
    assert main(["selftest", "--json", "--models", CHEST]) == 1
    report = json.loads(capsys.readouterr().out)
    (row,) = report["models"]
    assert row["ok"] is False
    assert "its installed signed update 9.0.1 failed verification" in row["message"]
