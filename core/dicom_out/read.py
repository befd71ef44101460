"""Reading the same kinds of objects made by other systems: a GSPS's graphics, a measurement
SR's numbers and a KOS's instances, each per referenced image.

Written over plain pydicom on purpose rather than highdicom's ``from_dataset``: those parse
strictly by template and refuse objects that other systems structure differently (a NUM
directly under the root, an image reference beside the numbers rather than under an SCOORD,
a GSPS annotation without its own image list). Here the content tree is walked and each
number takes the label, outline and image nearest to it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from core.reports.items import ImageRef

if TYPE_CHECKING:
    import pydicom

GSPS_CLASS = "1.2.840.10008.5.1.4.1.1.11.1"
KOS_CLASS = "1.2.840.10008.5.1.4.1.1.88.59"
SR_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.88.11",  # Basic Text SR
    "1.2.840.10008.5.1.4.1.1.88.22",  # Enhanced SR
    "1.2.840.10008.5.1.4.1.1.88.33",  # Comprehensive SR
    "1.2.840.10008.5.1.4.1.1.88.34",  # Comprehensive 3D SR
}
TRACKING_IDENTIFIER = "112039"
DERIVATION = "121401"


class ReadError(ValueError):
    """An object that is not of the kind asked for, or lacks what that kind must carry."""


@dataclass(frozen=True)
class Graphic:
    """One graphic or text object of a presentation state, on one image."""

    kind: str  # GraphicType (POLYLINE, ELLIPSE, POINT, CIRCLE, ...) or "TEXT"
    points: tuple[tuple[float, float], ...]
    units: str  # PIXEL or DISPLAY
    text: str = ""
    layer: str = ""


@dataclass(frozen=True)
class ReadMeasurement:
    """One number of a measurement SR with what it is about."""

    quantity: str  # concept name meaning ("Length", "Attenuation Coefficient")
    value: float
    unit: str  # UCUM code as sent
    derivation: str = ""  # "Mean", "Standard Deviation", ... or ""
    label: str = ""  # the group's tracking identifier
    graphic_type: str = ""
    points: tuple[tuple[float, float], ...] = ()


@dataclass(frozen=True)
class KeySelection:
    """A KOS: its title and the instances (frames) it selects."""

    title: str
    images: tuple[ImageRef, ...]
    description: str = ""


@dataclass
class _Context:
    label: str = ""
    graphic_type: str = ""
    points: tuple[tuple[float, float], ...] = ()
    images: list[ImageRef] = field(default_factory=list)


def _require(ds: pydicom.Dataset, classes: set[str], kind: str) -> None:
    sop_class = str(ds.get("SOPClassUID", ""))
    if sop_class not in classes:
        raise ReadError(f"object '{ds.get('SOPInstanceUID', '?')}' is not a {kind} ({sop_class})")


def _pairs(flat: Any) -> tuple[tuple[float, float], ...]:
    values = [float(v) for v in (flat or [])]
    if len(values) % 2:
        raise ReadError(f"graphic data has an odd number of values ({len(values)})")
    return tuple(zip(values[::2], values[1::2], strict=True))


def _frames(item: pydicom.Dataset) -> list[int | None]:
    raw = item.get("ReferencedFrameNumber")
    if raw is None or raw == "":
        return [None]
    if isinstance(raw, int | str):
        return [int(raw)]
    return [int(v) for v in raw]


def _refs(items: Any) -> list[ImageRef]:
    """ImageRefs of a Referenced (Image|SOP) Sequence, one per frame where frames are named."""
    refs: list[ImageRef] = []
    for item in items or []:
        for frame in _frames(item):
            refs.append(
                ImageRef(str(item.ReferencedSOPClassUID), str(item.ReferencedSOPInstanceUID), frame)
            )
    return refs


def _meaning(item: pydicom.Dataset) -> str:
    names = item.get("ConceptNameCodeSequence") or []
    return str(names[0].CodeMeaning) if names else ""


def _code_value(item: pydicom.Dataset) -> str:
    names = item.get("ConceptNameCodeSequence") or []
    return str(names[0].CodeValue) if names else ""


# --- GSPS -------------------------------------------------------------------------------------
def read_gsps(ds: pydicom.Dataset) -> dict[ImageRef, list[Graphic]]:
    """The graphic and text objects of a GSPS per image (and frame) they are drawn on."""
    _require(ds, {GSPS_CLASS}, "grayscale softcopy presentation state")
    every = [
        ref
        for series in ds.get("ReferencedSeriesSequence") or []
        for ref in _refs(series.get("ReferencedImageSequence"))
    ]
    found: dict[ImageRef, list[Graphic]] = {}
    for annotation in ds.get("GraphicAnnotationSequence") or []:
        layer = str(annotation.get("GraphicLayer", ""))
        targets = _refs(annotation.get("ReferencedImageSequence")) or every
        graphics = [
            Graphic(
                kind=str(obj.GraphicType),
                points=_pairs(obj.GraphicData),
                units=str(obj.GraphicAnnotationUnits),
                layer=layer,
            )
            for obj in annotation.get("GraphicObjectSequence") or []
        ]
        for obj in annotation.get("TextObjectSequence") or []:
            if "AnchorPoint" in obj:
                point = _pairs(obj.AnchorPoint)
                units = str(obj.get("AnchorPointAnnotationUnits", ""))
            else:
                point = _pairs(obj.BoundingBoxTopLeftHandCorner)
                units = str(obj.get("BoundingBoxAnnotationUnits", ""))
            text = str(obj.get("UnformattedTextValue", ""))
            graphics.append(Graphic("TEXT", point, units, text=text, layer=layer))
        for ref in targets:
            found.setdefault(ref, []).extend(graphics)
    return found


def window_of(ds: pydicom.Dataset) -> tuple[float, float] | None:
    """A presentation state's first window (center, width), if it has one."""
    for item in ds.get("SoftcopyVOILUTSequence") or []:
        if "WindowCenter" in item and "WindowWidth" in item:
            center, width = item.WindowCenter, item.WindowWidth
            first = (center[0], width[0]) if hasattr(center, "__len__") else (center, width)
            return float(first[0]), float(first[1])
    return None


