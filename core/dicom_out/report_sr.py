"""The signed report as a Comprehensive SR following TID 2000 (Basic Diagnostic Imaging Report).

highdicom has no TID 2000 class, so the tree is built here from its content items:

    CONTAINER (18748-4, LN, "Diagnostic Imaging Report")  TID 2000
      HAS CONCEPT MOD  CODE Language of Content Item and Descendants   (TID 1204)
      HAS OBS CONTEXT  observer type Person, Person Observer Name = signer   (TID 1001/1002)
      CONTAINS CONTAINER (121070, DCM, "Findings")
        CONTAINS TEXT (121071, DCM, "Finding") = the findings, exactly as signed
          INFERRED FROM IMAGE (121080, DCM, "Best illustration of finding")  per key image
      CONTAINS CONTAINER (121072, DCM, "Impressions")
        CONTAINS TEXT (121073, DCM, "Impression") = the impression, exactly as signed
      CONTAINS CONTAINER (121078, DCM, "Addendum")  per addendum, ObservationDateTime = signed
        HAS OBS CONTEXT  Person Observer Name = its author
        CONTAINS TEXT (121078, DCM, "Addendum") = its text

One TEXT item per section keeps the signed text byte for byte (UT keeps line breaks), which is
what "the SR's text matches what was signed" needs. The document is COMPLETE and VERIFIED by
the signer (and each addendum's author, at their times); a version with addenda names the
previous SR in the Predecessor Documents Sequence.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from core.dicom_out.common import (
    MANUFACTURER,
    SERIES_REPORT,
    ExportError,
    charset,
    check_sources,
    dicom_datetime,
    person_name,
    person_observer,
    stamp,
)
from core.reports.items import ImageRef
from core.reports.model import Report, ReportState

if TYPE_CHECKING:
    import highdicom as hd
    import pydicom

REPORT_TITLE = ("18748-4", "LN", "Diagnostic Imaging Report")


def _image_item(ref: ImageRef, ds: pydicom.Dataset) -> hd.sr.ImageContentItem:
    import highdicom as hd
    from pydicom.sr.codedict import codes

    return hd.sr.ImageContentItem(
        name=codes.DCM.BestIllustrationOfFinding,
        referenced_sop_class_uid=str(ds.SOPClassUID),
        referenced_sop_instance_uid=str(ds.SOPInstanceUID),
        referenced_frame_numbers=ref.frame if int(ds.get("NumberOfFrames", 1) or 1) > 1 else None,
        relationship_type=hd.sr.RelationshipTypeValues.INFERRED_FROM,
    )


def _section(
    heading: object, item_name: object, text: str, children: Sequence[Any] = ()
) -> hd.sr.ContainerContentItem:
    import highdicom as hd

    container = hd.sr.ContainerContentItem(
        name=heading,  # type: ignore[arg-type]
        relationship_type=hd.sr.RelationshipTypeValues.CONTAINS,
    )
    entry = hd.sr.TextContentItem(
        name=item_name,  # type: ignore[arg-type]
        value=text,
        relationship_type=hd.sr.RelationshipTypeValues.CONTAINS,
    )
    if children:
        entry.ContentSequence = hd.sr.ContentSequence(list(children))
    container.ContentSequence = hd.sr.ContentSequence([entry])
    return container


def build_report_sr(
    report: Report,
    sources: Sequence[pydicom.Dataset],
    key_images: Sequence[ImageRef] = (),
    *,
    organization: str = "",
    previous: pydicom.Dataset | None = None,
    series_number: int = SERIES_REPORT,
    instance_number: int = 1,
) -> hd.sr.ComprehensiveSR:
    """A TID 2000 report of a signed ``report`` over ``sources`` (images of its study)."""
    import highdicom as hd
    from pydicom.sr.codedict import codes

    if report.state is not ReportState.SIGNED or report.signed_at is None:
        raise ExportError(
            f"the report of study '{report.study_uid}' is {report.state.value}; "
            "only a signed report is exported as SR"
        )
    by_uid = check_sources("report SR", sources, key_images)
    study = str(sources[0].StudyInstanceUID)
    if study != report.study_uid:
        raise ExportError(
            f"the report is of study '{report.study_uid}' but its images are of '{study}'"
        )
    root = hd.sr.ContainerContentItem(
        name=hd.sr.CodedConcept(*REPORT_TITLE), template_id="2000", is_content_continuous=False
    )
    items: list[Any] = [
        *hd.sr.LanguageOfContentItemAndDescendants(
            language=hd.sr.CodedConcept("en-US", "RFC5646", "English (United States)")
        ),
        *person_observer(report.signer, organization),
    ]
    images = [_image_item(ref, by_uid[ref.sop_instance_uid]) for ref in key_images]
    items.append(_section(codes.DCM.Findings, codes.DCM.Finding, report.findings, images))
    items.append(_section(codes.DCM.Impressions, codes.DCM.Impression, report.impression))
    for part in report.addenda:
        block = _section(codes.DCM.Addendum, codes.DCM.Addendum, part.text)
        block.add_new(0x0040A032, "DT", dicom_datetime(part.signed_at))  # ObservationDateTime
        block.ContentSequence = hd.sr.ContentSequence(
            [*person_observer(part.author, organization), *block.ContentSequence]
        )
        items.append(block)
    root.ContentSequence = hd.sr.ContentSequence(items)
    # Verifying Organization: the caller's, else the images' institution, else said unknown
    verifier_org = organization or str(sources[0].get("InstitutionName", "") or "") or "Unknown"
    sr = hd.sr.ComprehensiveSR(
        evidence=list(sources),
        content=root,
        series_instance_uid=hd.UID(),
        series_number=series_number,
        sop_instance_uid=hd.UID(),
        instance_number=instance_number,
        manufacturer=MANUFACTURER,
        is_complete=True,
        is_final=True,
        is_verified=True,
        verifying_observer_name=person_name(report.signer),
        verifying_organization=verifier_org,
        previous_versions=[previous] if previous is not None else None,
        series_description="Diagnostic imaging report",
        specific_character_set=charset(sources),
    )
    stamp(sr, report.addenda[-1].signed_at if report.addenda else report.signed_at)
    observers = sr.VerifyingObserverSequence
    observers[0].VerificationDateTime = dicom_datetime(report.signed_at)
    for part in report.addenda:
        extra = type(observers[0])()
        extra.VerifyingObserverName = person_name(part.author)
        extra.VerifyingOrganization = verifier_org
        extra.VerificationDateTime = dicom_datetime(part.signed_at)
        extra.VerifyingObserverIdentificationCodeSequence = []
        observers.append(extra)
    return sr


def report_text(sr: pydicom.Dataset) -> dict[str, list[str]]:
    """The TEXT values of a TID 2000 SR by section heading meaning ("Findings", ...)."""
    found: dict[str, list[str]] = {}
    for section in getattr(sr, "ContentSequence", []):
        if getattr(section, "ValueType", "") != "CONTAINER":
            continue
        heading = str(section.ConceptNameCodeSequence[0].CodeMeaning)
        for item in getattr(section, "ContentSequence", []):
            if getattr(item, "ValueType", "") == "TEXT":
                found.setdefault(heading, []).append(str(item.TextValue))
    return found
