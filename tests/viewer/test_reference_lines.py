"""Reference lines against an independent computation of the planes' intersection."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from core.imaging.volume import slice_refs
from core.viewer.reference_lines import (
    ImagePlane,
    PlaneStack,
    first_last_lines,
    nearest_slice,
    reference_line,
    stack_planes,
)
from core.viewer.state import slice_position
from tests.viewer.synthetic import CORONAL, SAGITTAL, stack


def independent_segment(target: ImagePlane, other: ImagePlane) -> list[np.ndarray]:
    """Intersect the planes by solving the linear system, map the line into target's pixels
    by hand, and cut it with the four image edges: the endpoints, as (x, y) arrays."""
    r, c = np.array(target.row_dir), np.array(target.col_dir)
    n1, n2 = np.cross(r, c), np.cross(np.array(other.row_dir), np.array(other.col_dir))
    d = np.cross(n1, n2)
    a = np.vstack([n1, n2, d])
    rhs = np.array([n1 @ np.array(target.origin), n2 @ np.array(other.origin), 0.0])
    p0 = np.linalg.solve(a, rhs)
    dy, dx = target.spacing

    def pix(q: np.ndarray) -> np.ndarray:
        v = q - np.array(target.origin)
        return np.array([v @ r / dx + 0.5, v @ c / dy + 0.5])

    p, q = pix(p0), pix(p0 + d)
    rows, cols = target.size
    hits = []
    for axis, bound in itertools.product((0, 1), (0.0, 1.0)):
        limit = bound * (cols if axis == 0 else rows)
        if abs(q[axis] - p[axis]) < 1e-12:
            continue
        t = (limit - p[axis]) / (q[axis] - p[axis])
        pt = p + t * (q - p)
        if -1e-6 <= pt[0] <= cols + 1e-6 and -1e-6 <= pt[1] <= rows + 1e-6:
            hits.append(pt)
    unique: list[np.ndarray] = []
    for h in hits:
        if all(np.linalg.norm(h - u) > 1e-6 for u in unique):
            unique.append(h)
    return unique


def check(target: ImagePlane, other: ImagePlane) -> None:
    seg = reference_line(target, other)
    expected = independent_segment(target, other)
    assert seg is not None
    assert len(expected) == 2
    got = [np.array(seg[0]), np.array(seg[1])]
    for e in expected:
        assert min(np.linalg.norm(e - g) for g in got) < 1e-6
    for g in got:  # and each endpoint lies on both planes in patient space
        point = target.to_patient(*g)
        assert abs(target.distance(point)) < 1e-6
        assert abs(other.distance(point)) < 1e-6


def test_coronal_plane_on_an_axial_image_is_the_expected_row() -> None:
    axial = ImagePlane((-128.0, -128.0, 40.0), (1, 0, 0), (0, 1, 0), (0.5, 0.5), (512, 512), "F")
    coronal = ImagePlane((-200.0, 10.0, 300.0), (1, 0, 0), (0, 0, -1), (1.0, 1.0), (300, 400), "F")
    seg = reference_line(axial, coronal)
    assert seg is not None
    (x0, y0), (x1, y1) = sorted(seg)
    # y = 10 mm: pixel centre row (10 + 128) / 0.5 = 276, i.e. image y 276.5
    assert (x0, y0, x1, y1) == pytest.approx((0.0, 276.5, 512.0, 276.5))


@pytest.mark.parametrize("seed", range(20))
def test_oblique_planes_match_the_linear_algebra(seed: int) -> None:
    rng = np.random.default_rng(seed)

    def plane(frame: str = "F") -> ImagePlane:
        q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
        centre = rng.normal(scale=10.0, size=3)
        spacing = (float(rng.uniform(0.3, 2.0)), float(rng.uniform(0.3, 2.0)))
        size = (int(rng.integers(64, 512)), int(rng.integers(64, 512)))
        return ImagePlane.from_centre(centre, q[:, 0], q[:, 1], spacing, size, frame)

    target, other = plane(), plane()
    if len(independent_segment(target, other)) == 2:
        check(target, other)
    else:  # the planes meet outside the image: no line
        assert reference_line(target, other) is None


def test_parallel_planes_and_other_frames_of_reference_give_no_line() -> None:
    a = ImagePlane((0.0, 0.0, 0.0), (1, 0, 0), (0, 1, 0), (1.0, 1.0), (100, 100), "F")
    b = ImagePlane((0.0, 0.0, 5.0), (1, 0, 0), (0, 1, 0), (1.0, 1.0), (100, 100), "F")
    c = ImagePlane((0.0, 0.0, 0.0), (1, 0, 0), (0, 0, -1), (1.0, 1.0), (100, 100), "G")
    d = ImagePlane((0.0, 0.0, 0.0), (1, 0, 0), (0, 0, -1), (1.0, 1.0), (100, 100), "")
    assert reference_line(a, b) is None
    assert reference_line(a, c) is None
    assert reference_line(d, d) is None  # no Frame of Reference: never drawn


def test_planes_from_headers_first_and_last_slices_and_nearest_slice() -> None:
    axial = stack_planes(slice_refs(stack("1.1", 50, 2.0, start=(-25.6, -25.6, 0.0))))
    sagittal_series = stack("1.2", 20, 2.0, start=(18.0, -25.6, 60.0), orientation=SAGITTAL)
    sagittal = stack_planes(slice_refs(sagittal_series))  # x = 18, 16, ... -20 mm
    target = axial[10]
    assert target is not None
    lines = first_last_lines(target, sagittal)
    assert len(lines) == 2
    xs = sorted(seg[0][0] for seg in lines)  # vertical lines at x = -20 mm and x = +18 mm
    assert xs == pytest.approx([(-20 + 25.6) / 0.8 + 0.5, (18 + 25.6) / 0.8 + 0.5])
    check(target, sagittal[7])  # type: ignore[arg-type]
    assert nearest_slice(axial, (0.0, 0.0, 33.1)) == 17
    assert nearest_slice([None, None], (0.0, 0.0, 0.0)) is None


def test_plane_agrees_with_the_viewers_slice_position() -> None:
    series = stack("1.3", 5, 3.0, start=(0.0, 0.0, 0.0), orientation=CORONAL)
    for inst in series.instances:
        plane = ImagePlane.from_instance(inst)
        assert plane is not None
        assert plane.distance((0.0, 0.0, 0.0)) == pytest.approx(-(slice_position(inst) or 0))


def test_a_reformat_plane_maps_pixels_like_the_reformat_engine() -> None:
    from core.viewer.reformat import STANDARD_AXES, Plane

    u, v = (np.array(a) for a in STANDARD_AXES["coronal"])
    plane = Plane(np.array([5.0, -20.0, 40.0]), u, v, rows=300, cols=400, pixel_size=0.7)
    image_plane = ImagePlane.from_reformat(plane, "F")
    for row, col in ((0, 0), (12.25, 301.5), (299, 399)):
        expected = plane.to_patient(row, col)
        assert image_plane.to_patient(col + 0.5, row + 0.5) == pytest.approx(expected)
    axial = ImagePlane((-128.0, -128.0, 40.0), (1, 0, 0), (0, 1, 0), (0.5, 0.5), (512, 512), "F")
    check(axial, image_plane)


def test_a_stacks_slice_spacing_is_its_median_gap_along_the_normal() -> None:
    series = stack("1.1", 12, 2.5, orientation=CORONAL)
    planes = stack_planes(slice_refs(series))
    assert PlaneStack(planes).spacing() == pytest.approx(2.5)
    del planes[5]  # one slice missing: the usual gap still rules
    assert PlaneStack(planes).spacing() == pytest.approx(2.5)
    assert PlaneStack(planes[:1]).spacing() == pytest.approx(0.8)  # alone: its pixel spacing