# --- measurement SR ---------------------------------------------------------------------------
def _image_of(item: pydicom.Dataset) -> list[ImageRef]:
    return _refs(item.get("ReferencedSOPSequence"))


def _scoord_context(item: pydicom.Dataset, ctx: _Context) -> _Context:
    images = [ref for child in item.get("ContentSequence") or [] for ref in _image_of(child)]
    return _Context(
        label=ctx.label,
        graphic_type=str(item.get("GraphicType", "")),
        points=_pairs(item.get("GraphicData")),
        images=images or ctx.images,
    )


def _context_of(children: Any, outer: _Context) -> _Context:
    """What a container's own children say about the numbers beside them."""
    ctx = _Context(outer.label, outer.graphic_type, outer.points, list(outer.images))
    for child in children or []:
        kind = str(child.get("ValueType", ""))
        if kind == "TEXT" and _code_value(child) == TRACKING_IDENTIFIER:
            ctx.label = str(child.TextValue)
        elif kind == "SCOORD":
            ctx = _scoord_context(child, ctx)
        elif kind == "IMAGE":
            ctx.images = _image_of(child)
    return ctx


def _number(item: pydicom.Dataset, ctx: _Context) -> tuple[list[ImageRef], ReadMeasurement]:
    measured = item.get("MeasuredValueSequence") or []
    if not measured:
        raise ReadError(f"numeric item '{_meaning(item)}' has no value")
    value = measured[0]
    units = value.get("MeasurementUnitsCodeSequence") or []
    derivation = ""
    local = ctx
    for child in item.get("ContentSequence") or []:
        kind = str(child.get("ValueType", ""))
        if kind == "CODE" and _code_value(child) == DERIVATION:
            derivation = str(child.ConceptCodeSequence[0].CodeMeaning)
        elif kind == "SCOORD":
            local = _scoord_context(child, local)
        elif kind == "IMAGE":
            local = _Context(local.label, local.graphic_type, local.points, _image_of(child))
    return local.images, ReadMeasurement(
        quantity=_meaning(item),
        value=float(value.NumericValue),
        unit=str(units[0].CodeValue) if units else "",
        derivation=derivation,
        label=local.label,
        graphic_type=local.graphic_type,
        points=local.points,
    )


def _walk(items: Any, ctx: _Context) -> Iterator[tuple[list[ImageRef], ReadMeasurement]]:
    ctx = _context_of(items, ctx)
    for item in items or []:
        kind = str(item.get("ValueType", ""))
        if kind == "NUM":
            yield _number(item, ctx)
        elif kind == "CONTAINER":
            yield from _walk(item.get("ContentSequence"), ctx)


def read_measurements(ds: pydicom.Dataset) -> dict[ImageRef | None, list[ReadMeasurement]]:
    """Every number of an SR per image it was measured on (None: no image named)."""
    _require(ds, SR_CLASSES, "structured report")
    found: dict[ImageRef | None, list[ReadMeasurement]] = {}
    for images, measurement in _walk(ds.get("ContentSequence"), _Context()):
        targets: list[ImageRef | None] = list(images) if images else [None]
        for ref in targets:
            found.setdefault(ref, []).append(measurement)
    return found


# --- KOS --------------------------------------------------------------------------------------
def read_kos(ds: pydicom.Dataset) -> KeySelection:
    """The title and the selected instances of a Key Object Selection document."""
    _require(ds, {KOS_CLASS}, "key object selection document")
    images: list[ImageRef] = []
    description = ""
    for item in ds.get("ContentSequence") or []:
        kind = str(item.get("ValueType", ""))
        if kind in ("IMAGE", "COMPOSITE"):
            images += [r for r in _image_of(item) if r not in images]
        elif kind == "TEXT" and _code_value(item) == "113012":
            description = str(item.TextValue)
    if not images:
        raise ReadError(f"key object selection '{ds.get('SOPInstanceUID', '?')}' selects nothing")
    return KeySelection(title=_meaning(ds), images=tuple(images), description=description)
