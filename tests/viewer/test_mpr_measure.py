"""Measurements and thick slabs in reformatted planes, headless, on a volume built the way the
viewer builds it (``volume_from_frames`` over the frames of a synthetic, anisotropic series)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from core.imaging.model import Frame, Series
from core.viewer.measure import Measurement, MeasurePlane, Point, length, roi_stats
from core.viewer.mpr import MprView
from core.viewer.reformat import Slab, Volume, volume_from_frames
from tests.viewer.synthetic import stack

ROW_MM, COL_MM, SLICE_MM = 0.9, 0.7, 2.5  # spacing along y, x and z: three different ones
ROWS, COLS, COUNT = 80, 96, 40
START = (-33.6, -36.0, 0.0)  # the volume spans x -33.6..33.6, y -36..36, z 0..100
CENTRE = np.array([2.0, -3.0, 48.0])
RADIUS = 17.0


def sphere_series(uid: str) -> tuple[Series, list[Frame]]:
    """A sphere from each slice's own geometry: 500 on its surface, rising 100 per mm inwards
    (to 1000) and falling outwards (to 0), so trilinear sampling keeps the surface in place."""
    series = stack(
        uid, COUNT, SLICE_MM, start=START, size=(ROWS, COLS), pixel_spacing=(ROW_MM, COL_MM)
    )
    frames = []
    for inst in series.instances:
        assert inst.image_position is not None
        x0, y0, z = inst.image_position
        x = x0 + COL_MM * np.arange(COLS)
        y = y0 + ROW_MM * np.arange(ROWS)
        d = np.sqrt(
            (x[None, :] - CENTRE[0]) ** 2 + (y[:, None] - CENTRE[1]) ** 2 + (z - CENTRE[2]) ** 2
        )
        values = np.clip(500.0 + (RADIUS - d) * 100.0, 0.0, 1000.0).astype(np.float32)
        frames.append(Frame(values, value_range=(0.0, 1000.0), pixel_spacing=(ROW_MM, COL_MM)))
    return series, frames


@pytest.fixture(scope="module")
def sphere() -> Volume:
    from core.imaging.volume import slice_refs

    series, frames = sphere_series("3.1")
    return volume_from_frames(series, slice_refs(series), list(frames))


def crossings(profile: npt.NDArray[np.float32], level: float = 500.0) -> tuple[float, float]:
    """Image coordinates (pixel centres at +0.5) where a profile first and last crosses
    ``level``, linearly interpolated between the pixels either side."""
    above = np.nonzero(profile >= level)[0]
    i, j = int(above[0]), int(above[-1])
    a = i - 1 + (level - profile[i - 1]) / (profile[i] - profile[i - 1])
    b = j + (profile[j] - level) / (profile[j] - profile[j + 1])
    return float(a) + 0.5, float(b) + 0.5


@pytest.mark.parametrize(
    ("name", "across_mm"),
    [("coronal", COL_MM), ("sagittal", ROW_MM)],
)
def test_a_spheres_diameter_measures_true_in_mm(
    sphere: Volume, name: str, across_mm: float
) -> None:
    view = MprView(sphere, name)  # type: ignore[arg-type]
    view.goto(CENTRE)
    plane = view.plane()
    image = view.frame().values
    row, col, off = plane.to_pixel(CENTRE)
    r, c = round(row), round(col)
    # the plane is within half a step of the centre: the circle cut is the sphere's diameter
    # up to that offset (at most 0.07 mm here); compare with the chord it cuts
    chord = 2 * np.sqrt(RADIUS**2 - off**2 - ((row - r) * plane.pixel_size) ** 2)
    where = MeasurePlane.of(plane, name)
    # horizontal: along x (coronal) or y (sagittal); vertical: along z (2.5 mm slices)
    a, b = crossings(image[r, :])
    horizontal = Measurement("length", view.index, (a, r + 0.5), (b, r + 0.5), where)
    a, b = crossings(image[:, c])
    vertical = Measurement("length", view.index, (c + 0.5, a), (c + 0.5, b), where)
    for m, voxel in ((horizontal, across_mm), (vertical, SLICE_MM)):
        measured = length(m.p0, m.p1, plane)
        assert measured.unit == "mm"
        assert abs(measured.value - chord) <= voxel / 2, (name, measured, chord)
        assert abs(measured.value - 2 * RADIUS) <= voxel / 2
        # the end points, turned into patient mm through the recorded plane, lie on the sphere
        for p in (m.p0, m.p1):
            assert m.plane is not None
            d = float(np.linalg.norm(m.plane.to_patient(p) - CENTRE))
            assert abs(d - RADIUS) <= voxel / 2
    # the recorded plane is this one, not its neighbour, not another orientation
    assert where.shows(plane)
    assert not where.shows(view.reformat.plane(view.index + 1))
    other = MprView(sphere, "sagittal" if name == "coronal" else "coronal")
    other.goto(CENTRE)
    assert not where.shows(other.plane())


def test_an_roi_in_a_reformat_is_in_modality_units_and_mm2(sphere: Volume) -> None:
    view = MprView(sphere, "sagittal")
    view.goto(CENTRE)
    plane = view.plane()
    image = view.frame().values
    row, col, _ = plane.to_pixel(CENTRE)
    # 8 mm square inside the sphere's flat core (values 1000 from 5 mm inside the surface)
    half = 4.0 / plane.pixel_size
    p0: Point = (col + 0.5 - half, row + 0.5 - half)
    p1: Point = (col + 0.5 + half, row + 0.5 + half)
    stats = roi_stats(image, p0, p1, plane, "HU")
    assert stats is not None
    assert stats.mean == pytest.approx(1000.0)
    assert stats.sd == pytest.approx(0.0, abs=1e-3)
    assert stats.area == pytest.approx(stats.pixels * plane.pixel_size**2)
    assert stats.area == pytest.approx(64.0, rel=0.1)
    # across the surface: the statistics are those of the image's pixels there
    q0: Point = (col + 0.5, row + 0.5)
    q1: Point = (col + 0.5 + 30 / plane.pixel_size, row + 0.5 + 6)
    edge = roi_stats(image, q0, q1, plane, "HU")
    assert edge is not None
    region = image[
        round(row) + 1 : round(row) + 7, round(col) + 1 : round(col + 30 / plane.pixel_size) + 1
    ]
    assert edge.pixels == region.size
    assert edge.mean == pytest.approx(float(region.mean()), rel=1e-5)
    assert edge.minimum == pytest.approx(0.0)
    assert edge.maximum == pytest.approx(1000.0)


def point_volume() -> tuple[Volume, npt.NDArray[np.float64]]:
    """Soft tissue (40) with one bright voxel (1000); returns it and the voxel's position."""
    from core.imaging.volume import slice_refs

    series = stack(
        "3.2", COUNT, SLICE_MM, start=START, size=(ROWS, COLS), pixel_spacing=(ROW_MM, COL_MM)
    )
    frames = [
        Frame(np.full((ROWS, COLS), 40.0, dtype=np.float32), value_range=(40.0, 40.0))
        for _ in range(COUNT)
    ]
    frames[17].values[30, 50] = 1000.0
    frames[17].value_range = (40.0, 1000.0)
    volume = volume_from_frames(series, slice_refs(series), frames)
    return volume, np.asarray(volume.geometry.to_patient((17.0, 30.0, 50.0)), dtype=np.float64)


