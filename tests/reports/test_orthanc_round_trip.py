"""A read's objects through the real Orthanc of the PACS tests: stored with STOW-RS by the
project's PACS client, found by QIDO, retrieved by WADO and read back to what was sent."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pydicom
import pytest

from core.dicom_out.gsps import Window, build_gsps, mark_caption
from core.dicom_out.kos import build_kos
from core.dicom_out.measurements import build_measurement_report
from core.dicom_out.read import read_gsps, read_kos, read_measurements, window_of
from core.dicom_out.report_sr import build_report_sr, report_text
from core.pacs.client import client_for_url
from core.reports.items import KeyImage, Mark, Value
from core.reports.model import Report
from tests.pacs.conftest import CT3_DIR, RecordingSink
from tests.pacs.orthanc import OrthancServer, orthanc_server, unavailable_reason
from tests.reports.conftest import ref

AT = datetime(2026, 12, 6, 23, 59, tzinfo=UTC)


@pytest.fixture(scope="module")
def orthanc() -> Iterator[OrthancServer]:
    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)
    with orthanc_server() as server:
        server.upload(sorted(CT3_DIR.glob("*.dcm")))
        yield server


def test_report_kos_tid1500_and_gsps_round_trip(orthanc, ct3) -> None:
    client = client_for_url(orthanc.dicomweb, RecordingSink(), name="orthanc")
    study = str(ct3[0].StudyInstanceUID)
    report = Report.draft(
        study,
        "Ada Lovelace",
        findings="Liver: 2 cm lesion.\nSpleen: normal – 11 cm.",
        impression="Indeterminate lesion.",
        at=AT,
    ).sign("Ada Lovelace", at=AT)
    marks = [
        Mark("polyline", ((10, 10), (50, 60)), ref(ct3[0]), "L1", (Value("length", 42.5, "mm"),)),
        Mark(
            "ellipse",
            ((300, 300), (340, 300), (320, 290), (320, 310)),
            ref(ct3[1]),
            "ROI 1",
            (Value("mean", 45.2, "[hnsf'U]"), Value("area", 1256.6, "mm2")),
        ),
        Mark("text", ((20, 480),), ref(ct3[2]), "compare prior"),
    ]
    sent = {
        "SR": build_report_sr(report, ct3, [ref(ct3[1])]),
        "KO": build_kos([KeyImage(ref(ct3[1]), "lesion")], ct3, observer="Ada Lovelace"),
        "TID1500": build_measurement_report(marks, ct3, observer="Ada Lovelace"),
        "PR": build_gsps(marks, ct3, creator="Ada Lovelace", window=Window(60, 360)),
    }
    stored = client.store(list(sent.values()))
    assert set(stored) == {str(ds.SOPInstanceUID) for ds in sent.values()}

    def back(ds: pydicom.Dataset) -> pydicom.Dataset:
        series = [s for s in client.search_series(study) if s.series_uid == ds.SeriesInstanceUID]
        assert len(series) == 1, "the object's own new series is in the study on the server"
        assert series[0].modality == ds.Modality
        return client.retrieve_instance(study, ds.SeriesInstanceUID, ds.SOPInstanceUID)

    sr = back(sent["SR"])
    assert report_text(sr) == {"Findings": [report.findings], "Impressions": [report.impression]}
    assert sr.VerificationFlag == "VERIFIED"

    kos = read_kos(back(sent["KO"]))
    assert [r.sop_instance_uid for r in kos.images] == [str(ct3[1].SOPInstanceUID)]

    measured = read_measurements(back(sent["TID1500"]))
    assert {
        (k.sop_instance_uid, m.label, m.value, m.unit) for k, ms in measured.items() for m in ms
    } == {
        (mark.image.sop_instance_uid, mark.label, v.value, v.unit)
        for mark in marks
        for v in mark.values
    }

    ps = back(sent["PR"])
    assert window_of(ps) == (60.0, 360.0)
    graphics = read_gsps(ps)
    for mark in marks:
        drawn = graphics[mark.image]
        assert mark_caption(mark) in {g.text for g in drawn}
        if mark.kind != "text":
            assert (mark.kind.upper(), mark.points) in {(g.kind, g.points) for g in drawn}


def test_signed_report_exported_to_pacs_through_the_use_case(orthanc, ws, study, ct3) -> None:
    from core.app import reports as app
    from core.audit.vocabulary import EventType
    from tests.reports.conftest import PASSWORD

    study_uid, patient_id = study
    client = client_for_url(orthanc.dicomweb, RecordingSink(), name="orthanc")
    app.save_draft(ws, study_uid, findings="Kidneys: normal.\nBowel: normal.", impression="Normal.")
    signed = app.sign_report(ws, study_uid, PASSWORD).report
    keys = [KeyImage(ref(ct3[0]), "overview")]
    kos = build_kos(keys, ct3, observer="dr-a", title="for_report")
    (sr_done,) = app.export_report(ws, study_uid, ct3, key_images=[ref(ct3[0])], client=client)
    (kos_done,) = app.export_objects(ws, study_uid, [("KOS", kos)], client=client)
    assert (sr_done.destination, kos_done.destination) == ("pacs:orthanc", "pacs:orthanc")

    sr = client.retrieve_instance(study_uid, sr_done.series_instance_uid, sr_done.sop_instance_uid)
    assert report_text(sr) == {"Findings": [signed.findings], "Impressions": [signed.impression]}
    back = read_kos(
        client.retrieve_instance(study_uid, kos_done.series_instance_uid, kos_done.sop_instance_uid)
    )
    assert (back.title, [r.sop_instance_uid for r in back.images]) == (
        "For Report Attachment",
        [str(ct3[0].SOPInstanceUID)],
    )
    events = list(ws.audit.iter_events(event_type=EventType.EXPORT))
    assert len(events) == 2
    for e, uid in zip(events, (sr_done.sop_instance_uid, kos_done.sop_instance_uid), strict=True):
        objects = {(o["kind"], o["id"]) for o in e.objects}
        assert {("patient", patient_id), ("study", study_uid), ("instance", uid)} <= objects
        assert ("node", "orthanc") in objects
        assert e.user == "dr-a"
