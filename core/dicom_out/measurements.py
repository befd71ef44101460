"""Measurements as a TID 1500 Measurement Report (highdicom's Comprehensive 3D SR).

One measurement group per mark, tracked by the mark's label and a new UID:

- a region (polygon, ellipse, point) is a TID 1410 planar ROI group whose region is the mark's
  outline in pixel coordinates (SCOORD) on its image, with its values (area, mean, SD, ...);
- a line (polyline: a length, an angle) is a TID 1501 group whose each value is INFERRED FROM
  the line (TID 300's SCOORD), the image being the group's source.

Values of intensity (mean, SD, min, max, the value at a point) are named by the quantity the
modality measures: Attenuation Coefficient in HU for CT, MR signal intensity for MR, else a
private "Pixel value", with the statistic as the derivation (Mean, Standard Deviation, ...).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from core.dicom_out.common import (
    MANUFACTURER,
    PRIVATE_SCHEME,
    SERIES_MEASUREMENTS,
    ExportError,
    charset,
    check_sources,
    person_observer,
    stamp,
)
from core.reports.items import Mark, Value

if TYPE_CHECKING:
    import highdicom as hd
    import pydicom

UNIT_MEANINGS = {
    "mm": "millimeter",
    "mm2": "square millimeter",
    "deg": "degree",
    "[hnsf'U]": "Hounsfield unit",
    "1": "no units",
}
DERIVATIONS = {
    "mean": ("373098007", "SCT", "Mean"),
    "sd": ("386136009", "SCT", "Standard Deviation"),
    "min": ("255605001", "SCT", "Minimum"),
    "max": ("56851009", "SCT", "Maximum"),
}
QUANTITY = {
    "CT": ("112031", "DCM", "Attenuation Coefficient"),
    "MR": ("110852", "DCM", "MR signal intensity"),
}
PIXEL_VALUE = ("PIXVAL", PRIVATE_SCHEME, "Pixel value")
NAMES = {
    "length": ("410668003", "SCT", "Length"),
    "angle": ("1483009", "SCT", "Angle"),
    "area": ("42798000", "SCT", "Area"),
}


def _concept(triple: tuple[str, str, str]) -> hd.sr.CodedConcept:
    import highdicom as hd

    return hd.sr.CodedConcept(*triple)


def _unit(unit: str) -> hd.sr.CodedConcept:
    import highdicom as hd

    return hd.sr.CodedConcept(unit, "UCUM", UNIT_MEANINGS.get(unit, unit))


def _measurement(value: Value, modality: str, coords: Any = None) -> hd.sr.Measurement:
    import highdicom as hd

    if value.name in NAMES:
        name, derivation = _concept(NAMES[value.name]), None
    else:
        name = _concept(QUANTITY.get(modality, PIXEL_VALUE))
        derivation = _concept(DERIVATIONS[value.name]) if value.name in DERIVATIONS else None
    return hd.sr.Measurement(
        name=name,
        value=float(value.value),
        unit=_unit(value.unit),
        derivation=derivation,
        referenced_coordinates=[coords] if coords is not None else None,
    )


def _frames(mark: Mark, ds: pydicom.Dataset) -> list[int] | None:
    multi = int(ds.get("NumberOfFrames", 1) or 1) > 1
    return [mark.image.frame] if multi and mark.image.frame is not None else None


def _group(mark: Mark, ds: pydicom.Dataset, n: int) -> Any:
    import highdicom as hd
    from pydicom.sr.codedict import codes

    tracking = hd.sr.TrackingIdentifier(uid=hd.UID(), identifier=(mark.label or f"Mark {n}")[:64])
    modality = str(ds.get("Modality", ""))
    source = hd.sr.SourceImageForRegion.from_source_image(ds, _frames(mark, ds))
    points = np.asarray(mark.points, dtype=float)
    if mark.kind == "polyline":
        coords = hd.sr.CoordinatesForMeasurement(
            graphic_type=hd.sr.GraphicTypeValues.POLYLINE, graphic_data=points, source_image=source
        )
        return hd.sr.MeasurementsAndQualitativeEvaluations(
            tracking_identifier=tracking,
            finding_type=codes.SCT.Finding,
            measurements=[_measurement(v, modality, coords) for v in mark.values],
            source_images=[
                hd.sr.SourceImageForMeasurementGroup.from_source_image(ds, _frames(mark, ds))
            ],
        )
    if mark.kind == "polygon":
        graphic, points = hd.sr.GraphicTypeValues.POLYLINE, np.vstack([points, points[:1]])
    elif mark.kind == "ellipse":
        graphic = hd.sr.GraphicTypeValues.ELLIPSE
    else:
        graphic = hd.sr.GraphicTypeValues.POINT
    region = hd.sr.ImageRegion(graphic_type=graphic, graphic_data=points, source_image=source)
    return hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
        tracking_identifier=tracking,
        referenced_region=region,
        finding_type=codes.SCT.Finding,
        measurements=[_measurement(v, modality) for v in mark.values],
    )


def build_measurement_report(
    marks: Sequence[Mark],
    sources: Sequence[pydicom.Dataset],
    *,
    observer: str,
    at: datetime | None = None,
    series_number: int = SERIES_MEASUREMENTS,
) -> hd.sr.Comprehensive3DSR:
    """A TID 1500 report of every mark that carries values (text and bare marks are left to
    the GSPS)."""
    import highdicom as hd
    from pydicom.sr.codedict import codes

    measured = [m for m in marks if m.values and m.kind != "text"]
    if not measured:
        raise ExportError("a measurement report needs at least one mark with a measured value")
    by_uid = check_sources("measurement report", sources, [m.image for m in measured])
    groups = [_group(m, by_uid[m.image.sop_instance_uid], n) for n, m in enumerate(measured, 1)]
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(
            observer_person_context=person_observer(observer)
        ),
        procedure_reported=codes.SCT.ImagingProcedure,
        imaging_measurements=groups,
    )
    used = {m.image.sop_instance_uid for m in measured}
    sr = hd.sr.Comprehensive3DSR(
        evidence=[ds for ds in sources if str(ds.SOPInstanceUID) in used],
        content=report,
        series_instance_uid=hd.UID(),
        series_number=series_number,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer=MANUFACTURER,
        is_complete=True,
        series_description="Measurements",
        specific_character_set=charset(sources),
    )
    stamp(sr, at)
    return sr
