"""The impression drafter is a model run like any other: a drafter whose self-test fails (its
own sample no longer gives its own answer) drafts nothing (issue 18 review). The real
report-drafter package, copied with its expected answer changed and re-hashed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from core.app import reports as app
from core.app.workstation import Workstation
from core.audit.vocabulary import EventType
from core.inference.manager import ModelManager, SelftestRefusedError
from models.discovery import ZOO_DIR
from models.manifest import load_package, sha256_file


def _drifted_drafter(tmp_path: Path) -> Path:
    folder = tmp_path / "report-drafter"
    shutil.copytree(ZOO_DIR / "report-drafter", folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    rel = manifest["selftest"]["expected"]
    (folder / rel).write_text("No acute findings.", encoding="utf-8")
    manifest["files"][rel] = sha256_file(folder / rel)
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def test_a_drafter_whose_selftest_fails_drafts_nothing(
    ws: Workstation, study: tuple[str, str], tmp_path: Path
) -> None:
    pytest.importorskip("transformers", reason="the drafter runs on transformers (the 'ai' extra)")
    study_uid, _patient = study
    package = load_package(_drifted_drafter(tmp_path))
    findings = (package.path / "selftest" / "input.txt").read_text(encoding="utf-8").strip()
    manager = ModelManager([package], device="cpu")
    try:
        with pytest.raises(SelftestRefusedError, match="model 'report-drafter' is not run"):
            app.draft_impression(ws, manager, study_uid, findings)
        (row,) = manager.status()
        assert row.refused is not None
        assert row.refused.startswith("self-test failed")
    finally:
        manager.shutdown()
    assert list(ws.audit.iter_events(event_type=EventType.MODEL_RUN)) == []  # no draft run
