"""The annotation model and what each tool measures: mm from the pixel spacing (pixels, said
so, without it), ROI statistics on real CT values against core.viewer.measure's rectangle, an
MPR plane's geometry against core.viewer.reformat, and bad input refused by name."""

from __future__ import annotations

import math

import numpy as np
import pydicom
import pytest

from core.annotations import compute
from core.annotations.model import (
    AcquiredImage,
    Annotation,
    AnnotationError,
    Kind,
    PlaneImage,
    from_measurement,
)
from core.viewer import measure
from core.viewer.reformat import Plane
from tests.conftest import DICOM_DATA

CT = DICOM_DATA / "QIICR__dcmqi" / "data" / "segmentations" / "ct-3slice" / "01.dcm"
STUDY, SERIES = "1.2.826.0.1.1", "1.2.826.0.1.2"


def _ct() -> tuple[np.ndarray, tuple[float, float], str]:
    """A real CT slice in HU, its pixel spacing and SOP Instance UID."""
    if not CT.exists():
        pytest.skip(f"the shared CT is not at '{CT}'")
    ds = pydicom.dcmread(CT)
    hu = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    return hu, (float(ds.PixelSpacing[0]), float(ds.PixelSpacing[1])), str(ds.SOPInstanceUID)


def _on(kind: Kind, points, spacing=(0.5, 2.0), **kw) -> Annotation:
    return Annotation(kind, points, AcquiredImage("1.2.3", 0, spacing), STUDY, SERIES, **kw)


def test_length_uses_row_and_column_spacing_and_says_px_without() -> None:
    # 10 rows down and 10 columns across: 10*0.5 mm down, 10*2 mm across
    a = _on(Kind.LENGTH, [(0, 0), (10, 10)])
    assert compute.length(a).value == pytest.approx(math.hypot(5, 20))
    assert compute.length(a).unit == "mm"
    bare = _on(Kind.LENGTH, [(0, 0), (3, 4)], spacing=None)
    assert compute.length(bare) == compute.Quantity(5.0, "px")
    assert compute.label_lines(bare) == ["5.0 px"]
    with pytest.raises(compute.NoPixelSpacing, match="no pixel spacing"):
        compute.require_mm(bare)


def test_angle_and_cobb_are_taken_in_mm() -> None:
    # arms along a row and down a column: 90 degrees whatever the spacing
    right = _on(Kind.ANGLE, [(0, 10), (0, 0), (10, 0)])
    assert compute.angle(right).value == pytest.approx(90.0)
    # 45 degrees in pixels is not 45 in mm when rows are 0.5 mm and columns 2 mm
    diag = _on(Kind.ANGLE, [(0, 10), (0, 0), (10, 10)])
    assert compute.angle(diag).value == pytest.approx(math.degrees(math.atan2(5, 20)))
    # two endplate lines tilted +10 and -10 degrees (square pixels): Cobb 20
    t = math.radians(10)
    lines = [(0, 0), (-100 * math.sin(t), 100 * math.cos(t))]
    lines += [(50, 0), (50 + 100 * math.sin(t), 100 * math.cos(t))]
    cobb = _on(Kind.COBB, lines, spacing=(0.7, 0.7))
    assert compute.angle(cobb).value == pytest.approx(20.0)
    assert compute.label_lines(cobb) == ["Cobb 20.0°"]
    bare = _on(Kind.COBB, lines, spacing=None)
    assert "square px assumed" in compute.angle(bare).unit


def test_rectangle_roi_matches_the_viewer_measure_on_real_hu() -> None:
    hu, spacing, sop = _ct()
    a = Annotation(
        Kind.RECTANGLE,
        [(100.2, 120.7), (140.9, 180.1)],
        AcquiredImage(sop, 0, spacing),
        STUDY,
        SERIES,
    )
    mine = compute.roi_stats(a, hu, "HU")
    theirs = measure.roi_stats(hu, (120.7, 100.2), (180.1, 140.9), spacing, "HU")
    assert mine is not None
    assert theirs is not None
    assert mine.pixels == theirs.pixels
    assert mine.mean == pytest.approx(theirs.mean)
    assert mine.sd == pytest.approx(theirs.sd)
    assert (mine.minimum, mine.maximum) == (theirs.minimum, theirs.maximum)
    assert mine.area.value == pytest.approx(
        (140.9 - 100.2) * (180.1 - 120.7) * spacing[0] * spacing[1]
    )
    assert mine.area.unit == "mm²"
    lines = compute.label_lines(a.edited(text="liver"), hu, "HU")
    assert lines[0] == "liver"
    assert lines[1] == f"mean {theirs.mean:.1f} HU  SD {theirs.sd:.1f}"
    assert lines[3] == f"area {mine.area.value:.1f} mm²"
    assert compute.label_lines(a) == [f"area {mine.area.value:.1f} mm²"]  # no pixels at hand


