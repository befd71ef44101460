"""The study tree and decoded frames as plain data: no Qt, no I/O.

These are the names the viewer, the CLI and inference share; keep them stable.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class LoadError:
    """One file that could not be used, and why (shown per file in UI and CLI)."""

    path: str
    reason: str


@dataclass
class Instance:
    """One DICOM instance (or one plain image file), known from its header only.

    ``path`` is a filesystem path, or ``archive.zip::member`` for a file inside a zip.
    """

    path: str
    sop_instance_uid: str
    sop_class_uid: str = ""
    instance_number: int | None = None
    number_of_frames: int = 1
    rows: int | None = None
    columns: int | None = None
    image_position: tuple[float, float, float] | None = None
    image_orientation: tuple[float, float, float, float, float, float] | None = None
    pixel_spacing: tuple[float, float] | None = None  # (row spacing, column spacing) in mm
    slice_location: float | None = None
    photometric: str = ""
    transfer_syntax_uid: str = ""
    has_pixels: bool = True
    is_plain_image: bool = False  # PNG/JPEG/TIFF opened through Pillow
    # Added by the indexer (all defaulted, so older callers keep working):
    frame_positions: tuple[tuple[float, float, float], ...] | None = None  # enhanced MF, per frame
    # Enhanced MF: file frame numbers in display order (along the slice normal); None = file order
    frame_order: tuple[int, ...] | None = None
    series_instance_uid: str = ""
    study_instance_uid: str = ""
    patient_id: str = ""
    issuer_of_patient_id: str = ""  # with patient_id, who the patient is (priors: never by name)
    frame_of_reference_uid: str = ""  # same UID: positions comparable (linking, ref. lines)
    pixel: PixelInfo | None = None  # header facts for decoding; read-only for callers


class SliceRef(NamedTuple):
    """One slice of a series in display order: an instance and which of its frames.

    The one name for this concept (viewer, loading, inference); a tuple so loaders unpack it."""

    instance: Instance
    frame: int


@dataclass(frozen=True)
class PixelInfo:
    """Header facts the pixel pipeline needs, kept from indexing so whole-series loads can skip a
    second header parse (see ``core.imaging.volume``)."""

    samples_per_pixel: int = 1
    bits_allocated: int = 16
    bits_stored: int = 16
    high_bit: int = 15
    pixel_representation: int = 0
    slopes: tuple[float, ...] = (1.0,)  # one per frame, or one for all frames
    intercepts: tuple[float, ...] = (0.0,)
    has_modality_lut_sequence: bool = False
    has_voi_lut_sequence: bool = False
    windows: tuple[tuple[float, float], ...] = ()  # (center, width), file order (frame 0)
    frame_windows: tuple[tuple[tuple[float, float], ...], ...] | None = None  # enhanced MF
    voi_function: str = "LINEAR"
    units: str = ""
    # Byte offset/length of the Pixel Data value in the file, for native little-endian data only.
    pixel_data_offset: int | None = None
    pixel_data_length: int | None = None


@dataclass
class Series:
    series_instance_uid: str
    modality: str = ""
    description: str = ""
    series_number: int | None = None
    body_part: str = ""
    instances: list[Instance] = field(default_factory=list)  # sorted for display

    @property
    def frame_count(self) -> int:
        return sum(i.number_of_frames for i in self.instances if i.has_pixels)


def display_frames(inst: Instance) -> Sequence[int]:
    """The file frame numbers of an instance in display order (see ``Instance.frame_order``)."""
    n = max(inst.number_of_frames, 1)
    order = inst.frame_order
    return order if order is not None and len(order) == n else range(n)


@dataclass
class Study:
    study_instance_uid: str
    study_date: str = ""
    study_time: str = ""
    description: str = ""
    accession_number: str = ""
    series: dict[str, Series] = field(default_factory=dict)


@dataclass
class Patient:
    patient_id: str
    name: str = ""
    birth_date: str = ""
    sex: str = ""
    studies: dict[str, Study] = field(default_factory=dict)


@dataclass
class StudyIndex:
    patients: dict[str, Patient] = field(default_factory=dict)
    errors: list[LoadError] = field(default_factory=list)
    # files that loaded but need the reader's attention (one patient ID with two names)
    warnings: list[LoadError] = field(default_factory=list)

    def iter_series(self) -> Iterator[tuple[Patient, Study, Series]]:
        for patient in self.patients.values():
            for study in patient.studies.values():
                for series in study.series.values():
                    yield patient, study, series

    def to_json(self) -> dict[str, Any]:
        """The index as plain JSON-able data (``doctorai inspect --json``)."""
        return {
            "patients": [
                {
                    "patient_id": p.patient_id,
                    "name": p.name,
                    "studies": [
                        {
                            "study_instance_uid": st.study_instance_uid,
                            "study_date": st.study_date,
                            "description": st.description,
                            "series": [
                                {
                                    "series_instance_uid": se.series_instance_uid,
                                    "modality": se.modality,
                                    "description": se.description,
                                    "series_number": se.series_number,
                                    "instances": len(se.instances),
                                    "frames": se.frame_count,
                                }
                                for se in st.series.values()
                            ],
                        }
                        for st in p.studies.values()
                    ],
                }
                for p in self.patients.values()
            ],
            "errors": [{"path": e.path, "reason": e.reason} for e in self.errors],
            "warnings": [{"path": w.path, "reason": w.reason} for w in self.warnings],
        }


@dataclass
class Frame:
    """One decoded frame, after the modality LUT, before VOI.

    Grayscale: ``values`` is float32 (rows, cols) in modality units (HU on CT).
    Colour: ``values`` is uint8 (rows, cols, 3) RGB (YBR and PALETTE COLOR already converted).
    """

    values: npt.NDArray[Any]
    is_color: bool = False
    invert: bool = False  # MONOCHROME1: high values display dark
    windows: list[tuple[float, float]] = field(default_factory=list)  # (center, width) from file
    voi_lut: npt.NDArray[Any] | None = None  # table applied when no explicit window is chosen
    voi_lut_first: int = 0  # first input value mapped by voi_lut
    voi_lut_bits: int = 16  # output range of voi_lut is [0, 2**bits - 1]
    pixel_spacing: tuple[float, float] | None = None
    units: str = ""  # "HU" on CT, else the file's Rescale Type or ""
    value_range: tuple[float, float] = (0.0, 0.0)  # min and max of values (auto window)
    voi_function: str = "LINEAR"  # VOI LUT Function: LINEAR, LINEAR_EXACT or SIGMOID

    @property
    def shape(self) -> tuple[int, int]:
        return (int(self.values.shape[0]), int(self.values.shape[1]))

    def default_window(self) -> tuple[float, float]:
        """The file's first window, else the full value range (the 'auto' preset)."""
        if self.windows:
            return self.windows[0]
        lo, hi = self.value_range
        return ((lo + hi) / 2.0, max(hi - lo, 1.0))


def empty_frame(rows: int, cols: int) -> Frame:
    return Frame(values=np.zeros((rows, cols), dtype=np.float32))
