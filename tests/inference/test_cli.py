"""``doctorai infer`` and ``doctorai selftest`` as a user runs them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from tests.gpu import torch_gpu_missing, xgboost_gpu_missing

REPO = Path(__file__).resolve().parents[2]


def _doctorai(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "desktop.launcher", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )


def test_infer_json_and_heatmap_on_shared_cr(dicom_data: Path, tmp_path: Path) -> None:
    src = dicom_data / "pydicom__pydicom-data" / "data_store" / "data" / "RG1_J2KI.dcm"
    out_png = tmp_path / "heat.png"
    proc = _doctorai(
        "infer",
        "--model",
        "chest-xray-pneumonia",
        str(src),
        "--device",
        "cpu",
        "--heatmap",
        str(out_png),
        "--json",
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["model"]["id"] == "chest-xray-pneumonia"
    assert report["provenance"]["device"] == "cpu"
    assert report["provenance"]["inputs"][0]["sop_instance_uid"].startswith("1.3.6.1.4.1.5962")
    scores = report["scores"][0]
    assert set(scores) == {"normal", "pneumonia"}
    assert abs(sum(scores.values()) - 1) < 1e-4
    image = np.asarray(Image.open(out_png))
    assert image.shape == (1955, 1841, 3)
    assert not np.array_equal(image[..., 0], image[..., 2])  # colour was blended in
    _assert_audited(report, out_png)


def _assert_audited(report: dict[str, object], heatmap: Path) -> None:
    """The run is in the profile's audit trail: Model Run, then Export of the heatmap PNG."""
    from core.audit.log import AuditLog
    from core.audit.vocabulary import EventType
    from core.store.database import open_database

    db = open_database()
    try:
        events = list(AuditLog(db).iter_events())
    finally:
        db.close()
    assert [e.event_type for e in events] == [EventType.MODEL_RUN, EventType.EXPORT]
    run, export = events
    assert {"kind": "result", "id": report["result_id"], "name": ""} in run.objects
    kinds = [o["kind"] for o in run.objects]
    assert kinds == ["patient", "study", "series", "instance", "model", "result"]
    assert [o["kind"] for o in export.objects] == ["patient", "study", "series", "instance", "file"]
    assert {
        "kind": "model",
        "id": "chest-xray-pneumonia@" + report["model"]["version"],  # type: ignore[index]
        "name": "",
    } in run.objects
    assert any(o["id"] == str(heatmap.resolve()) for o in export.objects)


def test_infer_unknown_model_and_no_input(tmp_path: Path) -> None:
    proc = _doctorai("infer", "--model", "nope", str(tmp_path))
    assert proc.returncode == 2
    assert "'nope'" in proc.stderr
    junk = tmp_path / "junk.dcm"
    junk.write_bytes(b"not dicom")
    proc = _doctorai("infer", "--model", "chest-xray-pneumonia", str(junk))
    assert proc.returncode == 1
    assert "junk.dcm" in proc.stderr


def test_infer_tabular_csv(tmp_path: Path) -> None:
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    csv = tmp_path / "rows.csv"
    header = ",".join(data.feature_names)
    rows = "\n".join(",".join(f"{v:.6g}" for v in row) for row in data.data[:3])
    csv.write_text(f"{header}\n{rows}\n")
    proc = _doctorai("infer", "--model", "tabular-breast-cancer", str(csv), "--json")
    assert proc.returncode == 0, proc.stderr
    assert len(json.loads(proc.stdout)["decisions"]) == 3
    values = [f"{v:.6g}" for v in data.data[1]]
    values[4] = "abc"
    csv.write_text(f"{header}\n{rows.splitlines()[0]}\n{','.join(values)}\n")
    bad = _doctorai("infer", "--model", "tabular-breast-cancer", str(csv))
    assert bad.returncode == 1
    assert f"line 3, column '{data.feature_names[4]}': 'abc' is not a number" in bad.stderr


def test_selftest_reports_each_model() -> None:
    proc = _doctorai(
        "selftest",
        "--json",
        "--device",
        "cpu",
        "--models",
        "chest-xray-pneumonia",
        "tabular-breast-cancer",
        "no-such-model",
    )
    report = json.loads(proc.stdout)
    assert proc.returncode == 1  # the unknown model fails the run
    by_id = {m["id"]: m for m in report["models"]}
    assert by_id["chest-xray-pneumonia"]["ok"]
    assert by_id["tabular-breast-cancer"]["ok"]
    assert not by_id["no-such-model"]["ok"]
    # what the selftest reports is what each framework itself says about a GPU here
    assert report["frameworks"]["torch"]["gpu"] is (torch_gpu_missing() is None)
    assert report["frameworks"]["xgboost"]["gpu"] is (xgboost_gpu_missing() is None)


def test_selftest_open_renders_a_file(dicom_data: Path, tmp_path: Path) -> None:
    src = dicom_data / "pydicom__pydicom-data" / "data_store" / "data" / "RG1_J2KI.dcm"
    proc = _doctorai(
        "selftest",
        "--json",
        "--device",
        "cpu",
        "--models",
        "tabular-breast-cancer",
        "--open",
        str(src),
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    opened = json.loads(proc.stdout)["open"]
    assert opened["ok"]
    assert opened["shape"] == [1955, 1841]
    junk = tmp_path / "junk.dcm"
    junk.write_bytes(b"not dicom")
    proc = _doctorai("selftest", "--json", "--models", "tabular-breast-cancer", "--open", str(junk))
    assert proc.returncode == 1
    report = json.loads(proc.stdout)
    assert not report["ok"]
    assert "junk.dcm" in report["open"]["message"]


def test_infer_refuses_a_modality_the_model_was_not_made_for(dicom_data: Path) -> None:
    ct = dicom_data / "pyvista__vtk-data" / "Data" / "DICOM_Stack" / "1-001.dcm"
    refused = _doctorai("infer", "--model", "chest-xray-pneumonia", str(ct), "--device", "cpu")
    assert refused.returncode == 1
    assert "modality CT is not one model 'chest-xray-pneumonia' was made for (CR, DX)" in (
        refused.stderr
    )
    assert "--any-modality" in refused.stderr
    forced = _doctorai(
        "infer", "--model", "chest-xray-pneumonia", str(ct), "--device", "cpu", "--any-modality"
    )
    assert forced.returncode == 0, forced.stderr
    empty = _doctorai("infer", "--model", "report-drafter", "--text", "  ")
    assert empty.returncode == 2
    assert "--text is empty" in empty.stderr
