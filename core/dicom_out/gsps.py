"""Annotations as a Grayscale Softcopy Presentation State (highdicom's GSPS).

Every mark becomes a graphic object in PIXEL units on its image (and frame): a polyline, a
closed polyline for a polygon (the first point repeated), an ellipse (four points) or a point;
its label and values become a text object anchored at its first point, so a viewer that only
draws the GSPS still shows "ROI 1: Mean 45.2 HU". A text mark is a text object alone. The
window the radiologist read with is the presentation state's VOI (window center/width).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

import numpy as np

from core.dicom_out.common import (
    MANUFACTURER,
    MODEL_NAME,
    SERIES_GSPS,
    SOFTWARE_VERSION,
    ExportError,
    charset,
    check_sources,
    person_name,
    stamp,
)
from core.reports.items import Mark

if TYPE_CHECKING:
    import highdicom as hd
    import pydicom

LAYER = "DOCTORAI"


@dataclass(frozen=True)
class Window:
    """The VOI the images were read with (in modality units, e.g. HU)."""

    center: float
    width: float

    def __post_init__(self) -> None:
        if not self.width > 0:
            raise ExportError(f"a window width must be positive, got {self.width}")


def mark_caption(mark: Mark) -> str:
    """The text drawn beside a mark: its label and its values."""
    values = ", ".join(v.text for v in mark.values)
    if mark.label and values:
        return f"{mark.label}: {values}"
    return mark.label or values


def _graphic(mark: Mark) -> hd.pr.GraphicObject | None:
    import highdicom as hd

    points = np.asarray(mark.points, dtype=float)
    kinds = {
        "polyline": hd.pr.GraphicTypeValues.POLYLINE,
        "polygon": hd.pr.GraphicTypeValues.POLYLINE,
        "ellipse": hd.pr.GraphicTypeValues.ELLIPSE,
        "point": hd.pr.GraphicTypeValues.POINT,
    }
    if mark.kind not in kinds:
        return None
    if mark.kind == "polygon":
        points = np.vstack([points, points[:1]])
    return hd.pr.GraphicObject(
        graphic_type=kinds[mark.kind],
        graphic_data=points,
        units=hd.pr.AnnotationUnitsValues.PIXEL,
        tracking_id=(mark.label or mark.kind)[:64],
        tracking_uid=hd.UID(),
    )


def _text(mark: Mark, ds: pydicom.Dataset) -> hd.pr.TextObject | None:
    import highdicom as hd

    caption = mark_caption(mark)
    if not caption:
        return None
    col, row = mark.points[0]
    # the anchor must lie on the image (PIXEL units are checked against Rows/Columns)
    col = min(max(col, 0.0), float(ds.Columns))
    row = min(max(row, 0.0), float(ds.Rows))
    return hd.pr.TextObject(
        text_value=caption[:1024],
        units=hd.pr.AnnotationUnitsValues.PIXEL,
        anchor_point=(col, row),
        anchor_point_visible=mark.kind != "text",
    )


def _per_frame_rescale(
    marks: Sequence[Mark], by_uid: dict[str, pydicom.Dataset]
) -> hd.ModalityLUTTransformation | None:
    """One rescale for images that carry it per frame (enhanced multi-frame: highdicom cannot
    derive the presentation state's single Modality LUT from them).

    The frames the marks lie on (all frames of an image without marks) must share one rescale:
    a Philips enhanced MR stores a magnitude and a field map in one image with two, and one
    presentation state cannot window both.
    """
    import highdicom as hd

    values: set[tuple[float, float, str]] = set()
    for uid, ds in by_uid.items():
        groups = ds.get("PerFrameFunctionalGroupsSequence") or []
        if not any("PixelValueTransformationSequence" in g for g in groups):
            continue
        frames = {m.image.frame for m in marks if m.image.sop_instance_uid == uid} - {None}
        for n, group in enumerate(groups, start=1):
            if frames and n not in frames:
                continue
            if "PixelValueTransformationSequence" not in group:
                continue
            item = group.PixelValueTransformationSequence[0]
            values.add(
                (
                    float(item.get("RescaleSlope", 1.0)),
                    float(item.get("RescaleIntercept", 0.0)),
                    str(item.get("RescaleType", "US") or "US"),
                )
            )
    if not values:
        return None
    if len(values) > 1:
        raise ExportError(
            f"the annotated frames have {len(values)} different rescale slopes/intercepts; "
            "one presentation state carries one window: export each kind of frame separately"
        )
    slope, intercept, kind = values.pop()
    return hd.ModalityLUTTransformation(
        rescale_intercept=intercept, rescale_slope=slope, rescale_type=kind
    )


def build_gsps(
    marks: Sequence[Mark],
    sources: Sequence[pydicom.Dataset],
    *,
    creator: str,
    window: Window | None = None,
    label: str = "ANNOTATIONS",
    at: datetime | None = None,
    series_number: int = SERIES_GSPS,
) -> hd.pr.GrayscaleSoftcopyPresentationState:
    """A GSPS over ``sources`` (the images shown) carrying ``marks`` and the ``window``."""
    import highdicom as hd

    by_uid = check_sources("presentation state", sources, [m.image for m in marks])
    series = {str(ds.SeriesInstanceUID) for ds in sources}
    if len(series) != 1:
        raise ExportError(f"a presentation state covers one series; the images span {len(series)}")
    layer = hd.pr.GraphicLayer(layer_name=LAYER, order=1, description="DoctorAI annotations")
    per_image: dict[tuple[str, int | None], list[Mark]] = {}
    for mark in marks:
        per_image.setdefault((mark.image.sop_instance_uid, mark.image.frame), []).append(mark)
    annotations = []
    for (uid, frame), group in per_image.items():
        ds = by_uid[uid]
        graphics = [g for g in (_graphic(m) for m in group) if g is not None]
        texts = [t for t in (_text(m, ds) for m in group) if t is not None]
        multi = int(ds.get("NumberOfFrames", 1) or 1) > 1
        annotations.append(
            hd.pr.GraphicAnnotation(
                referenced_images=[ds],
                graphic_layer=layer,
                referenced_frame_number=frame if multi and frame is not None else None,
                graphic_objects=graphics or None,
                text_objects=texts or None,
            )
        )
    voi = (
        [hd.pr.SoftcopyVOILUTTransformation(window_center=window.center, window_width=window.width)]
        if window is not None
        else None
    )
    gsps = hd.pr.GrayscaleSoftcopyPresentationState(
        referenced_images=list(sources),
        series_instance_uid=hd.UID(),
        series_number=series_number,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer=MANUFACTURER,
        manufacturer_model_name=MODEL_NAME,
        software_versions=SOFTWARE_VERSION,
        device_serial_number="0",
        content_label=label[:16].upper().replace(" ", "_"),
        content_description="Annotations and window of the read",
        graphic_annotations=annotations or None,
        graphic_layers=[layer] if annotations else None,
        voi_lut_transformations=voi,
        modality_lut_transformation=_per_frame_rescale(marks, by_uid),
        content_creator_name=person_name(creator),
        series_description="Annotations",
        specific_character_set=charset(sources),
    )
    # General Series' Laterality is type 2C; dciodvfy asks for it in a presentation state, whose
    # images carry it or (most CT/MR) do not: copied, or empty (unknown) as type 2 allows.
    gsps.Laterality = sources[0].get("Laterality", "") or ""
    stamp(gsps, at, presentation=True)
    return gsps
