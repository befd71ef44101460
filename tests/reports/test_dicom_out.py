"""Every object a read produces, built over real images: valid by dciodvfy (no errors), with
the patient/study of its images, and read back by core.dicom_out.read to what was sent."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pydicom
import pytest

from core.dicom_out.common import ExportError
from core.dicom_out.gsps import Window, build_gsps, mark_caption
from core.dicom_out.kos import build_kos
from core.dicom_out.measurements import build_measurement_report
from core.dicom_out.read import read_gsps, read_kos, read_measurements, window_of
from core.dicom_out.report_sr import build_report_sr, report_text
from core.reports.items import KeyImage, Mark, Value
from core.reports.model import Report
from tests.reports.conftest import dciodvfy, ref

SIGNED_AT = datetime(2026, 12, 6, 23, 15, 30, tzinfo=UTC)
HU = "[hnsf'U]"
PATIENT_STUDY = ("PatientName", "PatientID", "PatientBirthDate", "StudyInstanceUID", "StudyID")


def _same_context(obj: pydicom.Dataset, source: pydicom.Dataset) -> None:
    for keyword in PATIENT_STUDY:
        assert str(obj.get(keyword) or "") == str(source.get(keyword) or ""), keyword
    assert obj.SeriesInstanceUID != source.SeriesInstanceUID
    assert obj.SOPInstanceUID != source.SOPInstanceUID


def _signed(ct3: list[pydicom.Dataset]) -> Report:
    draft = Report.draft(
        str(ct3[0].StudyInstanceUID),
        "Ada Lovelace",
        findings="Liver: 2 cm hypodense lesion, segment VI.\n\nSpleen: normal – size 11 cm.",
        impression="Indeterminate liver lesion; MR suggested.",
        at=SIGNED_AT,
    )
    return draft.sign("Ada Lovelace", at=SIGNED_AT)


def _marks(ct3: list[pydicom.Dataset]) -> list[Mark]:
    a, b, c = (ref(ds) for ds in ct3)
    return [
        Mark(
            "polyline", ((100.5, 120.0), (180.25, 200.0)), a, "L1", (Value("length", 42.5, "mm"),)
        ),
        Mark(
            "polygon",
            ((200, 200), (260, 200), (260, 250), (200, 250)),
            b,
            "ROI 1",
            (Value("area", 1875.0, "mm2"), Value("mean", 45.2, HU), Value("sd", 3.5, HU)),
        ),
        Mark(
            "ellipse",
            ((300, 300), (340, 300), (320, 290), (320, 310)),
            b,
            "ROI 2",
            (Value("mean", 12.0, HU), Value("min", -5.0, HU), Value("max", 30.0, HU)),
        ),
        Mark("point", ((256, 256),), c, "P1", (Value("value", 61.0, HU),)),
        Mark("polyline", ((10, 10), (40, 10), (40, 40)), c, "A1", (Value("angle", 90.0, "deg"),)),
        Mark("text", ((20, 480),), c, "see prior"),
    ]


def test_report_sr_is_valid_and_carries_the_signed_text(ct3, tmp_path: Path) -> None:
    report = _signed(ct3)
    key = ref(ct3[1])
    sr = build_report_sr(report, ct3, [key], organization="St Elsewhere")
    errors, _warnings = dciodvfy(sr, tmp_path)
    assert errors == set()
    _same_context(sr, ct3[0])
    back = pydicom.dcmread(tmp_path / f"{sr.SOPInstanceUID}.dcm")
    assert back.ContentTemplateSequence[0].TemplateIdentifier == "2000"
    assert back.ConceptNameCodeSequence[0].CodeValue == "18748-4"
    assert report_text(back) == {
        "Findings": [report.findings],
        "Impressions": [report.impression],
    }
    assert (back.CompletionFlag, back.VerificationFlag) == ("COMPLETE", "VERIFIED")
    assert str(back.VerifyingObserverSequence[0].VerifyingObserverName) == "Lovelace^Ada"
    assert back.VerifyingObserverSequence[0].VerificationDateTime.startswith("20261206231530")
    assert (back.ContentDate, back.ContentTime[:6]) == ("20261206", "231530")
    observers = [str(i.PersonName) for i in back.ContentSequence if i.ValueType == "PNAME"]
    assert observers == ["Lovelace^Ada"]
    finding = back.ContentSequence[-2].ContentSequence[0]
    image = finding.ContentSequence[0]
    assert image.RelationshipType == "INFERRED FROM"
    assert image.ReferencedSOPSequence[0].ReferencedSOPInstanceUID == key.sop_instance_uid


def test_addendum_version_names_its_predecessor(ct3, tmp_path: Path) -> None:
    report = _signed(ct3)
    first = build_report_sr(report, ct3)
    later = report.add_addendum(
        "Prior CT compared: stable.", "Grace Hopper", at=SIGNED_AT.replace(hour=23, minute=50)
    )
    second = build_report_sr(later, ct3, previous=first)
    errors, _ = dciodvfy(second, tmp_path)
    assert errors == set()
    assert report_text(second)["Addendum"] == ["Prior CT compared: stable."]
    assert report_text(second)["Findings"] == [report.findings]
    pred = second.PredecessorDocumentsSequence[0].ReferencedSeriesSequence[0]
    assert pred.ReferencedSOPSequence[0].ReferencedSOPInstanceUID == first.SOPInstanceUID
    names = [str(o.VerifyingObserverName) for o in second.VerifyingObserverSequence]
    assert names == ["Lovelace^Ada", "Hopper^Grace"]


def test_report_sr_refuses_a_draft_and_foreign_images(ct3, enhanced_mr) -> None:
    draft = Report.draft(str(ct3[0].StudyInstanceUID), "Ada", findings="x")
    with pytest.raises(ExportError, match="is draft; only a signed report"):
        build_report_sr(draft, ct3)
    with pytest.raises(ExportError, match="not among the study's images"):
        build_report_sr(_signed(ct3), ct3, [ref(enhanced_mr)])
    with pytest.raises(ExportError, match="span 2 studies"):
        build_report_sr(_signed(ct3), [*ct3, enhanced_mr])


@pytest.mark.parametrize("title", ["of_interest", "for_report"])
def test_kos_is_valid_and_reads_back(ct3, title: str, tmp_path: Path) -> None:
    keys = [KeyImage(ref(ct3[0]), "lesion"), KeyImage(ref(ct3[2]))]
    kos = build_kos(keys, ct3, observer="Ada Lovelace", title=title, at=SIGNED_AT)
    errors, _ = dciodvfy(kos, tmp_path)
    assert errors == set()
    _same_context(kos, ct3[0])
    selection = read_kos(pydicom.dcmread(tmp_path / f"{kos.SOPInstanceUID}.dcm"))
    assert (
        selection.title
        == {"of_interest": "Of Interest", "for_report": "For Report Attachment"}[title]
    )
    assert [r.sop_instance_uid for r in selection.images] == [
        str(ct3[0].SOPInstanceUID),
        str(ct3[2].SOPInstanceUID),
    ]
    assert "lesion" in selection.description


def test_frames_of_a_multiframe_image_are_kept(enhanced_mr, tmp_path: Path) -> None:
    keys = [KeyImage(ref(enhanced_mr, 5)), KeyImage(ref(enhanced_mr, 33))]
    kos = build_kos(keys, [enhanced_mr], observer="Ada Lovelace")
    marks = [
        Mark(
            "ellipse",
            ((10, 20), (30, 20), (20, 15), (20, 25)),
            ref(enhanced_mr, 7),
            "R",
            (Value("mean", 812.0, "1"),),
        ),
        Mark(
            "polyline", ((1, 1), (60, 60)), ref(enhanced_mr, 9), "L", (Value("length", 99.0, "mm"),)
        ),
    ]
    tid1500 = build_measurement_report(marks, [enhanced_mr], observer="Ada Lovelace")
    gsps = build_gsps(marks, [enhanced_mr], creator="Ada Lovelace", window=Window(600, 1200))
    for obj in (kos, tid1500, gsps):
        errors, _ = dciodvfy(obj, tmp_path)
        assert errors == set(), obj.SOPClassUID
    assert [r.frame for r in read_kos(kos).images] == [5, 33]
    measured = read_measurements(tid1500)
    assert {(k.frame, m.quantity) for k, ms in measured.items() for m in ms} == {
        (7, "MR signal intensity"),
        (9, "Length"),
    }
    assert {k.frame for k in read_gsps(gsps)} == {7, 9}
    # frames 1-32 are a magnitude image, 33-64 a field map: two rescales, one window
    mixed = [
        *marks,
        Mark("point", ((5, 5),), ref(enhanced_mr, 40), "F", (Value("value", 3.0, "1"),)),
    ]
    with pytest.raises(ExportError, match="2 different rescale"):
        build_gsps(mixed, [enhanced_mr], creator="Ada Lovelace", window=Window(600, 1200))


def test_tid1500_is_valid_and_reads_back_per_image(ct3, tmp_path: Path) -> None:
    marks = _marks(ct3)
    sr = build_measurement_report(marks, ct3, observer="Ada Lovelace", at=SIGNED_AT)
    errors, _ = dciodvfy(sr, tmp_path)
    assert errors == set()
    _same_context(sr, ct3[0])
    assert sr.ContentTemplateSequence[0].TemplateIdentifier == "1500"
    back = read_measurements(pydicom.dcmread(tmp_path / f"{sr.SOPInstanceUID}.dcm"))
    measured = [m for m in marks if m.values]
    expected: dict[str, set[tuple[str, float, str, tuple]]] = {}
    for mark in measured:
        points = mark.points + (mark.points[:1] if mark.kind == "polygon" else ())
        for v in mark.values:
            expected.setdefault(mark.image.sop_instance_uid, set()).add(
                (mark.label, v.value, v.unit, tuple(points))
            )
    got = {
        key.sop_instance_uid: {(m.label, m.value, m.unit, m.points) for m in ms}
        for key, ms in back.items()
    }
    assert got == expected
    roi1 = [m for ms in back.values() for m in ms if m.label == "ROI 1"]
    assert {(m.quantity, m.derivation) for m in roi1} == {
        ("Area", ""),
        ("Attenuation Coefficient", "Mean"),
        ("Attenuation Coefficient", "Standard Deviation"),
    }
    with pytest.raises(ExportError, match="at least one mark with a measured value"):
        build_measurement_report(marks[-1:], ct3, observer="Ada")


def test_gsps_is_valid_and_reads_back_per_image(ct3, tmp_path: Path) -> None:
    marks = _marks(ct3)
    gsps = build_gsps(marks, ct3, creator="Ada Lovelace", window=Window(40, 400), at=SIGNED_AT)
    errors, _ = dciodvfy(gsps, tmp_path)
    assert errors == set()
    _same_context(gsps, ct3[0])
    back = pydicom.dcmread(tmp_path / f"{gsps.SOPInstanceUID}.dcm")
    assert window_of(back) == (40.0, 400.0)
    assert str(back.ContentCreatorName) == "Lovelace^Ada"
    graphics = read_gsps(back)
    for mark in marks:
        drawn = graphics[mark.image]
        texts = {g.text for g in drawn if g.kind == "TEXT"}
        assert mark_caption(mark) in texts
        if mark.kind == "text":
            continue
        points = mark.points + (mark.points[:1] if mark.kind == "polygon" else ())
        kind = {"polygon": "POLYLINE"}.get(mark.kind, mark.kind.upper())
        assert (kind, points) in {(g.kind, g.points) for g in drawn}
    assert all(g.units == "PIXEL" for gs in graphics.values() for g in gs)
    with pytest.raises(ExportError, match="window width must be positive"):
        Window(40, 0)
