"""The four-corner overlay text of the viewport, as plain strings (the widget only draws them).

Top left: patient; top right: study; bottom left: series and slice; bottom right: W/L, zoom.
With ``state.hide_phi`` the identifying lines (name, ID, birth date, dates, accession) go.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from core.viewer.phi import shown
from core.viewer.state import ViewerState, slice_position


@dataclass
class Corners:
    top_left: list[str] = field(default_factory=list)
    top_right: list[str] = field(default_factory=list)
    bottom_left: list[str] = field(default_factory=list)
    bottom_right: list[str] = field(default_factory=list)

    def all_text(self) -> str:
        return "\n".join(self.top_left + self.top_right + self.bottom_left + self.bottom_right)


def format_dicom_date(value: str) -> str:
    """YYYYMMDD -> YYYY-MM-DD (other forms are shown as they are)."""
    if len(value) == 8 and value.isdigit():
        return f"{value[:4]}-{value[4:6]}-{value[6:]}"
    return value


def corner_text(state: ViewerState, zoom: float | None = None) -> Corners:
    """The overlay for the current series/slice; ``zoom`` is the effective (fitted) zoom."""
    corners = Corners()
    ctx = state.context()
    series = state.series
    if ctx is None or series is None:
        return corners
    patient, study = ctx
    hide = state.hide_phi
    if hide:
        corners.top_left = ["Patient hidden"]
    else:
        corners.top_left = [
            patient.name.replace("^", " ").strip() or "(no name)",
            f"ID: {patient.patient_id}",
        ]
        if patient.birth_date:
            corners.top_left.append(f"DOB: {format_dicom_date(patient.birth_date)}  {patient.sex}")
    corners.top_right = [study.description or "(no study description)"]
    if not hide and study.study_date:
        corners.top_right.insert(0, format_dicom_date(study.study_date))
    if not hide and study.accession_number:
        corners.top_right.append(f"Acc: {shown(study.accession_number, hide)}")
    number = f"Se {series.series_number}: " if series.series_number is not None else ""
    corners.bottom_left = [f"{series.modality} {number}{series.description}".strip()]
    vp = state.viewport
    if state.slice_count:
        line = f"Im {vp.slice_index + 1}/{state.slice_count}"
        ref = state.current_slice()
        pos = slice_position(ref.instance, ref.frame) if ref is not None else None
        if pos is not None:
            line += f"  Pos {pos:.1f} mm"
        corners.bottom_left.append(line)
        if state.settled_count < state.slice_count:
            corners.bottom_left.append(f"Loading {state.loaded_count}/{state.slice_count}")
        elif state.failed:
            corners.bottom_left.append(
                f"{len(state.failed)} of {state.slice_count} images could not be decoded"
            )
    frame = state.current_frame()
    if frame is not None and not frame.is_color:
        corners.bottom_right.append(
            f"W {vp.window_width:.0f}  L {vp.window_center:.0f}"
            + (f"  ({vp.preset})" if vp.preset != "custom" else "")
        )
    if frame is not None:
        rows, cols = frame.shape
        corners.bottom_right.append(f"{cols}x{rows}")
    corners.bottom_right.append(f"Zoom {100 * (zoom if zoom is not None else vp.zoom):.0f}%")
    flags = [n for n, on in (("INV", vp.invert), ("FH", vp.flip_h), ("FV", vp.flip_v)) if on]
    if vp.rotation:
        flags.append(f"ROT {vp.rotation}")
    if flags:
        corners.bottom_right.append(" ".join(flags))
    return corners
