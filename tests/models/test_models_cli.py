"""``doctorai models list/verify``: real packages, a tampered copy in the profile, --eval."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from cli import main
from tests.models.conftest import ALL_MODELS, ZOO


def test_list_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "list", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    rows = {r["id"]: r for r in out["models"]}
    assert set(ALL_MODELS) <= set(rows)
    pneu = rows["chest-xray-pneumonia"]
    assert pneu["framework"] == "torch"
    assert pneu["modalities"] == ["CR", "DX"]
    assert pneu["demo_only"] is True
    assert pneu["notice"] == "Demo model - not for clinical use"
    assert rows["brain-tumour-mri"]["framework"] == "keras"
    assert rows["tabular-breast-cancer"]["task"] == "tabular"


def _profile() -> Path:
    return Path(os.environ["DOCTORAI_HOME"])  # set per test by tests/conftest.py


def _renamed_copy(model: str, new_id: str) -> tuple[Path, dict[str, Any]]:
    """A zoo package copied into the profile under another id (its hashes stay valid)."""
    user_models = _profile() / "models"
    user_models.mkdir(parents=True, exist_ok=True)
    copy = user_models / new_id
    shutil.copytree(ZOO / model, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["id"] = new_id
    (copy / "manifest.json").write_text(json.dumps(manifest))
    return copy, manifest


def test_verify_all_ok_then_tampered_profile_copy_fails(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["models", "verify", *ALL_MODELS]) == 0
    capsys.readouterr()
    copy, _manifest = _renamed_copy("tabular-breast-cancer", "my-tabular")
    assert main(["models", "verify", "my-tabular"]) == 0  # a valid renamed copy passes
    assert "OK  my-tabular" in capsys.readouterr().out
    with (copy / "model.json").open("ab") as fh:
        fh.write(b" ")
    assert main(["models", "verify", "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    bad = [r for r in report["results"] if not r["ok"]]
    assert len(bad) == 1
    assert f"'{copy}'" in bad[0]["problems"][0]
    assert "model.json: SHA-256 mismatch" in bad[0]["problems"][0]


def test_verify_unknown_id_fails(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "verify", "no-such-model"]) == 1
    assert "no model 'no-such-model' found" in capsys.readouterr().out


def test_verify_eval_reproduces_manifest_metrics(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(["models", "verify", "--eval", "--json", "tabular-breast-cancer", "breast-ultrasound"])
        == 0
    )
    report = json.loads(capsys.readouterr().out)
    for entry in report["results"]:
        assert entry["ok"], entry["problems"]
        manifest = json.loads((Path(entry["path"]) / "manifest.json").read_text())
        for name, value in entry["measured"].items():
            assert abs(value - manifest["metrics"][name]) <= 0.01


def test_verify_eval_detects_a_false_claim(capsys: pytest.CaptureFixture[str]) -> None:
    from models.manifest import write_manifest

    copy = _profile() / "models" / "overclaimed"
    shutil.copytree(ZOO / "tabular-breast-cancer", copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["id"] = "overclaimed"
    manifest["metrics"]["accuracy"] = round(manifest["metrics"]["accuracy"] - 0.05, 4)
    write_manifest(copy, {k: v for k, v in manifest.items() if k != "files"})
    assert main(["models", "verify", "--eval", "overclaimed"]) == 1
    assert "accuracy manifest" in capsys.readouterr().out


def test_list_refuses_a_package_missing_a_listed_file(capsys: pytest.CaptureFixture[str]) -> None:
    copy, manifest = _renamed_copy("skin-lesion", "skin-missing")
    (copy / manifest["weights"]).unlink()
    assert main(["models", "list", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert "skin-missing" not in {r["id"] for r in out["models"]}
    (error,) = [e for e in out["errors"] if "skin-missing" in e["path"]]
    assert f"{manifest['weights']}: listed file is missing" in error["error"]


def test_infer_on_a_refused_package_says_why(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """issue 15, hole 9: it said only 'no installed model package' for a tampered one."""
    copy, _manifest = _renamed_copy("tabular-breast-cancer", "my-tabular")
    with (copy / "model.json").open("ab") as fh:
        fh.write(b" ")
    rows = tmp_path / "rows.csv"
    rows.write_text("a\n1\n")
    assert main(["infer", "--model", "my-tabular", str(rows)]) == 2
    err = capsys.readouterr().err
    assert "'my-tabular' is installed but was refused" in err
    assert "model.json: SHA-256 mismatch" in err


def test_infer_is_gated_on_the_package_self_test(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A package whose files all verify but which no longer gives its own stored self-test
    output (here: expected scores shifted, with the manifest's hash updated to match) is not
    run; before, infer never ran the self-test."""
    import csv
    import hashlib

    import numpy as np

    copy, manifest = _renamed_copy("tabular-breast-cancer", "drifted")
    expected_path = copy / manifest["selftest"]["expected"]
    expected = np.load(expected_path)
    np.save(expected_path, np.abs(expected - 0.5))
    manifest["files"][manifest["selftest"]["expected"]] = hashlib.sha256(
        expected_path.read_bytes()
    ).hexdigest()
    (copy / "manifest.json").write_text(json.dumps(manifest))
    sample = np.load(copy / manifest["selftest"]["input"])[0]
    rows = tmp_path / "rows.csv"
    with rows.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(manifest["input"]["features"])
        writer.writerow([float(v) for v in sample])
    assert main(["infer", "--model", "drifted", str(rows)]) == 1
    err = capsys.readouterr().err
    assert "'drifted' failed its self-test, so it is not run" in err
    assert main(["infer", "--model", "tabular-breast-cancer", str(rows)]) == 0  # the real one


def test_infer_says_when_it_runs_another_copy_than_a_refused_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A copy of a model that fails verification (here a tampered one in the profile; in
    production a signed update gone bad) while another copy runs: said, not silent."""
    user_models = _profile() / "models"
    user_models.mkdir(parents=True, exist_ok=True)
    bad = user_models / "tabular-breast-cancer"
    shutil.copytree(ZOO / "tabular-breast-cancer", bad)
    with (bad / "model.json").open("ab") as fh:
        fh.write(b" ")
    import numpy as np

    manifest = json.loads((bad / "manifest.json").read_text())
    rows = tmp_path / "rows.csv"
    sample = np.load(bad / manifest["selftest"]["input"])[0]
    rows.write_text(
        ",".join(f'"{f}"' for f in manifest["input"]["features"])
        + "\n"
        + ",".join(str(float(v)) for v in sample)
        + "\n"
    )
    assert main(["infer", "--model", "tabular-breast-cancer", str(rows)]) == 0
    err = capsys.readouterr().err
    assert f"model package '{bad}' refused" in err
    assert f"running version 1.0.0 from '{ZOO / 'tabular-breast-cancer'}' instead" in err
