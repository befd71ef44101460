"""``doctorai models import``: admin only (the OS account and a radiologist are refused),
audited in the real SQLCipher profile, the same id+version refused a second time, and the
imported model listed by ``doctorai models list``."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

import cli
from core.app.workstation import Workstation
from core.audit.vocabulary import EventType
from core.paths import profile_dir
from tests.models.import_fixtures import PASSWORD, bundle, onnx_source, profile_with_users

pytest.importorskip("torch", reason="the test models are made with torch (the 'ai' extra)")


def _import(monkeypatch: pytest.MonkeyPatch, stdin: str, *args: str) -> int:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    return cli.main(["models", "import", *args])


def _imports() -> list[dict[str, object]]:
    ws = Workstation.open()
    try:
        return [
            {"user": e.user, "role": e.role, "objects": e.objects, **e.details}
            for e in ws.audit.iter_events(event_type=EventType.MODEL_INSTALLED)
            if e.details.get("action") == "imported"  # refusals are audited too
        ]
    finally:
        ws.close()


def test_only_an_admin_imports_and_the_import_is_audited(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("onnxruntime", reason="ONNX models run on onnxruntime (the 'ai' extra)")
    path, _ = onnx_source(tmp_path / "src")
    profile_with_users()
    assert _import(monkeypatch, "", str(path)) == 2  # the OS account alone
    assert "needs an admin" in capsys.readouterr().err
    rad = ("--user", "rad", "--password-stdin")
    assert _import(monkeypatch, f"{PASSWORD}\n", str(path), *rad) == 2
    assert "may not manage-models" in capsys.readouterr().err
    assert not (profile_dir() / "models" / "hospital-chest").exists()
    assert _imports() == []

    admin = ("--user", "admin", "--password-stdin")
    assert _import(monkeypatch, f"{PASSWORD}\n", str(path), *admin, "--json") == 0
    answer = json.loads(capsys.readouterr().out)
    assert (answer["id"], answer["version"], answer["source"]) == (
        "hospital-chest",
        "1.0.0",
        "onnx",
    )
    (event,) = _imports()
    assert (event["user"], event["role"], event["source"]) == ("admin", "admin", "onnx")
    assert event["objects"][0]["id"] == "hospital-chest@1.0.0"  # type: ignore[index]

    assert cli.main(["models", "list", "--json"]) == 0
    listed = {m["id"]: m for m in json.loads(capsys.readouterr().out)["models"]}
    assert listed["hospital-chest"]["framework"] == "onnx"

    # the same id and version again: refused, nothing changed, no second event
    assert _import(monkeypatch, f"{PASSWORD}\n", str(path), *admin) == 1
    assert "version 1.0.0 is already installed" in capsys.readouterr().err
    assert len(_imports()) == 1


def test_bundle_import_and_refusals_from_the_command_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    profile_with_users()
    admin = ("--user", "admin", "--password-stdin")
    missing, _ = bundle(tmp_path / "no-network", network=False)
    assert _import(monkeypatch, f"{PASSWORD}\n", str(missing), *admin) == 1
    assert "models/model.ts: missing" in capsys.readouterr().err

    folder, _ = bundle(tmp_path / "mr-classifier")
    assert _import(monkeypatch, f"{PASSWORD}\n", str(folder), *admin) == 0
    out = capsys.readouterr().out
    assert "imported mr-classifier 0.2.1 (monai-bundle)" in out
    (event,) = _imports()
    assert (event["user"], event["source"]) == ("admin", "monai-bundle")

    # an id that the shipped zoo provides would silently replace it: refused
    zoo_like, _ = bundle(tmp_path / "chest-xray-pneumonia")
    assert _import(monkeypatch, f"{PASSWORD}\n", str(zoo_like), *admin) == 1
    assert "give the imported model another id" in capsys.readouterr().err