def test_ellipse_and_freehand_pick_the_pixels_inside_their_outline() -> None:
    hu, spacing, sop = _ct()
    image = AcquiredImage(sop, 0, spacing)
    ellipse = Annotation(Kind.ELLIPSE, [(200, 200), (260, 300)], image, STUDY, SERIES)
    _rs, _cs, inside = compute.roi_mask(ellipse, hu.shape)
    rr, cc = np.meshgrid(np.arange(hu.shape[0]) + 0.5, np.arange(hu.shape[1]) + 0.5, indexing="ij")
    full = ((rr - 230) / 30) ** 2 + ((cc - 250) / 50) ** 2 <= 1
    assert inside.sum() == full.sum()
    stats = compute.roi_stats(ellipse, hu, "HU")
    assert stats is not None
    assert stats.mean == pytest.approx(float(hu[full].mean()))
    assert stats.area.value == pytest.approx(math.pi * 30 * 50 * spacing[0] * spacing[1])
    # a freehand outline of the same rectangle selects the rectangle's pixels
    square = [(100, 100), (100, 150), (130, 150), (130, 100)]
    free = Annotation(Kind.FREEHAND, square, image, STUDY, SERIES)
    rect = Annotation(Kind.RECTANGLE, [(100, 100), (130, 150)], image, STUDY, SERIES)
    f, r = compute.roi_stats(free, hu), compute.roi_stats(rect, hu)
    assert f is not None
    assert r is not None
    assert (f.pixels, f.mean) == (r.pixels, pytest.approx(r.mean))
    assert f.area.value == pytest.approx(r.area.value)
    # a triangle: about half the square's pixels, exactly half its area
    tri = Annotation(Kind.FREEHAND, square[:3], image, STUDY, SERIES)
    t = compute.roi_stats(tri, hu)
    assert t is not None
    assert abs(t.pixels - r.pixels / 2) <= 50
    assert t.area.value == pytest.approx(r.area.value / 2)


def test_probe_reads_the_pixel_under_the_point_and_refuses_outside() -> None:
    hu, spacing, sop = _ct()
    a = Annotation(Kind.PROBE, [(10.9, 20.1)], AcquiredImage(sop, 0, spacing), STUDY, SERIES)
    assert compute.probe(a, hu, "HU") == compute.Quantity(float(hu[10, 20]), "HU")
    assert compute.label_lines(a, hu, "HU") == [f"{float(hu[10, 20]):.1f} HU"]
    outside = a.edited(points=[(hu.shape[0] + 1.0, 3.0)])
    with pytest.raises(AnnotationError, match="outside"):
        compute.probe(outside, hu)


def test_bad_annotations_are_refused_naming_what_is_wrong() -> None:
    with pytest.raises(AnnotationError, match=r"length annotation .* needs 2 points, got 3"):
        _on(Kind.LENGTH, [(0, 0), (1, 1), (2, 2)])
    with pytest.raises(AnnotationError, match="unknown annotation kind 'circle'"):
        _on("circle", [(0, 0)])  # type: ignore[arg-type]
    with pytest.raises(AnnotationError, match="not finite"):
        _on(Kind.PROBE, [(math.nan, 1)])
    with pytest.raises(AnnotationError, match="pixel spacing"):
        AcquiredImage("1.2.3", 0, (0.0, 1.0))
    with pytest.raises(AnnotationError, match="text label needs its text"):
        _on(Kind.TEXT, [(1, 1)])
    with pytest.raises(AnnotationError, match="cannot be edited"):
        _on(Kind.PROBE, [(1, 1)]).edited(kind=Kind.ARROW)


def test_json_round_trip_keeps_every_field() -> None:
    a = _on(Kind.FREEHAND, [(1, 2), (3, 4), (5, 1)], text="cyst?", label_pos=(9, 9))
    assert Annotation.from_json(a.to_json()) == a
    moved = a.moved(2, -1)
    assert moved.points[0] == (3, 1)
    assert moved.label_pos == (11, 8)  # a dragged label moves with its annotation
    assert moved.uid == a.uid


def test_a_plane_annotation_maps_to_the_reformat_patient_mm() -> None:
    plane = Plane(
        center=np.array([10.0, -20.0, 30.0]),
        u=np.array([1.0, 0.0, 0.0]),
        v=np.array([0.0, 0.0, -1.0]),
        rows=64,
        cols=48,
        pixel_size=0.8,
    )
    image = PlaneImage.from_plane(plane, "1.2.840.1")
    a = Annotation(Kind.LENGTH, [(0.5, 0.5), (10.5, 20.5)], image, STUDY, SERIES)
    # the model's (row, col) has pixel centres at +0.5; the reformat's at integers
    assert np.allclose(image.to_patient((10.5, 20.5)), plane.to_patient(10, 20))
    assert compute.length(a).value == pytest.approx(math.hypot(10, 20) * 0.8)
    assert Annotation.from_json(a.to_json()) == a


def test_a_viewer_measurement_converts_on_its_slice_or_its_plane() -> None:
    m = measure.Measurement("length", 3, (10.0, 20.0), (40.0, 60.0))  # (x, y) = (col, row)
    a = from_measurement(
        m, sop_instance_uid="1.2.3", study_uid=STUDY, series_uid=SERIES, pixel_spacing=(0.5, 0.5)
    )
    assert a.kind is Kind.LENGTH
    assert a.points == ((20.0, 10.0), (60.0, 40.0))
    assert compute.length(a).value == pytest.approx(measure.length(m.p0, m.p1, (0.5, 0.5)).value)
    plane = Plane(np.zeros(3), np.array([0, 1.0, 0]), np.array([0, 0, -1.0]), 32, 32, 0.6)
    on_plane = measure.Measurement(
        "roi", 0, (1.0, 2.0), (5.0, 9.0), measure.MeasurePlane.of(plane, "sagittal")
    )
    b = from_measurement(on_plane, sop_instance_uid="", study_uid=STUDY, series_uid=SERIES)
    assert b.kind is Kind.RECTANGLE
    assert isinstance(b.image, PlaneImage)
    assert np.allclose(b.image.to_patient((9.0, 5.0)), on_plane.plane.to_patient((5.0, 9.0)))
