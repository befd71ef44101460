"""Length and ROI statistics: hand-computed values and the real CT in modality units."""

from __future__ import annotations

import math

import numpy as np
import pytest

from core.viewer.measure import length, roi_pixels, roi_stats


def test_length_anisotropic_spacing() -> None:
    # row spacing 0.5 mm, column spacing 2.0 mm: 3 columns = 6 mm, 4 rows = 2 mm
    m = length((0, 0), (3, 4), (0.5, 2.0))
    assert m.unit == "mm"
    assert m.value == pytest.approx(math.sqrt(6**2 + 2**2))
    assert m.label() == f"{math.sqrt(40):.1f} mm"


def test_length_without_spacing_is_in_pixels() -> None:
    m = length((1, 1), (4, 5), None)
    assert (m.value, m.unit) == (pytest.approx(5.0), "px")
    assert m.label().endswith("px")


def test_roi_takes_pixels_whose_centres_are_inside() -> None:
    rs, cs = roi_pixels((10, 10), (0.5, 0.5), (2.5, 1.4))
    assert (rs, cs) == (slice(0, 1), slice(0, 3))
    # corners in any order, clipped at the image border
    assert roi_pixels((10, 10), (12, 12), (8.2, 8.6)) == (slice(9, 10), slice(8, 10))


def test_roi_stats_hand_computed() -> None:
    values = np.arange(20, dtype=np.float32).reshape(4, 5)  # value = 5*row + col
    s = roi_stats(values, (1, 1), (3, 3), (0.5, 0.25), "HU")
    assert s is not None
    # pixel centres inside: rows 1..2, cols 1..2 -> 6, 7, 11, 12
    assert s.pixels == 4
    assert s.mean == pytest.approx(9.0)
    assert s.sd == pytest.approx(np.std([6, 7, 11, 12]))
    assert (s.minimum, s.maximum) == (6, 12)
    assert s.area == pytest.approx(4 * 0.5 * 0.25)
    assert s.area_unit == "mm²"
    assert "HU" in s.label()


def test_empty_roi_is_none() -> None:
    assert roi_stats(np.zeros((4, 4)), (1.1, 1.1), (1.4, 1.4), None) is None


def test_roi_in_air_on_real_ct_is_about_minus_1000_hu(ct_frame) -> None:
    frame, values, ds = ct_frame
    s = roi_stats(frame.values, (40, 40), (120, 120), frame.pixel_spacing, frame.units)
    assert s is not None
    assert -1000 <= s.mean <= -985
    assert s.sd < 15
    region = values[40:120, 40:120]  # centres 40.5..119.5 are inside [40, 120]
    assert s.pixels == region.size
    assert s.mean == pytest.approx(region.mean(), abs=1e-3)
    assert s.maximum == pytest.approx(region.max())
    assert s.area == pytest.approx(80 * 80 * float(ds.PixelSpacing[0]) * float(ds.PixelSpacing[1]))


def test_roi_in_soft_tissue_on_real_ct(ct_frame) -> None:
    frame, values, _ds = ct_frame
    # centre of the abdomen on slice 67: soft tissue and contrast, far from air
    s = roi_stats(frame.values, (240, 240), (270, 270), frame.pixel_spacing, "HU")
    assert s is not None
    assert s.mean == pytest.approx(values[240:270, 240:270].mean(), abs=1e-3)
    assert -200 < s.mean < 300
    assert s.minimum > -900


def test_length_on_real_ct_uses_pixel_spacing(ct_frame) -> None:
    frame, _values, ds = ct_frame
    m = length((100, 256), (400, 256), frame.pixel_spacing)
    assert m.value == pytest.approx(300 * float(ds.PixelSpacing[1]))


def test_a_measure_plane_maps_image_points_to_patient_mm_and_knows_its_plane() -> None:
    from core.viewer.measure import Measurement, MeasurePlane
    from core.viewer.reformat import Plane

    # a coronal plane: +x left, +y down the patient (towards the feet); 0.5 mm pixels
    plane = Plane(
        center=np.array([0.0, 20.0, 100.0]),
        u=np.array([1.0, 0.0, 0.0]),
        v=np.array([0.0, 0.0, -1.0]),
        rows=200,
        cols=100,
        pixel_size=0.5,
    )
    where = MeasurePlane.of(plane, "coronal")
    # pixel (0, 0)'s centre: half the image left of and above the centre, minus half a pixel
    assert where.origin == pytest.approx((-24.75, 20.0, 149.75))
    assert where.orientation == (1.0, 0.0, 0.0, 0.0, 0.0, -1.0)
    # image point (x, y) = (50, 100) is the middle of the image: the plane's centre
    assert where.to_patient((50.0, 100.0)) == pytest.approx([0.0, 20.0, 100.0])
    assert where.to_patient((52.0, 100.0)) == pytest.approx([1.0, 20.0, 100.0])
    assert where.shows(plane)
    moved = Plane(plane.center + np.array([0.0, 0.5, 0.0]), plane.u, plane.v, 200, 100, 0.5)
    assert not where.shows(moved)  # the next coronal plane, half a mm behind
    shifted = Plane(plane.center + np.array([3.0, 0.0, -7.0]), plane.u, plane.v, 220, 90, 0.5)
    assert where.shows(shifted)  # the same plane on another grid
    turned = Plane(plane.center, np.array([0.0, 1.0, 0.0]), plane.v, 200, 100, 0.5)
    assert not where.shows(turned)
    assert Measurement("length", 3, (0.0, 0.0), (1.0, 1.0)).plane is None  # an acquired slice
