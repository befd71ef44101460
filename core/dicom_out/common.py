"""What every object of a read shares: the source images it refers to, who made it, when.

Patient and study modules are copied by highdicom from the referenced images; this module
checks those images first (one study, every reference present) and stamps the content date and
time in UTC with its offset, so an object made at 23:59 on one workstation and read on another
tells the same moment.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from core import __version__
from core.reports.items import ImageRef

if TYPE_CHECKING:
    import highdicom as hd
    import pydicom

MANUFACTURER = "DoctorAI"
MODEL_NAME = "DoctorAI Workstation"
SOFTWARE_VERSION = __version__
PRIVATE_SCHEME = "99DOCTORAI"

# Default series numbers of the objects a read produces (a site may renumber).
SERIES_REPORT = 950
SERIES_KOS = 951
SERIES_MEASUREMENTS = 952
SERIES_GSPS = 953


class ExportError(ValueError):
    """An object that cannot be built from what was given, naming the object and the reason."""


def charset(sources: Sequence[pydicom.Dataset]) -> str:
    """UTF-8 for every object made here: the report's text, "mm²" in a caption or a signer's
    name may hold characters that the sources' own character set (often the ASCII default)
    lacks; pydicom re-encodes the copied patient and study values."""
    del sources  # one charset for all; kept as a parameter so a site rule can come here
    return "ISO_IR 192"


def check_sources(
    what: str, sources: Sequence[pydicom.Dataset], refs: Iterable[ImageRef] = ()
) -> dict[str, pydicom.Dataset]:
    """The sources by SOP Instance UID, after checking they are one study and hold ``refs``."""
    if not sources:
        raise ExportError(f"the {what} needs the images it refers to; none were given")
    studies = {str(ds.StudyInstanceUID) for ds in sources}
    if len(studies) != 1:
        raise ExportError(f"the {what}'s images span {len(studies)} studies; one study only")
    by_uid = {str(ds.SOPInstanceUID): ds for ds in sources}
    for ref in refs:
        ds = by_uid.get(ref.sop_instance_uid)
        if ds is None:
            raise ExportError(
                f"the {what} refers to image '{ref.sop_instance_uid}', which is not among the "
                "study's images given for the export"
            )
        if str(ds.SOPClassUID) != ref.sop_class_uid:
            raise ExportError(
                f"image '{ref.sop_instance_uid}' has SOP Class {ds.SOPClassUID}, "
                f"not {ref.sop_class_uid} as the {what} says"
            )
        frames = int(ds.get("NumberOfFrames", 1) or 1)
        if ref.frame is not None and ref.frame > frames:
            raise ExportError(
                f"the {what} refers to frame {ref.frame} of image '{ref.sop_instance_uid}', "
                f"which has {frames} frame(s)"
            )
    return by_uid


def stamp(ds: pydicom.Dataset, at: datetime | None = None, *, presentation: bool = False) -> None:
    """Content date/time (a presentation state's creation date/time) and the instance's
    creation at ``at`` in UTC, with the UTC offset."""
    when = (at or datetime.now(UTC)).astimezone(UTC)
    date, time = when.strftime("%Y%m%d"), when.strftime("%H%M%S.%f")
    if presentation:
        ds.PresentationCreationDate, ds.PresentationCreationTime = date, time
    else:
        ds.ContentDate, ds.ContentTime = date, time
    ds.InstanceCreationDate, ds.InstanceCreationTime = date, time
    ds.TimezoneOffsetFromUTC = "+0000"


def dicom_datetime(at: datetime) -> str:
    """DICOM DT in UTC with its offset."""
    return at.astimezone(UTC).strftime("%Y%m%d%H%M%S.%f+0000")


def person_name(name: str) -> str:
    """A display name as a DICOM person name ('Ada Lovelace' -> 'Lovelace^Ada'); one word (an
    account name, 'dr-a') is a family name with the trailing caret that says so."""
    if "^" in name:
        return name
    parts = name.strip().split()
    if len(parts) < 2:
        return f"{name.strip()}^"
    return f"{parts[-1]}^{' '.join(parts[:-1])}"


def person_observer(name: str, organization: str = "") -> hd.sr.ObserverContext:
    """TID 1002 observer context of a person (the report's signer, the key image's reader)."""
    import highdicom as hd
    from pydicom.sr.codedict import codes

    if not name.strip():
        raise ExportError("an observer context needs the person's name")
    return hd.sr.ObserverContext(
        observer_type=codes.DCM.Person,
        observer_identifying_attributes=hd.sr.PersonObserverIdentifyingAttributes(
            name=person_name(name), organization_name=organization or None
        ),
    )


def image_refs(sources: Sequence[pydicom.Dataset]) -> list[ImageRef]:
    """An ImageRef per source image (whole instances)."""
    return [ImageRef(str(ds.SOPClassUID), str(ds.SOPInstanceUID)) for ds in sources]
