"""An imported model whose installed file changed on disk (issue 18 tryout): ``infer`` says it
is an imported version and suggests importing it again (not the signed channel's commands),
names the file (no ``<file #...>`` placeholder on the terminal while the log file stays
redacted), ``models list`` shows it blocked with the reason and its origin, and importing the
same version again mends it; a second import over a copy that verifies is still refused."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import numpy as np
import pytest

import cli
from core.logs import stop_logging
from core.paths import profile_dir
from tests.models.import_fixtures import PASSWORD, onnx_source, profile_with_users

pytest.importorskip("torch", reason="the test model is made with torch (the 'ai' extra)")
pytest.importorskip("onnxruntime", reason="ONNX models run on onnxruntime (the 'ai' extra)")

REPO = Path(__file__).resolve().parents[2]
CR = REPO / "resources" / "sample" / "chest_cr" / "RG1_J2KI.dcm"
MODEL = "hospital-chest"


def _import(monkeypatch: pytest.MonkeyPatch, path: Path) -> int:
    monkeypatch.setattr("sys.stdin", io.StringIO(f"{PASSWORD}\n"))
    return cli.main(["models", "import", str(path), "--user", "admin", "--password-stdin"])


def _tamper(package: Path) -> None:
    """The self-test's expected answer changed on disk after the import."""
    expected = package / "selftest" / "expected.npy"
    np.save(expected, np.load(expected) + 0.25)


def _listed(capsys: pytest.CaptureFixture[str]) -> dict[str, dict[str, object]]:
    assert cli.main(["models", "list", "--json"]) == 0
    return {m["id"]: m for m in json.loads(capsys.readouterr().out)["models"]}


def test_a_changed_imported_model_is_blocked_listed_and_mended_by_importing_again(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("DOCTORAI_LOG_DIR", str(tmp_path / "logs"))
    source, _ = onnx_source(tmp_path / "src")
    profile_with_users()
    assert _import(monkeypatch, source) == 0
    capsys.readouterr()
    package = profile_dir() / "models" / MODEL / "1.0.0"

    row = _listed(capsys)[MODEL]
    assert (row["state"], row["origin"]) == ("ok", "imported")
    assert row["imported_from"] == {"kind": "onnx", "name": "model.onnx"}
    assert row["validation"] == "imported, not validated here"
    assert cli.main(["models", "list"]) == 0
    text = capsys.readouterr().out
    (line,) = [ln for ln in text.splitlines() if ln.startswith(MODEL)]
    assert "[imported from model.onnx (onnx), not validated here]" in line

    _tamper(package)
    try:
        assert cli.main(["infer", "--model", MODEL, str(CR), "--device", "cpu"]) == 1
        err = capsys.readouterr().err
    finally:
        logging.shutdown()
        stop_logging()
    assert "its installed imported version 1.0.0 failed verification" in err
    assert "(selftest/expected.npy: SHA-256 mismatch" in err
    assert f"in '{package}')" in err
    assert "import 'model.onnx' again ('doctorai models import PATH" in err
    for wrong in ("signed update", "sync models --force", "sync rollback", "<file #"):
        assert wrong not in err, wrong
    # the log file keeps its readers away from paths: the same warning, redacted
    log_text = (tmp_path / "logs" / "doctorai.log").read_text(encoding="utf-8")
    assert "blocked: its imported version is refused" in log_text
    assert str(package) not in log_text
    assert "<file #" in log_text

    row = _listed(capsys)[MODEL]
    assert row["state"] == "blocked"
    assert "(selftest/expected.npy: SHA-256 mismatch" in str(row["reason"])
    assert "import 'model.onnx' again" in str(row["reason"])
    assert row["origin"] == "imported"
    assert cli.main(["models", "list"]) == 0
    out = capsys.readouterr().out
    assert f"{MODEL} " in out
    assert "[BLOCKED - not run]" in out
    assert "    blocked: its installed imported version 1.0.0 failed verification" in out

    # the remedy works: the same version again replaces the changed copy, and runs
    assert _import(monkeypatch, source) == 0
    capsys.readouterr()
    assert _listed(capsys)[MODEL]["state"] == "ok"
    assert cli.main(["infer", "--model", MODEL, str(CR), "--device", "cpu"]) == 0
    capsys.readouterr()
    # ...and a copy that verifies is not replaced by the same version
    assert _import(monkeypatch, source) == 1
    assert "version 1.0.0 is already installed" in capsys.readouterr().err


def test_zoo_models_are_listed_as_shipped_and_ok(capsys: pytest.CaptureFixture[str]) -> None:
    listed = _listed(capsys)
    chest = listed["chest-xray-pneumonia"]
    assert (chest["state"], chest["origin"], chest["imported_from"]) == ("ok", "shipped", None)
    assert chest["checks"] == {"population": True, "ood": True}
    assert chest["validation"] is None
