"""``doctorai inspect`` and ``doctorai render`` through the real command dispatcher."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import cli
from core.imaging.display import render
from core.imaging.pixels import read_frame
from tests.imaging.refdata import CT_TS, PYDICOM_TF, WG04, instance

REPO = Path(__file__).resolve().parents[2]


def test_inspect_json(ct_stack: Path, dicom_data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    broken = dicom_data / PYDICOM_TF / "MR_truncated.dcm"
    code = cli.main(["inspect", str(ct_stack), str(broken), "--json"])
    assert code == 0
    data = json.loads(capsys.readouterr().out)
    (patient,) = data["patients"]
    (study,) = patient["studies"]
    (series,) = study["series"]
    assert series["modality"] == "CT"
    assert series["instances"] == 134
    assert series["frames"] == 134
    assert [e["path"] for e in data["errors"]] == [str(broken)]
    assert "truncated" in data["errors"][0]["reason"]


def test_inspect_text_lists_errors_on_stderr(
    dicom_data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    enhanced = dicom_data / "neurolabusc__dcm_qa_enh/In/Philips/IM_0027_fMAP.dcm"
    missing = "/no/such/folder"
    assert cli.main(["inspect", str(enhanced), missing]) == 0
    out, err = capsys.readouterr()
    assert "1 instance(s), 64 frame(s)" in out
    assert f"'{missing}': no such file or folder" in err
    assert cli.main(["inspect", missing]) == 1  # nothing usable at all


def test_render_writes_exactly_the_displayed_image(dicom_data: Path, tmp_path: Path) -> None:
    path = dicom_data / CT_TS / "CTImage.dcm"
    out = tmp_path / "ct.png"
    assert cli.main(["render", str(path), "--out", str(out), "--window", "-600", "1500"]) == 0
    written = np.asarray(Image.open(out))
    expected = render(read_frame(instance(path)), window=(-600.0, 1500.0))
    np.testing.assert_array_equal(written, expected)


def test_render_frame_and_default_window(dicom_data: Path, tmp_path: Path) -> None:
    path = dicom_data / "neurolabusc__dcm_qa_enh/In/Philips/IM_0027_fMAP.dcm"
    out = tmp_path / "mr.png"
    assert cli.main(["render", str(path), "--out", str(out), "--frame", "10"]) == 0
    np.testing.assert_array_equal(
        np.asarray(Image.open(out)), render(read_frame(instance(path), 10))
    )


def test_render_failure_is_clear(
    dicom_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = (
        dicom_data / CT_TS / "CTImage.dcm_JPEGProcess6_8TransferSyntax_1.2.840.10008.1.2.4.53.dcm"
    )
    out = tmp_path / "x.png"
    assert cli.main(["render", str(path), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert str(path) in err
    assert "1.2.840.10008.1.2.4.53" in err
    assert not out.exists()
    assert cli.main(["render", str(tmp_path / "nothing.dcm"), "--out", str(out)]) == 1
    assert "nothing.dcm" in capsys.readouterr().err


def test_render_subprocess_colour(dicom_data: Path, tmp_path: Path) -> None:
    """The real console path: a separate interpreter running the launcher."""
    path = dicom_data / WG04 / "US1_UNCR.dcm"
    out = tmp_path / "us.png"
    proc = subprocess.run(
        [sys.executable, "-m", "desktop.launcher", "render", str(path), "--out", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    img = np.asarray(Image.open(out))
    assert img.shape == (480, 640, 3)
    np.testing.assert_array_equal(img, read_frame(instance(path)).values)


def test_inspect_and_render_are_audited(
    dicom_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Reading patient data from the CLI leaves an Instances Accessed / Export event each."""
    from core.audit.log import AuditLog
    from core.audit.vocabulary import EventType
    from core.store.database import open_database

    path = dicom_data / CT_TS / "CTImage.dcm"
    out = tmp_path / "slice.png"
    assert cli.main(["inspect", str(path), "--json"]) == 0
    assert cli.main(["render", str(path), "--out", str(out)]) == 0
    capsys.readouterr()
    db = open_database()
    try:
        log = AuditLog(db)
        events = list(log.iter_events())
        assert log.verify().ok
    finally:
        db.close()
    kinds = [e.event_type for e in events]
    assert kinds == [EventType.INSTANCES_ACCESSED, EventType.EXPORT]
    accessed, export = events
    assert accessed.details["command"] == "inspect"
    assert accessed.role == "cli"
    header = instance(path)
    assert {"kind": "study", "id": header.study_instance_uid, "name": ""} in accessed.objects
    assert any(o["kind"] == "file" and o["id"] == str(out.resolve()) for o in export.objects)
    assert any(o["id"] == header.sop_instance_uid for o in export.objects)


def test_commands_refuse_to_run_unaudited(
    dicom_data: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """No keyring (so no audit trail): the command reads nothing and says why."""
    import keyring
    from keyring.backends.fail import Keyring as FailKeyring

    keyring.set_keyring(FailKeyring())
    out = tmp_path / "never.png"
    assert cli.main(["render", str(dicom_data / CT_TS / "CTImage.dcm"), "--out", str(out)]) == 3
    assert not out.exists()
    err = capsys.readouterr().err
    assert "audit trail" in err
    assert "keyring" in err.lower()
