"""Signing rules and export failures of the report use cases, on a real encrypted profile
(issue 17 review): the password check before a signature is a re-authentication in the trail,
not a sign-in; a model's unedited impression is signed only once its review is confirmed
(refused and audited otherwise); an export that pydicom refuses half-way is recorded as failed,
naming what was written before."""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest

from core.app import reports as app
from core.app.workstation import Workstation
from core.audit.vocabulary import EventType, Outcome
from core.reports.model import ReportState
from tests.reports.conftest import CT3_DIR, PASSWORD


def _accounts(ws: Workstation) -> dict[str, str | None]:
    return {a.username: a.last_sign_in for a in ws.users.list_accounts()}


def test_signing_is_audited_as_a_reauthentication_not_a_sign_in(
    ws: Workstation, study: tuple[str, str]
) -> None:
    study_uid, _ = study
    app.save_draft(ws, study_uid, findings="Liver: normal.", impression="Normal.")
    signed_in_at = _accounts(ws)["dr-a"]
    logins_before = [
        e for e in ws.audit.iter_events(event_type=EventType.USER_AUTHENTICATION)
        if e.details.get("action") == "login"
    ]  # fmt: skip
    app.sign_report(ws, study_uid, PASSWORD)
    auth = [
        (e.user, e.details.get("action"), e.outcome)
        for e in ws.audit.iter_events(event_type=EventType.USER_AUTHENTICATION)
    ]
    assert auth[-1] == ("dr-a", "reauth-sign", Outcome.SUCCESS)
    assert len([a for a in auth if a[1] == "login"]) == len(logins_before)
    assert _accounts(ws)["dr-a"] == signed_in_at


def test_an_unedited_model_draft_is_signed_only_once_its_review_is_confirmed(
    ws: Workstation, study: tuple[str, str]
) -> None:
    study_uid, patient_id = study
    app.save_draft(ws, study_uid, findings="Liver: lesion.", impression="Hepatic lesion.")
    auth_before = len(list(ws.audit.iter_events(event_type=EventType.USER_AUTHENTICATION)))
    with pytest.raises(app.UnreviewedDraft, match="model's draft that nobody has edited"):
        app.sign_report(ws, study_uid, PASSWORD, unedited_model_draft=True)
    assert app.get_report(ws, study_uid).report.state is ReportState.DRAFT  # type: ignore[union-attr]
    # refused before the password is checked: no re-authentication spent on it
    assert len(list(ws.audit.iter_events(event_type=EventType.USER_AUTHENTICATION))) == auth_before
    refusals = [
        e
        for e in ws.audit.iter_events(event_type=EventType.INSTANCES_ACCESSED)
        if e.details.get("action") == "report-sign"
    ]
    assert [(e.outcome, e.details.get("reason")) for e in refusals] == [
        (Outcome.MINOR_FAILURE, "unreviewed model draft")
    ]
    assert {o["kind"]: o["id"] for o in refusals[0].objects}["patient"] == patient_id

    signed = app.sign_report(ws, study_uid, PASSWORD, unedited_model_draft=True, reviewed=True)
    assert signed.report.state is ReportState.SIGNED
    last = [
        e
        for e in ws.audit.iter_events(event_type=EventType.INSTANCES_ACCESSED)
        if e.details.get("action") == "report-sign"
    ][-1]
    assert (last.outcome, last.details.get("reviewed_model_draft")) == (Outcome.SUCCESS, True)
    assert app.review_refusal(False, False) is None  # a radiologist's own words: no box


def test_an_export_pydicom_refuses_half_way_is_recorded_as_failed(
    ws: Workstation, study: tuple[str, str], tmp_path: Path
) -> None:
    study_uid, _ = study
    good = pydicom.dcmread(sorted(CT3_DIR.glob("*.dcm"))[0])
    bad = pydicom.Dataset()  # no file meta, no encoding: pydicom refuses to write it
    bad.SOPInstanceUID = pydicom.uid.generate_uid()
    bad.SeriesInstanceUID = pydicom.uid.generate_uid()
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(ValueError, match="encoding to use") as caught:
        app.export_objects(ws, study_uid, [("CT", good), ("KOS", bad)], out_dir=out)
    written = out / f"CT_{good.SOPInstanceUID}.dcm"
    assert written.is_file()
    assert any(str(written) in note for note in caught.value.__notes__)
    exports = list(ws.audit.iter_events(event_type=EventType.EXPORT))
    assert [e.outcome for e in exports] == [Outcome.SUCCESS, Outcome.MINOR_FAILURE]
    assert exports[-1].details["written"] == [str(written)]
    assert "encoding to use" in str(exports[-1].details["reason"])


def test_a_draft_created_elsewhere_after_reading_none_is_a_conflict(
    ws: Workstation, study: tuple[str, str]
) -> None:
    study_uid, _ = study
    app.save_draft(ws, study_uid, findings="Theirs.", impression="")
    with pytest.raises(app.ReportConflict, match=r"since it was read \(none, now 0\)"):
        app.save_draft(
            ws, study_uid, findings="Mine.", impression="", expected_revision=app.NO_REPORT
        )
    assert app.get_report(ws, study_uid).report.findings == "Theirs."  # type: ignore[union-attr]
