"""``doctorai pacs`` through the real dispatcher, with the real encrypted audit trail."""

from __future__ import annotations

import json

import pytest

import cli
from tests.pacs.conftest import CT3_DIR


def _audit_types() -> list[tuple[str, int]]:
    from core.audit.log import AuditLog
    from core.store.database import open_database

    db = open_database()
    try:
        return [(e.event_type.meaning, e.outcome) for e in AuditLog(db).iter_events()]
    finally:
        db.close()


def test_search_retrieve_cache_and_audit(orthanc, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        cli.main(
            [
                "pacs",
                "search",
                "--url",
                orthanc.dicomweb,
                "--patient-id",
                "99000",
                "--series",
                "--json",
            ]
        )
        == 0
    )
    (study,) = json.loads(capsys.readouterr().out)
    assert study["patient_id"] == "99000"
    (series,) = study["series"]
    assert series["instance_count"] == 3

    assert (
        cli.main(["pacs", "retrieve", "--url", orthanc.dicomweb, "--study", study["study_uid"]])
        == 0
    )
    out = capsys.readouterr().out
    assert f"{series['series_uid']}: 3 instance(s)" in out
    assert cli.main(["pacs", "cache"]) == 0
    assert "1 series" in capsys.readouterr().out
    assert cli.main(["pacs", "cache", "--purge"]) == 0
    assert cli.main(["pacs", "cache"]) == 0
    assert "0 series" in capsys.readouterr().out

    events = _audit_types()
    assert ("Query", 0) in events
    assert ("DICOM Instances Transferred", 0) in events


def test_store_and_errors(orthanc_rw, capsys: pytest.CaptureFixture[str], tmp_path) -> None:
    import pydicom

    ds = pydicom.dcmread(next(CT3_DIR.glob("*.dcm")))
    ds.SOPInstanceUID = pydicom.uid.generate_uid()
    path = tmp_path / "copy.dcm"
    ds.save_as(path)
    assert cli.main(["pacs", "store", "--url", orthanc_rw.dicomweb, str(path)]) == 0
    assert "stored 1 instance(s)" in capsys.readouterr().out
    assert ("Export", 0) in _audit_types()

    assert cli.main(["pacs", "store", "--url", orthanc_rw.dicomweb, str(tmp_path / "no.dcm")]) == 1
    assert "cannot read" in capsys.readouterr().err
    assert cli.main(["pacs", "search", "--node", "nowhere"]) == 1
    assert "no PACS node named 'nowhere'" in capsys.readouterr().err
