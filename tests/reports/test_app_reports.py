"""The report use cases on a real encrypted profile: draft, edit, sign with the password again
(and the second factor where IT requires one), addendum, export to files; each audited by
user, patient, study and objects; a signed row cannot be changed even by SQL."""

from __future__ import annotations

from pathlib import Path

import pydicom
import pyotp
import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import inspect, text

from core.app import reports as app
from core.app.access import series_viewed
from core.app.workstation import Workstation
from core.audit.vocabulary import EventType, Outcome
from core.config import SecuritySettings
from core.dicom_out.report_sr import report_text
from core.imaging.index import build_index
from core.reports.model import ReportError, ReportState
from core.security.users import AuthError, PermissionDenied, SecondFactorRequired
from core.store.database import MIGRATIONS, STORE_ERRORS
from tests.reports.conftest import CT3_DIR, PASSWORD, add_users


def _report_events(ws: Workstation) -> list[tuple[str, str, dict[str, str]]]:
    found = []
    for e in ws.audit.iter_events(event_type=EventType.INSTANCES_ACCESSED):
        if str(e.details.get("action", "")).startswith("report-"):
            objects = {o["kind"]: o["id"] for o in e.objects}
            found.append((e.user, str(e.details["action"]), objects))
    return found


def test_draft_edit_sign_addendum_each_audited(ws: Workstation, study) -> None:
    study_uid, patient_id = study
    assert app.report_states(ws, [study_uid, "1.2.3"]) == {
        study_uid: ReportState.NONE,
        "1.2.3": ReportState.NONE,
    }
    first = app.save_draft(
        ws, study_uid, findings="Liver: normal.", impression="", template_id="ct_abdomen"
    )
    assert (first.revision, first.report.state, first.report.patient_id) == (
        0,
        ReportState.DRAFT,
        patient_id,
    )
    edited = app.save_draft(
        ws,
        study_uid,
        findings="Liver: normal.\nSpleen: normal.",
        impression="Normal.",
        expected_revision=0,
    )
    assert edited.revision == 1
    with pytest.raises(app.ReportConflict, match="changed since it was read"):
        app.save_draft(ws, study_uid, findings="stale", impression="", expected_revision=0)

    with pytest.raises(AuthError):
        app.sign_report(ws, study_uid, "wrong password")
    assert app.get_report(ws, study_uid).report.state is ReportState.DRAFT  # type: ignore[union-attr]
    failed = [
        e
        for e in ws.audit.iter_events(event_type=EventType.USER_AUTHENTICATION)
        if e.outcome == Outcome.MINOR_FAILURE and e.user == "dr-a"
    ]
    assert len(failed) == 1  # the wrong password is recorded as the sign-in's own failures are

    signed = app.sign_report(ws, study_uid, PASSWORD)
    assert (signed.report.state, signed.report.signer) == (ReportState.SIGNED, "dr-a")
    stored = app.get_report(ws, study_uid)
    assert stored is not None
    assert stored.report == signed.report  # what was signed is what the store gives back
    with pytest.raises(ReportError, match="signed; add an addendum"):
        app.save_draft(ws, study_uid, findings="changed", impression="")
    later = app.add_addendum(ws, study_uid, "Prior compared: stable.", PASSWORD)
    assert [a.text for a in later.report.addenda] == ["Prior compared: stable."]
    assert later.report.findings == signed.report.findings
    assert app.report_states(ws, [study_uid]) == {study_uid: ReportState.SIGNED}

    events = _report_events(ws)
    assert [(user, action) for user, action, _ in events] == [
        ("dr-a", "report-draft"),
        ("dr-a", "report-edit"),
        ("dr-a", "report-sign"),
        ("dr-a", "report-addendum"),
    ]
    for _user, _action, objects in events:
        assert objects == {"patient": patient_id, "study": study_uid, "report": study_uid}
    assert ws.audit.verify().ok


def test_who_may_and_what_is_refused(ws: Workstation, study, tmp_path: Path) -> None:
    study_uid, _ = study
    with pytest.raises(ReportError, match="no report to sign"):
        app.sign_report(ws, study_uid, PASSWORD)
    with pytest.raises(app.StudyNotRecorded, match="not in the local study database"):
        app.save_draft(ws, "1.2.3.4", findings="x", impression="")
    app.save_draft(ws, study_uid, findings="x", impression="")
    with pytest.raises(ReportError, match="is draft; sign it first"):
        app.export_report(ws, study_uid, [], out_dir=tmp_path)
    ws.session.logout()
    ws.session.login("tech", PASSWORD)
    with pytest.raises(PermissionDenied, match="may not decide"):
        app.save_draft(ws, study_uid, findings="y", impression="")
    assert app.get_report(ws, study_uid) is not None  # a technologist may read it


def test_a_signed_row_cannot_be_changed_even_by_sql(ws: Workstation, study) -> None:
    study_uid, _ = study
    app.save_draft(ws, study_uid, findings="as signed", impression="")
    app.sign_report(ws, study_uid, PASSWORD)
    with (
        pytest.raises(STORE_ERRORS, match="signed report cannot be changed"),
        ws.db.transaction() as conn,
    ):
        conn.execute(
            text("UPDATE reports SET findings = 'forged' WHERE study_uid = :u"), {"u": study_uid}
        )
    assert app.get_report(ws, study_uid).report.findings == "as signed"  # type: ignore[union-attr]


