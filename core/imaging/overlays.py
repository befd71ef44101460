"""Read SEG and SR objects back for display over their source images (our own and others').

SEG: each frame is mapped to the source slice it segments, by the Referenced SOP Instance UID
of its Derivation Image Sequence, else by its Plane Position against the series' positions.
SR: a short text summary of the content tree (measurement groups, numbers with units,
coded findings) and the instances it references, so the viewer can show it next to them.
Plain pydicom on purpose: it reads any vendor's objects, also ones highdicom rejects.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from core.imaging.model import Series
from core.imaging.sources import open_stream, read_dicom

SEG_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.66.4"
SR_SOP_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.88.11",  # Basic Text SR
    "1.2.840.10008.5.1.4.1.1.88.22",  # Enhanced SR
    "1.2.840.10008.5.1.4.1.1.88.33",  # Comprehensive SR
    "1.2.840.10008.5.1.4.1.1.88.34",  # Comprehensive 3D SR
}
PALETTE = ((230, 80, 80), (80, 200, 120), (80, 140, 240), (240, 200, 60), (200, 90, 220))
POSITION_TOLERANCE_MM = 0.1


@dataclass(frozen=True)
class Segment:
    number: int
    label: str
    color: tuple[int, int, int]


@dataclass
class SegOverlay:
    """Masks of one SEG, keyed by the source slice (SOP Instance UID, frame index)."""

    sop_instance_uid: str
    referenced_series_uid: str
    segments: dict[int, Segment]
    planes: dict[tuple[str, int], list[tuple[int, npt.NDArray[np.bool_]]]] = field(
        default_factory=dict
    )
    unmapped_frames: int = 0  # frames that matched no source slice (reported, not drawn)

    def masks_for(
        self, sop_uid: str, frame: int = 0
    ) -> list[tuple[Segment, npt.NDArray[np.bool_]]]:
        return [(self.segments[n], m) for n, m in self.planes.get((sop_uid, frame), [])]

    @property
    def source_uids(self) -> set[str]:
        return {uid for uid, _f in self.planes}


class OverlayError(ValueError):
    """A SEG/SR that cannot be shown; the message names the file (quoted) and why."""


def _read(path: str) -> Any:
    try:  # read_dicom: a deflated object is inflated no further than it declares
        with open_stream(path) as fh:
            return read_dicom(fh, stop_before_pixels=False)[0]
    except Exception as exc:  # pydicom raises many types for broken files
        raise OverlayError(f"cannot read '{path}': {exc}") from exc


def _color(item: Any, number: int) -> tuple[int, int, int]:
    lab = item.get("RecommendedDisplayCIELabValue")
    if lab is not None and len(lab) == 3:
        from highdicom.color import CIELabColor

        try:
            r, g, b = CIELabColor.from_dicom_value([int(v) for v in lab]).to_rgb()
            return int(r), int(g), int(b)
        except ValueError:
            pass  # out-of-range value in a vendor file: fall back to the palette
    return PALETTE[(number - 1) % len(PALETTE)]


def _positions(series: Series | None) -> list[tuple[str, int, np.ndarray[Any, Any]]]:
    out: list[tuple[str, int, np.ndarray[Any, Any]]] = []
    for inst in series.instances if series is not None else []:
        if inst.frame_positions:
            out += [
                (inst.sop_instance_uid, i, np.array(p)) for i, p in enumerate(inst.frame_positions)
            ]
        elif inst.image_position is not None:
            out.append((inst.sop_instance_uid, 0, np.array(inst.image_position)))
    return out


def read_seg(path: str, series: Series | None = None) -> SegOverlay:
    """Read a DICOM SEG; ``series`` (its source series) enables matching by position."""
    ds = _read(path)
    if str(ds.get("SOPClassUID", "")) != SEG_SOP_CLASS:
        raise OverlayError(
            f"'{path}' is not a DICOM Segmentation (SOP class {ds.get('SOPClassUID', 'missing')})"
        )
    segments = {
        int(item.SegmentNumber): Segment(
            int(item.SegmentNumber),
            str(item.get("SegmentLabel", f"Segment {item.SegmentNumber}")),
            _color(item, int(item.SegmentNumber)),
        )
        for item in ds.get("SegmentSequence", [])
    }
    try:
        pixels = np.asarray(ds.pixel_array)
    except Exception as exc:  # decoder errors come in many types
        raise OverlayError(f"cannot decode the segment frames of '{path}': {exc}") from exc
    if pixels.ndim == 2:
        pixels = pixels[None]
    fractional = str(ds.get("SegmentationType", "BINARY")) == "FRACTIONAL"
    threshold = float(ds.get("MaximumFractionalValue", 255)) / 2 if fractional else 0
    ref_series = ""
    if "ReferencedSeriesSequence" in ds:
        ref_series = str(ds.ReferencedSeriesSequence[0].get("SeriesInstanceUID", ""))
    overlay = SegOverlay(str(ds.SOPInstanceUID), ref_series, segments)
    shared = ds.get("SharedFunctionalGroupsSequence", [None])[0]
    positions = _positions(series)
    for i, group in enumerate(ds.get("PerFrameFunctionalGroupsSequence", [])):
        if i >= len(pixels):
            break
        number = _segment_number(group, shared)
        target = _source_of(group) or _by_position(group, positions)
        if target is None or number is None:
            overlay.unmapped_frames += 1
            continue
        mask = pixels[i] > threshold
        overlay.planes.setdefault(target, []).append((number, mask))
    return overlay


def _segment_number(group: Any, shared: Any) -> int | None:
    for g in (group, shared):
        if g is not None and "SegmentIdentificationSequence" in g:
            return int(g.SegmentIdentificationSequence[0].ReferencedSegmentNumber)
    return None


def _source_of(group: Any) -> tuple[str, int] | None:
    for der in group.get("DerivationImageSequence", []):
        for src in der.get("SourceImageSequence", []):
            uid = str(src.get("ReferencedSOPInstanceUID", ""))
            if uid:
                frames = src.get("ReferencedFrameNumber")
                if not frames:
                    return uid, 0
                first = frames[0] if isinstance(frames, Sequence) else frames
                return uid, int(first) - 1
    return None


def _by_position(
    group: Any, positions: list[tuple[str, int, np.ndarray[Any, Any]]]
) -> tuple[str, int] | None:
    if not positions or "PlanePositionSequence" not in group:
        return None
    pos = np.array([float(v) for v in group.PlanePositionSequence[0].ImagePositionPatient])
    best = min(positions, key=lambda p: float(np.linalg.norm(p[2] - pos)))
    if float(np.linalg.norm(best[2] - pos)) <= POSITION_TOLERANCE_MM:
        return best[0], best[1]
    return None


# --- SR ------------------------------------------------------------------------------------
@dataclass
class SrSummary:
    title: str
    template: str  # e.g. "TID 1500", "" when the SR does not say
    lines: list[str]
    referenced_sop_uids: set[str]
    contributing: list[str]  # "manufacturer model version" of each Contributing Equipment item

    def text(self) -> str:
        return "\n".join([self.title, *self.lines])


def _meaning(item: Any) -> str:
    seq = item.get("ConceptNameCodeSequence")
    return str(seq[0].CodeMeaning) if seq else ""


def _value(item: Any) -> str | None:
    vt = str(item.get("ValueType", ""))
    if vt == "NUM":
        mv = item.get("MeasuredValueSequence")
        if not mv:
            return "(no value)"
        unit = mv[0].MeasurementUnitsCodeSequence[0]
        code = str(unit.CodeValue)
        return f"{float(mv[0].NumericValue):g}" + ("" if code == "1" else f" {code}")
    if vt == "CODE":
        return str(item.ConceptCodeSequence[0].CodeMeaning)
    if vt in ("TEXT", "UIDREF", "PNAME", "DATE", "TIME", "DATETIME"):
        return str(
            item.get(
                {
                    "TEXT": "TextValue",
                    "UIDREF": "UID",
                    "PNAME": "PersonName",
                    "DATE": "Date",
                    "TIME": "Time",
                    "DATETIME": "DateTime",
                }[vt],
                "",
            )
        )
    return None


def _walk(items: Any, depth: int, lines: list[str], refs: set[str], max_lines: int) -> None:
    for item in items:
        vt = str(item.get("ValueType", ""))
        name = _meaning(item)
        if vt == "IMAGE":
            for ref in item.get("ReferencedSOPSequence", []):
                refs.add(str(ref.ReferencedSOPInstanceUID))
            continue
        if name == "Image Library":
            _walk(item.get("ContentSequence", []), depth, [], refs, 0)  # refs only
            continue
        if vt == "CONTAINER":
            if len(lines) < max_lines:
                lines.append("  " * depth + f"{name}:")
        else:
            value = _value(item)
            if value is not None and len(lines) < max_lines:
                lines.append("  " * depth + f"{name}: {value}")
        if "ContentSequence" in item:
            _walk(item.ContentSequence, depth + 1, lines, refs, max_lines)


def read_sr(path: str, max_lines: int = 200) -> SrSummary:
    """A readable summary of a structured report and the instances it references."""
    ds = _read(path)
    if str(ds.get("SOPClassUID", "")) not in SR_SOP_CLASSES:
        raise OverlayError(
            f"'{path}' is not a structured report this viewer reads "
            f"(SOP class {ds.get('SOPClassUID', 'missing')})"
        )
    lines: list[str] = []
    refs: set[str] = set()
    _walk(ds.get("ContentSequence", []), 0, lines, refs, max_lines)
    for study in ds.get("CurrentRequestedProcedureEvidenceSequence", []):
        for series in study.get("ReferencedSeriesSequence", []):
            for ref in series.get("ReferencedSOPSequence", []):
                refs.add(str(ref.ReferencedSOPInstanceUID))
    template = ""
    if "ContentTemplateSequence" in ds:
        template = f"TID {ds.ContentTemplateSequence[0].TemplateIdentifier}"
    contributing = [
        " ".join(
            str(item.get(k, ""))
            for k in ("Manufacturer", "ManufacturerModelName", "SoftwareVersions")
        ).strip()
        for item in ds.get("ContributingEquipmentSequence", [])
    ]
    return SrSummary(_meaning(ds) or "Structured report", template, lines, refs, contributing)
