"""The report lines of a study's measurements, key images and accepted AI findings, made in
jobs from what the window has open (``InsertSources``, built on the GUI thread from plain
references: no file is read and no array copied there)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from core.annotations.model import AcquiredImage
from core.annotations.store import Purpose
from core.app import reports as app
from core.app.annotations import list_annotations, list_key_images
from core.dicom_out.from_annotations import PURPOSE_WORDS
from core.reports.items import ImageRef, KeyImage
from desktop.report_sources import (
    SECONDARY_CAPTURE_CLASS,
    Located,
    describe_marks,
    frame_label,
    locate,
    study_series,
)

if TYPE_CHECKING:
    import numpy.typing as npt
    import pydicom

    from core.app.workstation import Workstation
    from core.imaging.model import StudyIndex
    from core.viewer.state import ViewerState
    from desktop.workers import JobContext


@dataclass(frozen=True)
class InsertSources:
    """The open study as the line jobs need it: its images by SOP Instance UID and the frames
    decoded in the viewports ((sop uid, frame) -> (modality values, units)) for ROI values."""

    study_uid: str
    located: dict[str, Located]
    frames: dict[tuple[str, int], tuple[npt.NDArray[Any], str]] = field(default_factory=dict)

    def pixels(self, sop_uid: str, frame: int) -> npt.NDArray[Any] | None:
        """The modality values of a frame shown in a viewport (None: not decoded there)."""
        found = self.frames.get((sop_uid, frame))
        return found[0] if found is not None else None


def gather(index: StudyIndex, states: Iterable[ViewerState], study_uid: str) -> InsertSources:
    """Built on the GUI thread: references to what is open, nothing read or copied."""
    series = study_series(index, study_uid)
    located = locate(index, (i.sop_instance_uid for s in series for i in s.instances))
    frames: dict[tuple[str, int], tuple[npt.NDArray[Any], str]] = {}
    for state in states:
        for ref, frame in zip(state.slices, state.frames, strict=False):
            if frame is not None and ref.instance.sop_instance_uid in located:
                frames[(ref.instance.sop_instance_uid, ref.frame)] = (frame.values, frame.units)
    return InsertSources(study_uid, located, frames)


def header_of(where: Located) -> pydicom.Dataset:
    """What the DICOM adapters read of an image, from the index (no file read)."""
    import pydicom

    ds = pydicom.Dataset()
    ds.SOPInstanceUID = where.instance.sop_instance_uid
    ds.SOPClassUID = where.instance.sop_class_uid or SECONDARY_CAPTURE_CLASS
    ds.NumberOfFrames = max(where.instance.number_of_frames, 1)
    return ds


def measurement_lines_job(_ctx: JobContext, ws: Workstation, src: InsertSources) -> list[str]:
    """One line per measured annotation of the study (values as the viewer computes them)."""
    from core.dicom_out.from_annotations import marks_from_annotations

    found = [a for a in list_annotations(ws, src.study_uid) if isinstance(a.image, AcquiredImage)]
    lines: list[str] = []
    for a in found:
        where = src.located.get(a.sop_instance_uid)
        if where is None:
            continue
        image = a.image
        assert isinstance(image, AcquiredImage)
        units = src.frames.get((image.sop_instance_uid, image.frame), (None, ""))[1]
        marks, _skipped = marks_from_annotations([a], [header_of(where)], src.pixels, units)
        lines += [m.text for m in describe_marks(marks, src.located) if m.values]
    return lines


def key_image_lines_job(_ctx: JobContext, ws: Workstation, src: InsertSources) -> list[str]:
    """One line per key image of the study, with its purpose."""
    lines = []
    for key in list_key_images(ws, src.study_uid):
        where = src.located.get(key.sop_instance_uid)
        label = frame_label(where, key.frame, key.sop_instance_uid)
        cls = where.instance.sop_class_uid if where is not None else ""
        ref = ImageRef(cls or SECONDARY_CAPTURE_CLASS, key.sop_instance_uid, None, label)
        lines.append(KeyImage(ref, PURPOSE_WORDS[Purpose(key.purpose)].in_text).text)
    return lines


def ai_lines_job(_ctx: JobContext, ws: Workstation, src: InsertSources) -> list[str]:
    """One line per accepted AI finding of the study."""
    return [f.text for f in app.accepted_findings(ws, src.study_uid)]