@pytest.mark.parametrize("name", ["axial", "coronal", "sagittal", "oblique"])
def test_a_mip_of_a_bright_point_is_at_least_as_bright_as_any_slice(name: str) -> None:
    volume, point = point_volume()
    view = MprView(volume, "coronal" if name == "oblique" else name)  # type: ignore[arg-type]
    if name == "oblique":
        view.goto(point)
        view.rotate(view.plane().v, 20.0)  # tilted about the vertical axis
        view.rotate(view.plane().u, -10.0)
    view.goto(point)
    reformat = view.reformat
    through = view.index
    thickness = 10.0
    half = int(np.floor(thickness / 2 / reformat.step + 1e-6))
    assert half >= 1
    singles = [reformat.image(j) for j in range(through - half, through + half + 1)]
    # at the slab's edge the single plane misses the point's peak; the slab reaches back to it
    view.set_index(through + half)
    alone = float(view.frame().values.max())
    view.set_slab(Slab("mip", thickness))
    assert float(view.frame().values.max()) >= float(reformat.image(through).max()) - 1e-3
    assert float(view.frame().values.max()) >= alone
    if name != "oblique":
        assert alone < 100.0  # 2.5 mm and more from the voxel: nothing of it
    view.set_index(through)
    mip = view.frame().values
    for s in singles:
        assert np.all(mip >= s - 1e-4)
    assert mip.max() == pytest.approx(max(float(s.max()) for s in singles), rel=1e-5)
    # the point shows (an oblique grid samples it between voxel centres: less of its peak)
    assert mip.max() > (500.0 if name != "oblique" else 150.0)
    view.set_slab(Slab("minip", thickness))
    assert np.all(view.frame().values <= np.minimum.reduce(singles) + 1e-4)
    view.set_slab(Slab("avg", thickness))
    avg = view.frame().values
    assert np.allclose(avg, np.mean(singles, axis=0), atol=1e-3)
