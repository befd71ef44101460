"""The stored annotations (core.annotations) as the marks the exports take.

Two conventions meet here: an annotation's points are ``(row, col)`` with (0, 0) the top-left
corner of the first pixel and frames counted from 0; DICOM's PIXEL units and SCOORDs are
``(column, row)`` from the same corner, and frames count from 1 (given only for multi-frame
images). Each tool becomes what a DICOM reader draws: an ellipse by its axes' ends (the
annotation keeps its bounding box), a rectangle and a freehand outline as closed polygons, a
Cobb angle as its two lines. The values are those the viewer shows (core.annotations.compute).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from core.annotations import compute
from core.annotations.model import ROI_KINDS, AcquiredImage, Annotation, AnnotationError, Kind
from core.annotations.store import KeyImage as StoredKeyImage
from core.annotations.store import Purpose
from core.reports.items import ImageRef, KeyImage, Mark, Value

if TYPE_CHECKING:
    import numpy.typing as npt
    import pydicom

#: The frame's modality values (rows, cols), for ROI statistics and probes: (sop uid, frame).
PixelValues = Callable[[str, int], "npt.NDArray[Any] | None"]


@dataclass(frozen=True)
class PurposeWords:
    """How each place names a key-image purpose: its list label is the enum's own value
    ("For Report"); the KOS title key (core.dicom_out.kos.TITLES) and the report line's words
    are these. One table, so a new purpose cannot be named in one place and missed in another."""

    kos_title: str
    in_text: str


PURPOSE_WORDS: dict[Purpose, PurposeWords] = {
    Purpose.OF_INTEREST: PurposeWords("of_interest", "of interest"),
    Purpose.FOR_REPORT: PurposeWords("for_report", "for the report"),
}

UNITS = {"mm": "mm", "mm²": "mm2", "px": "{pixel}", "px²": "{pixel}2", "HU": "[hnsf'U]", "": "1"}


@dataclass(frozen=True)
class Skipped:
    """An annotation that has no DICOM form here, and why."""

    uid: str
    reason: str


def _cr(points: Sequence[tuple[float, float]]) -> tuple[tuple[float, float], ...]:
    return tuple((float(c), float(r)) for r, c in points)


def _ellipse(a: Annotation) -> tuple[tuple[float, float], ...]:
    """Major axis ends, then minor axis ends (DICOM's ELLIPSE), from the bounding box."""
    (r0, c0), (r1, c1) = a.points
    rc, cc = (r0 + r1) / 2, (c0 + c1) / 2
    hr, hc = abs(r1 - r0) / 2, abs(c1 - c0) / 2
    across = ((cc - hc, rc), (cc + hc, rc))
    down = ((cc, rc - hr), (cc, rc + hr))
    return (*across, *down) if hc >= hr else (*down, *across)


def _values(a: Annotation, pixels: npt.NDArray[Any] | None, units: str) -> tuple[Value, ...]:
    if a.kind is Kind.LENGTH:
        q = compute.length(a)
        return (Value("length", q.value, UNITS[q.unit]),)
    if a.kind in (Kind.ANGLE, Kind.COBB):
        return (Value("angle", compute.angle(a).value, "deg"),)
    if a.kind in ROI_KINDS:
        area = compute.area(a)
        found = [Value("area", area.value, UNITS[area.unit])]
        stats = compute.roi_stats(a, pixels, units) if pixels is not None else None
        if stats is not None:
            unit = UNITS.get(stats.units, "1")
            found += [
                Value("mean", stats.mean, unit),
                Value("sd", stats.sd, unit),
                Value("min", stats.minimum, unit),
                Value("max", stats.maximum, unit),
            ]
        return tuple(found)
    if a.kind is Kind.PROBE and pixels is not None:
        q = compute.probe(a, pixels, units)
        return (Value("value", q.value, UNITS.get(q.unit, "1")),)
    return ()


def marks_from_annotations(
    annotations: Sequence[Annotation],
    sources: Sequence[pydicom.Dataset],
    pixel_values: PixelValues | None = None,
    units: str = "",
) -> tuple[list[Mark], list[Skipped]]:
    """Marks on ``sources`` for each annotation on one of them (others are skipped, named)."""
    by_uid = {str(ds.SOPInstanceUID): ds for ds in sources}
    marks: list[Mark] = []
    skipped: list[Skipped] = []
    for a in annotations:
        if not isinstance(a.image, AcquiredImage):
            skipped.append(Skipped(a.uid, "drawn on a reformatted plane (no acquired image)"))
            continue
        ds = by_uid.get(a.image.sop_instance_uid)
        if ds is None:
            skipped.append(Skipped(a.uid, f"image '{a.image.sop_instance_uid}' not exported"))
            continue
        multi = int(ds.get("NumberOfFrames", 1) or 1) > 1
        ref = ImageRef(
            str(ds.SOPClassUID), str(ds.SOPInstanceUID), a.image.frame + 1 if multi else None
        )
        pixels = pixel_values(ref.sop_instance_uid, a.image.frame) if pixel_values else None
        try:
            values = _values(a, pixels, units)
        except AnnotationError as exc:
            skipped.append(Skipped(a.uid, str(exc)))
            continue
        label = a.text or a.kind.value.capitalize()
        points = _cr(a.points)
        if a.kind is Kind.TEXT:
            marks.append(Mark("text", points, ref, a.text))
        elif a.kind is Kind.PROBE:
            marks.append(Mark("point", points, ref, label, values))
        elif a.kind is Kind.ELLIPSE:
            marks.append(Mark("ellipse", _ellipse(a), ref, label, values))
        elif a.kind is Kind.RECTANGLE:
            (c0, r0), (c1, r1) = points
            corners = ((c0, r0), (c1, r0), (c1, r1), (c0, r1))
            marks.append(Mark("polygon", corners, ref, label, values))
        elif a.kind is Kind.FREEHAND:
            marks.append(Mark("polygon", points, ref, label, values))
        elif a.kind is Kind.COBB:
            marks.append(Mark("polyline", points[:2], ref, label, values))
            marks.append(Mark("polyline", points[2:], ref, f"{label} (2nd line)"))
        else:  # length, angle, arrow
            marks.append(Mark("polyline", points, ref, label, values))
    return marks, skipped


def key_images_by_title(
    keys: Sequence[StoredKeyImage], sources: Sequence[pydicom.Dataset]
) -> tuple[dict[str, list[KeyImage]], list[Skipped]]:
    """The stored key images as one KOS's worth per title (of_interest, for_report); a key
    image whose image is not among ``sources`` is skipped, named."""
    by_uid = {str(ds.SOPInstanceUID): ds for ds in sources}
    found: dict[str, list[KeyImage]] = {}
    skipped: list[Skipped] = []
    for key in keys:
        ds = by_uid.get(key.sop_instance_uid)
        if ds is None:
            skipped.append(Skipped(key.uid, f"image '{key.sop_instance_uid}' not exported"))
            continue
        multi = int(ds.get("NumberOfFrames", 1) or 1) > 1
        ref = ImageRef(str(ds.SOPClassUID), key.sop_instance_uid, key.frame + 1 if multi else None)
        found.setdefault(PURPOSE_WORDS[Purpose(key.purpose)].kos_title, []).append(KeyImage(ref))
    return found, skipped
