"""Command-line gaps from the issue 18 review, on a real encrypted profile and real zoo models:
``doctorai selftest`` writes a Security Alert for a signed update tampered on disk; ``doctorai
infer`` asks for the run-AI permission before it loads a model for its self-test, and draws
its heatmap PNG with the configured ``[inference] heatmap_floor`` as the window does."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from cli import infer_cmd, main
from core.app.workstation import Workstation
from core.audit.vocabulary import EventType, Outcome
from core.paths import profile_dir
from core.security.users import PermissionDenied, Role
from models.discovery import ZOO_DIR
from models.manifest import sha256_file

REPO = Path(__file__).resolve().parents[2]
CR = REPO / "resources" / "sample" / "chest_cr" / "RG1_J2KI.dcm"
CHEST = "chest-xray-pneumonia"
PASSWORD = "correct horse battery"


def _events(kind: EventType) -> list[Any]:
    ws = Workstation.open()
    try:
        return list(ws.audit.iter_events(event_type=kind))
    finally:
        ws.close()


def _tampered_update() -> Path:
    """``<profile>/models/CHEST/9.0.1`` installed as the current signed version, then one byte
    appended to its weights (as tests/cli/test_infer_guards.py does)."""
    folder = profile_dir() / "models" / CHEST
    update = folder / "9.0.1"
    shutil.copytree(ZOO_DIR / CHEST, update)
    manifest = json.loads((update / "manifest.json").read_text())
    (update / "manifest.json").write_text(json.dumps({**manifest, "version": "9.0.1"}))
    (folder / "current").write_text(json.dumps({"version": "9.0.1", "previous": None}))
    with (update / "model.pt").open("ab") as fh:
        fh.write(b"\0")
    return update


def test_selftest_records_a_security_alert_for_a_tampered_update(
    capsys: pytest.CaptureFixture[str],
) -> None:
    _tampered_update()
    assert main(["selftest", "--json", "--models", CHEST]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["models"][0]["ok"] is False
    (alert,) = _events(EventType.SECURITY_ALERT)
    assert alert.outcome == Outcome.SERIOUS_FAILURE
    assert alert.details["source"] == "model verification"
    assert alert.details["file"] == "model.pt"
    assert "its installed signed update 9.0.1 failed verification" in alert.details["message"]
    assert ("model", CHEST) in [(o["kind"], o["id"]) for o in alert.objects]


def test_selftest_without_a_refused_update_records_nothing(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["selftest", "--json", "--models", "tabular-breast-cancer"]) == 0
    capsys.readouterr()
    assert _events(EventType.SECURITY_ALERT) == []


def _drifted_model() -> str:
    """A copy of the chest model under the profile whose self-test no longer passes."""
    folder = profile_dir() / "models" / "chest-drifted"
    shutil.copytree(ZOO_DIR / CHEST, folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["id"] = "chest-drifted"
    rel = manifest["selftest"]["expected"]
    np.save(folder / rel, np.abs(np.load(folder / rel) - 0.5))
    manifest["files"][rel] = sha256_file(folder / rel)
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return "chest-drifted"


def _infer_args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    infer_cmd.add_arguments(parser)
    return parser.parse_args(list(argv))


def test_infer_asks_for_the_permission_before_the_selftest() -> None:
    """A technologist (no run-AI) is refused as such: no model loaded for a self-test, no
    'Model Run refused: selftest' event in the trail."""
    model_id = _drifted_model()
    ws = Workstation.open_for_cli()
    try:
        ws.users.create_user("admin", PASSWORD, Role.ADMIN, by="test")
        ws.users.create_user("tech", PASSWORD, Role.TECHNOLOGIST, by="admin")
        ws.session.login("tech", PASSWORD)
        args = _infer_args("--model", model_id, str(CR), "--device", "cpu")
        with pytest.raises(PermissionDenied, match="run-ai"):
            infer_cmd._run(args, ws)
        assert list(ws.audit.iter_events(event_type=EventType.MODEL_RUN)) == []
    finally:
        ws.close()


def _changed_fraction(png: Path) -> float:
    """The share of pixels the heatmap coloured (a grey pixel has R == G == B)."""
    rgb = np.asarray(Image.open(png).convert("RGB"), dtype=np.int16)
    return float(np.mean((rgb[..., 0] != rgb[..., 1]) | (rgb[..., 1] != rgb[..., 2])))


def test_infer_heatmap_png_follows_the_configured_floor(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "machine-config.toml"
    coloured = {}
    for floor in (0.0, 0.9):
        config.write_text(f"[inference]\nheatmap_floor = {floor}\n")
        out = tmp_path / f"heat-{floor}.png"
        argv = ["infer", "--model", CHEST, str(CR), "--device", "cpu", "--heatmap", str(out)]
        assert main(argv) == 0
        coloured[floor] = _changed_fraction(out)
    capsys.readouterr()
    # floor 0: every pixel with any heat is tinted; floor 0.9: only the hottest tenth of heat
    assert coloured[0.0] > 0.5
    assert coloured[0.9] < coloured[0.0] / 2
