"""A model with no OOD reference and no intended population (an imported model, typically):
every result says its inputs were not checked against either, in the result, its audit event
and ``doctorai infer``'s text and JSON; the zoo's image models, which have both (or a
population), carry no such flag."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

import cli
from core.app.model_runs import UNVALIDATED_MESSAGE, run_model, unvalidated_flags
from core.app.results import SessionResults
from core.audit.vocabulary import EventType
from core.imaging.pixels import read_frame
from core.inference.catalog import load_catalog
from core.inference.manager import ModelManager
from core.inference.result import InputRef
from models.discovery import ZOO_DIR
from models.importers import prepare
from tests.models.import_fixtures import ONNX_DESCRIPTION, PASSWORD, onnx_source
from tests.models.import_fixtures import profile_with_users as _users

REPO = Path(__file__).resolve().parents[2]
CR = REPO / "resources" / "sample" / "chest_cr" / "RG1_J2KI.dcm"
# the test export's description without its intended population
BARE = ONNX_DESCRIPTION.split("population:")[0]


def test_the_zoo_has_no_unvalidated_image_model() -> None:
    catalog = load_catalog([ZOO_DIR], verify_hashes=False)
    images = [p for p in catalog.packages if p.manifest.input.kind != "text"]
    assert len(images) >= 6
    assert [p.id for p in images if unvalidated_flags(p)] == []


def test_a_model_without_ood_or_population_flags_every_run(tmp_path: Path) -> None:
    pytest.importorskip("torch", reason="the test model is made with torch (the 'ai' extra)")
    pytest.importorskip("onnxruntime", reason="ONNX models run on onnxruntime (the 'ai' extra)")
    from core.imaging.index import build_index

    source, _ = onnx_source(tmp_path / "src", BARE)
    package = prepare(source).build(tmp_path / "package")
    assert package.manifest.population is None
    assert package.manifest.ood is None
    (inst,) = [i for _p, _s, se in build_index([str(CR)]).iter_series() for i in se.instances]
    manager = ModelManager([package], device="cpu")
    try:
        result = run_model(
            SessionResults(),
            manager,
            package.id,
            [read_frame(inst, 0)],
            [InputRef.of(inst)],
            instances=[inst],
        )
    finally:
        manager.shutdown()
    (flag,) = [g for g in result.guards if g.kind == "unvalidated"]
    assert flag.message == UNVALIDATED_MESSAGE
    assert (flag.images, flag.refused) == (None, False)
    # the same package with a population: no such flag
    with_population, _ = onnx_source(tmp_path / "src2")
    assert unvalidated_flags(prepare(with_population).build(tmp_path / "package2")) == []


def test_infer_says_it_in_text_json_and_the_trail(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("torch", reason="the test model is made with torch (the 'ai' extra)")
    pytest.importorskip("onnxruntime", reason="ONNX models run on onnxruntime (the 'ai' extra)")
    from core.app.workstation import Workstation

    source, _ = onnx_source(tmp_path / "src", BARE)
    _users()
    monkeypatch.setattr("sys.stdin", io.StringIO(f"{PASSWORD}\n"))
    argv = ["models", "import", str(source), "--user", "admin", "--password-stdin"]
    assert cli.main(argv) == 0
    capsys.readouterr()

    assert cli.main(["infer", "--model", "hospital-chest", str(CR), "--device", "cpu"]) == 0
    assert f"  unvalidated flag: {UNVALIDATED_MESSAGE}\n" in capsys.readouterr().out
    argv = ["infer", "--model", "hospital-chest", str(CR), "--device", "cpu", "--json"]
    assert cli.main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert {"kind": "unvalidated", "message": UNVALIDATED_MESSAGE} in [
        {"kind": g["kind"], "message": g["message"]} for g in report["guards"]
    ]
    ws = Workstation.open()
    try:
        runs = list(ws.audit.iter_events(event_type=EventType.MODEL_RUN))
    finally:
        ws.close()
    assert len(runs) == 2
    for run in runs:
        kinds = [g["kind"] for g in run.details["guards"]]
        assert "unvalidated" in kinds