def test_second_factor_where_it_is_required(tmp_path: Path) -> None:
    ws = Workstation.open(tmp_path / "ws.db", SecuritySettings(mfa_required_roles=["radiologist"]))
    try:
        add_users(ws)
        enrolment = ws.users.mfa.begin("dr-a")
        ws.session.login("dr-a", PASSWORD, pyotp.TOTP(enrolment.secret).now())  # confirms it
        if not CT3_DIR.is_dir():
            pytest.skip(f"the shared 3-slice CT is not at '{CT3_DIR}'")
        ((patient, st, series),) = list(build_index([str(CT3_DIR)]).iter_series())
        series_viewed(ws, patient, st, series)
        app.save_draft(ws, st.study_instance_uid, findings="x", impression="y")
        with pytest.raises(SecondFactorRequired):
            app.sign_report(ws, st.study_instance_uid, PASSWORD)
        assert app.get_report(ws, st.study_instance_uid).report.state is ReportState.DRAFT  # type: ignore[union-attr]
        signed = app.sign_report(ws, st.study_instance_uid, PASSWORD, enrolment.recovery_codes[0])
        assert signed.report.state is ReportState.SIGNED
    finally:
        ws.close()


def test_export_writes_sr_and_pdf_audited_and_versions_after_an_addendum(
    ws: Workstation, study, tmp_path: Path
) -> None:
    from pypdf import PdfReader

    study_uid, patient_id = study
    sources = [pydicom.dcmread(p) for p in sorted(CT3_DIR.glob("*.dcm"))]
    app.save_draft(
        ws, study_uid, findings="Liver: 2 cm lesion.\nSpleen: normal.", impression="Lesion."
    )
    signed = app.sign_report(ws, study_uid, PASSWORD).report
    out = tmp_path / "out"
    out.mkdir()
    first = app.export_report(ws, study_uid, sources, out_dir=out)
    assert [e.kind for e in first] == ["SR", "PDF"]
    sr = pydicom.dcmread(first[0].destination)
    assert report_text(sr) == {"Findings": [signed.findings], "Impressions": [signed.impression]}
    pdf_text = " ".join(PdfReader(first[1].destination).pages[0].extract_text().split())
    assert " ".join(signed.findings.split()) in pdf_text
    export_events = [e for e in ws.audit.iter_events(event_type=EventType.EXPORT)]
    assert len(export_events) == 1
    objects = {(o["kind"], o["id"]) for o in export_events[0].objects}
    assert {
        ("patient", patient_id),
        ("study", study_uid),
        ("instance", sr.SOPInstanceUID),
    } <= objects
    assert ("file", str(Path(first[1].destination).resolve())) in objects
    assert export_events[0].user == "dr-a"

    app.add_addendum(ws, study_uid, "Prior compared.", PASSWORD)
    second = app.export_report(ws, study_uid, sources, out_dir=out)
    newer = pydicom.dcmread(second[0].destination)
    assert report_text(newer)["Addendum"] == ["Prior compared."]
    pred = (
        newer.PredecessorDocumentsSequence[0].ReferencedSeriesSequence[0].ReferencedSOPSequence[0]
    )
    assert pred.ReferencedSOPInstanceUID == sr.SOPInstanceUID
    stored = app.get_report(ws, study_uid)
    assert [e.kind for e in stored.exported] == ["SR", "PDF", "SR", "PDF"]  # type: ignore[union-attr]

    with pytest.raises(OSError, match="No such file"):
        app.export_report(ws, study_uid, sources, out_dir=tmp_path / "missing")
    outcomes = [e.outcome for e in ws.audit.iter_events(event_type=EventType.EXPORT)]
    assert outcomes == [Outcome.SUCCESS, Outcome.SUCCESS, Outcome.SUCCESS, Outcome.MINOR_FAILURE]
    assert len(app.get_report(ws, study_uid).exported) == 4  # type: ignore[union-attr]


def test_migration_0005_up_and_down(ws: Workstation, study) -> None:
    study_uid, _ = study
    app.save_draft(ws, study_uid, findings="x", impression="")
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with ws.db.engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0004")
    assert "reports" not in inspect(ws.db.engine).get_table_names()
    with ws.db.engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "head")
    assert "reports" in inspect(ws.db.engine).get_table_names()
    assert app.get_report(ws, study_uid) is None
    assert ws.audit.verify().ok


def test_the_drafter_drafts_an_impression_audited_and_stores_nothing(
    ws: Workstation, study
) -> None:
    """The real report-drafter package (a tiny T5) on CPU: the draft is the model's own output
    for the findings, labelled as a demonstration model's, and only the Model Run is recorded."""
    from core.inference.manager import ModelManager
    from models.adapters.transformers_adapter import load as load_t5
    from models.manifest import load_package

    study_uid, patient_id = study
    package = load_package(
        Path(__file__).resolve().parents[2] / "models" / "zoo" / "report-drafter"
    )
    findings = (package.path / "selftest" / "input.txt").read_text(encoding="utf-8").strip()
    manager = ModelManager([package], device="cpu")
    try:
        draft = app.draft_impression(ws, manager, study_uid, findings)
    finally:
        manager.shutdown()
    direct = load_t5(package, "cpu")
    try:
        (expected,) = direct.predict([findings])
    finally:
        direct.close()
    assert draft.text == expected.strip()
    assert draft.text
    assert draft.notice.startswith("Drafted by a demonstration model (report-drafter 1.0.0)")
    assert app.get_report(ws, study_uid) is None  # nothing saved: the draft goes to the editor
    (run,) = list(ws.audit.iter_events(event_type=EventType.MODEL_RUN))
    objects = {(o["kind"], o["id"]) for o in run.objects}
    assert {
        ("patient", patient_id),
        ("study", study_uid),
        ("model", "report-drafter@1.0.0"),
    } <= objects
    assert findings not in str(run.details)  # the text stays out of the trail
    with pytest.raises(ReportError, match="findings are empty"):
        app.draft_impression(ws, manager, study_uid, "  ")
