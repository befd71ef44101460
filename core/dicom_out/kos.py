"""Key images as a Key Object Selection document (TID 2010, highdicom's KOS).

Titles from CID 7010: "Of Interest" (113000) and, for images meant for the report, "For Report
Attachment" (113020; the issue's "For Report" - there is no DCM code of that exact name). A
key image on one frame of a multi-frame image keeps its frame in the IMAGE item's Referenced
Frame Number (highdicom references whole instances; the frames are added here).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from core.dicom_out.common import (
    MANUFACTURER,
    SERIES_KOS,
    ExportError,
    charset,
    check_sources,
    person_observer,
    stamp,
)
from core.reports.items import KeyImage

if TYPE_CHECKING:
    import highdicom as hd
    import pydicom

TITLES: dict[str, tuple[str, str, str]] = {
    "of_interest": ("113000", "DCM", "Of Interest"),
    "for_report": ("113020", "DCM", "For Report Attachment"),
}


def build_kos(
    key_images: Sequence[KeyImage],
    sources: Sequence[pydicom.Dataset],
    *,
    observer: str,
    title: str = "of_interest",
    description: str = "",
    at: datetime | None = None,
    series_number: int = SERIES_KOS,
) -> hd.ko.KeyObjectSelectionDocument:
    """A KOS selecting ``key_images`` (whole instances, or frames) among ``sources``."""
    import highdicom as hd

    if title not in TITLES:
        raise ExportError(f"unknown key object title '{title}'; known: {', '.join(TITLES)}")
    if not key_images:
        raise ExportError("a key object selection needs at least one key image")
    by_uid = check_sources("key object selection", sources, [k.image for k in key_images])
    frames: dict[str, list[int]] = {}
    for key in key_images:
        picked = frames.setdefault(key.image.sop_instance_uid, [])
        if key.image.frame is not None and key.image.frame not in picked:
            picked.append(key.image.frame)
    selected = [by_uid[uid] for uid in frames]
    notes = [f"{k.image.label}: {k.note}" for k in key_images if k.note]
    text = "; ".join([t for t in (description, *notes) if t])[:1024] or None
    content = hd.ko.KeyObjectSelection(
        document_title=hd.sr.CodedConcept(*TITLES[title]),
        referenced_objects=selected,
        observer_person_context=person_observer(observer),
        description=text,
    )
    kos = hd.ko.KeyObjectSelectionDocument(
        evidence=selected,
        content=content,
        series_instance_uid=hd.UID(),
        series_number=series_number,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer=MANUFACTURER,
        series_description=f"Key images: {TITLES[title][2]}",
        specific_character_set=charset(sources),
    )
    for item in kos.ContentSequence:
        if getattr(item, "ValueType", "") != "IMAGE":
            continue
        ref = item.ReferencedSOPSequence[0]
        uid = str(ref.ReferencedSOPInstanceUID)
        picked = frames.get(uid, [])
        if picked and int(by_uid[uid].get("NumberOfFrames", 1) or 1) > 1:
            ref.ReferencedFrameNumber = picked if len(picked) > 1 else picked[0]
    stamp(kos, at)
    return kos
