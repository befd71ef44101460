"""What a read produces besides the text: image references, marks with their measurements, key
images and accepted AI findings.

Small frozen dataclasses on purpose: the report inserts them as text lines and
``core.dicom_out`` turns them into GSPS, TID 1500 and KOS objects, so the annotation model
(``core.annotations``) only has to be adapted to these few fields, not to either consumer.
Coordinates are image pixel coordinates ``(column, row)`` with (0, 0) the top-left corner of
the top-left pixel, which is what DICOM's PIXEL annotation units and SCOORD use.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

MarkKind = Literal["polyline", "polygon", "ellipse", "point", "text"]
MARK_KINDS: tuple[str, ...] = ("polyline", "polygon", "ellipse", "point", "text")

# The measured quantities the exports understand, with the unit each is given in when the
# annotation model does not say (UCUM codes: mm, mm2, Hounsfield units, no unit).
VALUE_NAMES: tuple[str, ...] = ("length", "angle", "area", "mean", "sd", "min", "max", "value")
UNIT_LABELS: dict[str, str] = {
    "mm": "mm",
    "mm2": "mm²",
    "deg": "°",
    "[hnsf'U]": "HU",
    "1": "",
}


class ItemError(ValueError):
    """A mark, value or reference that cannot be reported or exported, and why."""


@dataclass(frozen=True)
class ImageRef:
    """One image (or one frame of a multi-frame image) that a mark or key image lies on."""

    sop_class_uid: str
    sop_instance_uid: str
    frame: int | None = None  # 1-based, multi-frame images only
    description: str = ""  # how the report names it, e.g. "series 3, image 12"

    def __post_init__(self) -> None:
        if not self.sop_instance_uid or not self.sop_class_uid:
            raise ItemError("an image reference needs its SOP Class UID and SOP Instance UID")
        if self.frame is not None and self.frame < 1:
            raise ItemError(f"frame number {self.frame} of '{self.sop_instance_uid}' is not >= 1")

    @property
    def label(self) -> str:
        """The reference as the report's text shows it."""
        if self.description:
            return self.description
        frame = f" frame {self.frame}" if self.frame is not None else ""
        return f"image {self.sop_instance_uid}{frame}"


@dataclass(frozen=True)
class Value:
    """One measured number: ``name`` is one of VALUE_NAMES, ``unit`` a UCUM code."""

    name: str
    value: float
    unit: str

    def __post_init__(self) -> None:
        if self.name not in VALUE_NAMES:
            raise ItemError(f"unknown measurement '{self.name}'; known: {', '.join(VALUE_NAMES)}")
        if not math.isfinite(self.value):
            raise ItemError(f"measurement '{self.name}' is not a finite number ({self.value})")

    @property
    def text(self) -> str:
        """``"Length 42.3 mm"``: one decimal, the unit as people write it."""
        unit = UNIT_LABELS.get(self.unit, self.unit)
        name = {"sd": "SD", "min": "Min", "max": "Max"}.get(self.name, self.name.capitalize())
        return f"{name} {self.value:.1f}{' ' + unit if unit and unit != '°' else unit}"


@dataclass(frozen=True)
class Mark:
    """A graphic annotation on one image, with the values measured from it (if any).

    ``polyline`` is open (a length is a two-point polyline, an angle three points);
    ``polygon`` is closed (the first point is not repeated); ``ellipse`` is four points, the
    ends of the major axis then of the minor axis (DICOM's order); ``point`` one point;
    ``text`` one anchor point and ``label`` as its text.
    """

    kind: str
    points: tuple[tuple[float, float], ...]
    image: ImageRef
    label: str = ""
    values: tuple[Value, ...] = field(default=())

    def __post_init__(self) -> None:
        need = {"polyline": 2, "polygon": 3, "ellipse": 4, "point": 1, "text": 1}
        if self.kind not in need:
            raise ItemError(f"unknown mark kind '{self.kind}'; known: {', '.join(MARK_KINDS)}")
        if len(self.points) < need[self.kind] or (
            self.kind in ("ellipse", "point", "text") and len(self.points) != need[self.kind]
        ):
            raise ItemError(
                f"a {self.kind} mark '{self.label}' needs {need[self.kind]} point(s), "
                f"got {len(self.points)}"
            )
        for col, row in self.points:
            if not (math.isfinite(col) and math.isfinite(row)):
                raise ItemError(f"mark '{self.label}' has a point that is not finite")
        if self.kind == "text" and not self.label:
            raise ItemError("a text mark needs its text as the label")

    @property
    def text(self) -> str:
        """``"ROI 1: Mean 45.2 HU, SD 3.1 HU (series 3, image 12)"``."""
        values = ", ".join(v.text for v in self.values)
        head = self.label or self.kind.capitalize()
        body = f"{head}: {values}" if values else head
        return f"{body} ({self.image.label})"


@dataclass(frozen=True)
class KeyImage:
    """An image the radiologist marked as key, with an optional note."""

    image: ImageRef
    note: str = ""

    @property
    def text(self) -> str:
        return f"Key image: {self.image.label}" + (f" - {self.note}" if self.note else "")


@dataclass(frozen=True)
class AcceptedFinding:
    """An AI result the radiologist accepted: the model, its decision and its score."""

    model: str
    label: str
    score: float | None = None
    image: ImageRef | None = None

    @property
    def text(self) -> str:
        score = f" (score {self.score:.2f})" if self.score is not None else ""
        where = f", {self.image.label}" if self.image is not None else ""
        return f"AI ({self.model}, accepted): {self.label}{score}{where}"
