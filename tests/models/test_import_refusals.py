"""``doctorai models import`` refusals from the issue 18 review, on a real encrypted profile:
an import never replaces a model that came by the signed channel (only an earlier import of
it), every refused or failed import is audited with its reason, and a file that cannot be
written (the file-size limit of the process, a real EFBIG) is said as the import's failure."""

from __future__ import annotations

import io
import json
import os
import resource
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import cli
from core.app.model_import import import_model
from core.app.workstation import Workstation
from core.audit.vocabulary import EventType, Outcome
from core.inference.model_store import ModelInstallError, ModelStore
from core.paths import profile_dir
from models.discovery import ZOO_DIR
from tests.models.import_fixtures import (
    ONNX_DESCRIPTION,
    PASSWORD,
    export_onnx,
    onnx_source,
    profile_with_users,
    small_cnn,
)

pytest.importorskip("torch", reason="the test models are made with torch (the 'ai' extra)")
pytest.importorskip("onnxruntime", reason="ONNX models run on onnxruntime (the 'ai' extra)")

REPO = Path(__file__).resolve().parents[2]


def _installs() -> list[Any]:
    ws = Workstation.open()
    try:
        return list(ws.audit.iter_events(event_type=EventType.MODEL_INSTALLED))
    finally:
        ws.close()


def _signed_update(model_id: str, version: str) -> Path:
    """A package installed in the profile's store as the signed channel does (its manifest
    has no ``imported_from``): the zoo's tabular model under ``model_id``."""
    folder = profile_dir() / "models" / model_id
    dest = folder / version
    shutil.copytree(ZOO_DIR / "tabular-breast-cancer", dest)
    manifest = json.loads((dest / "manifest.json").read_text())
    (dest / "manifest.json").write_text(
        json.dumps({**manifest, "id": model_id, "version": version})
    )
    (folder / "current").write_text(json.dumps({"version": version, "previous": None}))
    return dest


def test_an_import_never_replaces_a_signed_update_and_the_refusal_is_audited(
    tmp_path: Path,
) -> None:
    path, _ = onnx_source(tmp_path / "src")  # id hospital-chest, version 1.0.0
    profile_with_users()
    _signed_update("hospital-chest", "2.0.0")
    store = ModelStore(profile_dir() / "models")
    ws = Workstation.open()
    try:
        ws.session.login("admin", PASSWORD)
        with pytest.raises(ModelInstallError, match="installed by signed update") as caught:
            import_model(ws, store, path)
    finally:
        ws.close()
    assert "give the imported model another id" in str(caught.value)
    assert store.current_version("hospital-chest") == "2.0.0"  # unchanged
    assert not (profile_dir() / "models" / "hospital-chest" / "1.0.0").exists()
    (event,) = _installs()
    assert event.outcome == Outcome.MINOR_FAILURE
    assert (event.user, event.details["action"], event.details["source"]) == (
        "admin",
        "import-refused",
        "onnx",
    )
    assert "installed by signed update" in event.details["reason"]
    assert event.objects[0]["id"] == "hospital-chest@1.0.0"


def test_an_imported_model_may_be_imported_again_under_a_new_version(tmp_path: Path) -> None:
    first, _ = onnx_source(tmp_path / "v1")
    second, _ = onnx_source(
        tmp_path / "v2", ONNX_DESCRIPTION.replace("version: 1.0.0", "version: 1.1.0")
    )
    profile_with_users()
    store = ModelStore(profile_dir() / "models")
    ws = Workstation.open()
    try:
        ws.session.login("admin", PASSWORD)
        import_model(ws, store, first)
        done = import_model(ws, store, second)
    finally:
        ws.close()
    assert (done.version, done.previous) == ("1.1.0", "1.0.0")
    assert [e.outcome for e in _installs()] == [Outcome.SUCCESS, Outcome.SUCCESS]


def test_a_refusal_by_the_importer_is_audited(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path, _ = onnx_source(tmp_path / "src", ONNX_DESCRIPTION.replace("labels:", "classes:"))
    profile_with_users()
    monkeypatch.setattr("sys.stdin", io.StringIO(f"{PASSWORD}\n"))
    argv = ["models", "import", str(path), "--user", "admin", "--password-stdin"]
    assert cli.main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: cannot import '{path.parent / 'model.yaml'}'")
    (event,) = _installs()
    assert event.outcome == Outcome.MINOR_FAILURE
    assert event.details["reason"] in err


def test_a_package_that_cannot_be_written_is_a_clear_failure_not_a_crash(tmp_path: Path) -> None:
    """The weights (8 MB) are larger than the file-size limit the command runs under (2 MB):
    copying them into the package fails with EFBIG, a real OSError inside the build."""
    from torch import nn

    src = tmp_path / "src"
    src.mkdir()
    big = nn.Sequential(*list(small_cnn())[:-1], nn.Linear(8, 250_000), nn.Linear(250_000, 2))
    path = export_onnx(big.eval(), src / "model.onnx")
    (src / "model.yaml").write_text(ONNX_DESCRIPTION, encoding="utf-8")
    assert path.stat().st_size > 4 * 2**20
    profile_with_users()
    limit = 2 * 2**20

    def limited() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    code = "import sys; from cli import main; sys.exit(main(sys.argv[1:]))"
    argv = ["models", "import", str(path), "--user", "admin", "--password-stdin"]
    done = subprocess.run(  # the exit status is asserted below
        [sys.executable, "-c", code, *argv],
        input=f"{PASSWORD}\n",
        capture_output=True,
        text=True,
        cwd=REPO,
        env=os.environ.copy(),
        preexec_fn=limited,  # set in the child before exec: only it is limited
        timeout=300,
    )
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.startswith(f"error: cannot import '{path}': writing the package: ")
    assert "File too large" in done.stderr, done.stderr
    (event,) = _installs()
    assert event.outcome == Outcome.MINOR_FAILURE
    assert "File too large" in event.details["reason"]
    assert not (profile_dir() / "models" / "hospital-chest").exists()
