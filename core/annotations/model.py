"""One annotation: its tool, its geometry in image pixels and the image it was drawn on.

Coordinates are ``(row, col)`` floats in the viewer's image convention (``core.viewer.transform``):
(0, 0) is the top-left corner of the first pixel, so pixel (r, c) has its centre at
(r + 0.5, c + 0.5). Frames are counted from 0, as ``SliceRef.frame`` is (DICOM's
ReferencedFrameNumber, 1-based, is made when exporting).

An annotation is immutable: an edit is a new value with the same ``uid`` (``replace``), so the
undo stack keeps the before and the after of every change without copying.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

Point = tuple[float, float]  # (row, col)
Vec3 = tuple[float, float, float]


class Kind(StrEnum):
    """The tools of issue 17."""

    LENGTH = "length"
    ANGLE = "angle"
    COBB = "cobb"
    ELLIPSE = "ellipse"
    FREEHAND = "freehand"
    RECTANGLE = "rectangle"
    PROBE = "probe"
    ARROW = "arrow"
    TEXT = "text"


#: How many points each tool takes: (fewest, most). Length: the two ends; angle: arm, vertex,
#: arm; Cobb: two lines (p0-p1, p2-p3); ellipse and rectangle: two opposite corners of the
#: bounding box; freehand: the closed outline; probe: the point; arrow: tail, head; text: where.
POINT_COUNT: dict[Kind, tuple[int, int]] = {
    Kind.LENGTH: (2, 2),
    Kind.ANGLE: (3, 3),
    Kind.COBB: (4, 4),
    Kind.ELLIPSE: (2, 2),
    Kind.FREEHAND: (3, 100_000),
    Kind.RECTANGLE: (2, 2),
    Kind.PROBE: (1, 1),
    Kind.ARROW: (2, 2),
    Kind.TEXT: (1, 1),
}

ROI_KINDS = frozenset({Kind.ELLIPSE, Kind.FREEHAND, Kind.RECTANGLE})


class AnnotationError(ValueError):
    """An annotation that cannot be: the message names the annotation and what is wrong."""


class StaleAnnotation(AnnotationError):
    """An edit made on an older revision than the one stored (changed elsewhere meanwhile)."""


def _spacing(value: Any, what: str) -> tuple[float, float] | None:
    if value is None:
        return None
    try:
        row, col = (float(v) for v in value)
    except (TypeError, ValueError) as exc:
        raise AnnotationError(f"{what}: pixel spacing {value!r} is not two numbers") from exc
    if not (math.isfinite(row) and math.isfinite(col) and row > 0 and col > 0):
        raise AnnotationError(f"{what}: pixel spacing {value!r} must be two positive mm values")
    return (row, col)


def _vec3(value: Any, what: str) -> Vec3:
    try:
        x, y, z = (float(v) for v in value)
    except (TypeError, ValueError) as exc:
        raise AnnotationError(f"{what} {value!r} is not three numbers") from exc
    if not all(map(math.isfinite, (x, y, z))):
        raise AnnotationError(f"{what} {value!r} is not finite")
    return (x, y, z)


@dataclass(frozen=True)
class AcquiredImage:
    """A frame of an acquired DICOM image. ``pixel_spacing`` (row, column) in mm is the
    image's own (PixelSpacing, or ImagerPixelSpacing where that is all there is); None: the
    image does not say, and measurements are in pixels."""

    sop_instance_uid: str
    frame: int = 0
    pixel_spacing: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        if not self.sop_instance_uid:
            raise AnnotationError("an acquired image needs its SOP Instance UID")
        if not isinstance(self.frame, int) or self.frame < 0:
            raise AnnotationError(
                f"image '{self.sop_instance_uid}': frame {self.frame!r} must be an integer >= 0"
            )
        spacing = _spacing(self.pixel_spacing, f"image '{self.sop_instance_uid}'")
        object.__setattr__(self, "pixel_spacing", spacing)

    def to_json(self) -> dict[str, Any]:
        return {
            "type": "image",
            "sop_instance_uid": self.sop_instance_uid,
            "frame": self.frame,
            "pixel_spacing": list(self.pixel_spacing) if self.pixel_spacing else None,
        }


@dataclass(frozen=True)
class PlaneImage:
    """A reformatted (MPR) image, by its geometry in patient LPS mm: ``origin`` is the centre
    of pixel (0, 0); ``row_direction`` the unit vector along a row (columns increasing) and
    ``column_direction`` down a column, as DICOM's ImageOrientationPatient orders them.
    ``frame_of_reference_uid`` names the space the mm are in."""

    origin: Vec3
    row_direction: Vec3
    column_direction: Vec3
    pixel_spacing: tuple[float, float]
    frame_of_reference_uid: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "origin", _vec3(self.origin, "plane origin"))
        for name in ("row_direction", "column_direction"):
            v = _vec3(getattr(self, name), f"plane {name.replace('_', ' ')}")
            norm = math.sqrt(sum(x * x for x in v))
            if abs(norm - 1.0) > 1e-3:
                raise AnnotationError(f"plane {name.replace('_', ' ')} {v} is not a unit vector")
            object.__setattr__(self, name, v)
        dot = sum(a * b for a, b in zip(self.row_direction, self.column_direction, strict=True))
        if abs(dot) > 1e-3:
            raise AnnotationError("plane row and column directions are not perpendicular")
        spacing = _spacing(self.pixel_spacing, "plane")
        if spacing is None:
            raise AnnotationError("a reformatted plane needs its pixel spacing")
        object.__setattr__(self, "pixel_spacing", spacing)

    @classmethod
    def from_plane(cls, plane: Any, frame_of_reference_uid: str = "") -> PlaneImage:
        """From ``core.viewer.reformat.Plane`` (``top_left``) or ``core.viewer.measure.
        MeasurePlane`` (``origin``), with their ``orientation`` and square ``pixel_size``;
        read by attribute, so this layer does not import the viewer."""
        origin = plane.origin if hasattr(plane, "origin") else plane.top_left
        o = [float(x) for x in plane.orientation]
        size = float(plane.pixel_size)
        return cls(
            _vec3(origin, "plane origin"),
            (o[0], o[1], o[2]),
            (o[3], o[4], o[5]),
            (size, size),
            frame_of_reference_uid,
        )

    def to_patient(self, point: Point) -> Vec3:
        """Image (row, col) in this module's convention -> patient LPS mm."""
        dr = (point[0] - 0.5) * self.pixel_spacing[0]
        dc = (point[1] - 0.5) * self.pixel_spacing[1]
        return tuple(  # type: ignore[return-value]
            o + dc * u + dr * v
            for o, u, v in zip(self.origin, self.row_direction, self.column_direction, strict=True)
        )

    @property
    def normal(self) -> Vec3:
        (a1, a2, a3), (b1, b2, b3) = self.row_direction, self.column_direction
        return (a2 * b3 - a3 * b2, a3 * b1 - a1 * b3, a1 * b2 - a2 * b1)

    def to_pixel(self, point: Vec3) -> tuple[float, float, float]:
        """Patient LPS mm -> (row, col) in this module's convention and the signed distance
        from the plane in mm."""
        d = [p - o for p, o in zip(point, self.origin, strict=True)]
        along_col = sum(x * u for x, u in zip(d, self.row_direction, strict=True))
        along_row = sum(x * v for x, v in zip(d, self.column_direction, strict=True))
        off = sum(x * n for x, n in zip(d, self.normal, strict=True))
        return (
            along_row / self.pixel_spacing[0] + 0.5,
            along_col / self.pixel_spacing[1] + 0.5,
            off,
        )

    def shows(self, other: PlaneImage, tolerance_mm: float = 0.01) -> bool:
        """Whether ``other`` is this plane (same frame of reference where both name one, the
        same image axes, no distance between them), whatever its grid's anchor and spacing:
        a reformat rebuilt after a reopen is drawn with the annotations made on it."""
        mine, theirs = self.frame_of_reference_uid, other.frame_of_reference_uid
        if mine and theirs and mine != theirs:
            return False

        def dot(a: Vec3, b: Vec3) -> float:
            return sum(x * y for x, y in zip(a, b, strict=True))

        if dot(self.row_direction, other.row_direction) < 1 - 1e-6:
            return False
        if dot(self.column_direction, other.column_direction) < 1 - 1e-6:
            return False
        gap = tuple(o - s for o, s in zip(other.origin, self.origin, strict=True))
        return abs(dot(gap, self.normal)) <= tolerance_mm  # type: ignore[arg-type]

    def map_points(self, points: Sequence[Point], onto: PlaneImage) -> tuple[Point, ...]:
        """Points of this plane's grid in the grid of ``onto`` (a plane that ``shows`` it)."""
        out = []
        for p in points:
            row, col, _off = onto.to_pixel(self.to_patient(p))
            out.append((row, col))
        return tuple(out)

    def to_json(self) -> dict[str, Any]:
        return {
            "type": "plane",
            "origin": list(self.origin),
            "row_direction": list(self.row_direction),
            "column_direction": list(self.column_direction),
            "pixel_spacing": list(self.pixel_spacing),
            "frame_of_reference_uid": self.frame_of_reference_uid,
        }


ImageRef = AcquiredImage | PlaneImage


def image_from_json(data: dict[str, Any]) -> ImageRef:
    kind = data.get("type")
    if kind == "image":
        return AcquiredImage(
            str(data["sop_instance_uid"]), int(data.get("frame", 0)), data.get("pixel_spacing")
        )
    if kind == "plane":
        return PlaneImage(
            data["origin"],
            data["row_direction"],
            data["column_direction"],
            data["pixel_spacing"],
            str(data.get("frame_of_reference_uid", "")),
        )
    raise AnnotationError(f"unknown image reference type {kind!r} (image or plane)")


def pixel_spacing(image: ImageRef) -> tuple[float, float] | None:
    return image.pixel_spacing


def new_uid() -> str:
    return str(uuid.uuid4())


def _points(value: Any, what: str) -> tuple[Point, ...]:
    out: list[Point] = []
    for p in value:
        try:
            row, col = (float(v) for v in p)
        except (TypeError, ValueError) as exc:
            raise AnnotationError(f"{what}: point {p!r} is not (row, col)") from exc
        if not (math.isfinite(row) and math.isfinite(col)):
            raise AnnotationError(f"{what}: point {p!r} is not finite")
        out.append((row, col))
    return tuple(out)


@dataclass(frozen=True)
class Annotation:
    """One drawn object. ``text`` is what the user typed (a text label's words, or a note on
    a measurement); ``label_pos`` is the label's top-left where the user dragged it (None:
    placed automatically, ``core.annotations.labels``). ``revision`` counts stored edits."""

    kind: Kind
    points: tuple[Point, ...]
    image: ImageRef
    study_uid: str
    series_uid: str
    author: str = ""
    text: str = ""
    label_pos: Point | None = None
    uid: str = field(default_factory=new_uid)
    created_at: str = ""
    modified_at: str = ""
    revision: int = 0

    def __post_init__(self) -> None:
        try:
            kind = Kind(self.kind)
        except ValueError:
            known = ", ".join(k.value for k in Kind)
            raise AnnotationError(f"unknown annotation kind {self.kind!r} ({known})") from None
        object.__setattr__(self, "kind", kind)
        what = f"{kind.value} annotation '{self.uid}'"
        points = _points(self.points, what)
        fewest, most = POINT_COUNT[kind]
        if not fewest <= len(points) <= most:
            wanted = str(fewest) if fewest == most else f"{fewest} or more"
            raise AnnotationError(f"{what} needs {wanted} points, got {len(points)}")
        object.__setattr__(self, "points", points)
        if self.label_pos is not None:
            (pos,) = _points([self.label_pos], f"{what} label position")
            object.__setattr__(self, "label_pos", pos)
        if not self.study_uid or not self.series_uid:
            raise AnnotationError(f"{what} needs its study and series UIDs")
        if kind is Kind.TEXT and not self.text.strip():
            raise AnnotationError(f"{what}: a text label needs its text")

    @property
    def what(self) -> str:
        """How messages and audit details name it."""
        return f"{self.kind.value} annotation '{self.uid}'"

    @property
    def sop_instance_uid(self) -> str:
        """The acquired image's SOP Instance UID, "" on a reformatted plane."""
        return self.image.sop_instance_uid if isinstance(self.image, AcquiredImage) else ""

    def bounds(self) -> tuple[float, float, float, float]:
        """(top, left, bottom, right) of the points, in image pixels."""
        rows = [p[0] for p in self.points]
        cols = [p[1] for p in self.points]
        return (min(rows), min(cols), max(rows), max(cols))

    def moved(self, d_row: float, d_col: float) -> Annotation:
        """The same annotation shifted (a dragged label moves with it)."""
        points = tuple((r + d_row, c + d_col) for r, c in self.points)
        label = self.label_pos
        if label is not None:
            label = (label[0] + d_row, label[1] + d_col)
        return replace(self, points=points, label_pos=label)

    def edited(self, **changes: Any) -> Annotation:
        """A copy with ``points``, ``text`` or ``label_pos`` changed (checked again)."""
        allowed = {"points", "text", "label_pos"}
        if not set(changes) <= allowed:
            wrong = ", ".join(sorted(set(changes) - allowed))
            raise AnnotationError(f"{self.what}: {wrong} cannot be edited")
        return replace(self, **changes)

    def revised(self, edit: Annotation) -> Annotation:
        """This (stored) annotation with ``edit``'s points, text and label position, one
        revision on: the one rule of an update, in the session and in the store."""
        return replace(
            self,
            points=edit.points,
            text=edit.text,
            label_pos=edit.label_pos,
            revision=self.revision + 1,
        )

    def geometry_json(self) -> str:
        return json.dumps({"points": [list(p) for p in self.points]}, separators=(",", ":"))

    def to_json(self) -> dict[str, Any]:
        return {
            "uid": self.uid,
            "kind": self.kind.value,
            "points": [list(p) for p in self.points],
            "image": self.image.to_json(),
            "study_uid": self.study_uid,
            "series_uid": self.series_uid,
            "author": self.author,
            "text": self.text,
            "label_pos": list(self.label_pos) if self.label_pos else None,
            "created_at": self.created_at,
            "modified_at": self.modified_at,
            "revision": self.revision,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Annotation:
        label = data.get("label_pos")
        return cls(
            kind=Kind(data["kind"]),
            points=tuple(tuple(p) for p in data["points"]),
            image=image_from_json(data["image"]),
            study_uid=str(data["study_uid"]),
            series_uid=str(data["series_uid"]),
            author=str(data.get("author", "")),
            text=str(data.get("text", "")),
            label_pos=tuple(label) if label else None,
            uid=str(data["uid"]),
            created_at=str(data.get("created_at", "")),
            modified_at=str(data.get("modified_at", "")),
            revision=int(data.get("revision", 0)),
        )


def from_measurement(
    measurement: Any,
    *,
    sop_instance_uid: str,
    study_uid: str,
    series_uid: str,
    frame: int = 0,
    pixel_spacing: Sequence[float] | None = None,
    author: str = "",
) -> Annotation:
    """An annotation from a ``core.viewer.measure.Measurement`` (length or rectangle ROI, its
    points (x, y) = (col, row)). A measurement with a reformat ``plane`` is placed on that
    plane; otherwise on the acquired image named here (the measurement knows only its slice
    index, the caller knows which instance and frame that is)."""
    kinds = {"length": Kind.LENGTH, "roi": Kind.RECTANGLE}
    kind = kinds.get(str(measurement.kind))
    if kind is None:
        raise AnnotationError(f"measurement kind {measurement.kind!r} has no annotation tool")
    points = tuple((float(p[1]), float(p[0])) for p in (measurement.p0, measurement.p1))
    plane = getattr(measurement, "plane", None)
    image: ImageRef
    if plane is not None:
        image = PlaneImage.from_plane(plane)
    else:
        spacing = tuple(pixel_spacing) if pixel_spacing is not None else None
        image = AcquiredImage(sop_instance_uid, frame, spacing)  # type: ignore[arg-type]
    return Annotation(kind, points, image, study_uid, series_uid, author=author)
