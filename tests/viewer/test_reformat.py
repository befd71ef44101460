"""Reformat geometry on synthetic volumes: shapes stay true in every plane, orientation follows
the radiological convention, slabs reach exactly as far as their thickness, pixels map to mm."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import pytest

from core.imaging.geometry import VolumeGeometry
from core.viewer.measure import length, roi_stats
from core.viewer.reformat import PlaneName, Reformat, Slab, Volume, parse_slab

SPACING = (2.5, 0.7, 0.7)  # (slice, row, col) mm: strongly anisotropic
SHAPE = (48, 160, 160)  # 120 x 112 x 112 mm
RADIUS = 30.0


def geometry(
    shape: tuple[int, int, int] = SHAPE,
    spacing: tuple[float, float, float] = SPACING,
    row_dir: tuple[float, float, float] = (1.0, 0.0, 0.0),
    col_dir: tuple[float, float, float] = (0.0, 1.0, 0.0),
    tilt_mm_per_slice: float = 0.0,
) -> VolumeGeometry:
    row, col = np.array(row_dir), np.array(col_dir)
    normal = np.cross(row, col)
    step = normal * spacing[0] + col * tilt_mm_per_slice
    return VolumeGeometry(
        shape=shape,
        origin=np.array([-40.0, 12.0, 300.0]),
        row_dir=row,
        col_dir=col,
        step=step,
        pixel_spacing=(spacing[1], spacing[2]),
    )


def patient_grid(g: VolumeGeometry) -> npt.NDArray[np.float64]:
    """(k, r, c, 3) patient coordinates of every voxel centre."""
    k, r, c = np.meshgrid(*(np.arange(n) for n in g.shape), indexing="ij")
    return g.to_patient(np.stack((k, r, c), axis=-1))


def sphere_volume(g: VolumeGeometry, center: npt.NDArray[np.float64]) -> Volume:
    inside = np.linalg.norm(patient_grid(g) - center, axis=-1) <= RADIUS
    return Volume(np.where(inside, 1000.0, 0.0).astype(np.float32), g, series_uid="1.2.3")


def extent_mm(profile: npt.NDArray[np.float32], pixel: float) -> float:
    return float(np.count_nonzero(profile >= 500.0)) * pixel


def through(reformat: Reformat, point: npt.NDArray[np.float64]) -> tuple[int, int, int]:
    """(plane index, row, col) of the pixel nearest ``point``."""
    index = reformat.index_of(point)
    row, col, _ = reformat.plane(index).to_pixel(point)
    return index, round(row), round(col)


def oblique_axes() -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    a, b = math.radians(30), math.radians(20)
    u = np.array([math.cos(a), math.sin(a) * math.cos(b), math.sin(a) * math.sin(b)])
    v = np.cross(u, np.array([0.0, 1.0, 0.0]))
    return u, v / np.linalg.norm(v)


@pytest.mark.parametrize("tilt", [0.0, 0.8], ids=["straight", "gantry-tilt"])
@pytest.mark.parametrize("name", ["axial", "coronal", "sagittal", "oblique"])
def test_a_sphere_stays_round_in_every_plane(name: str, tilt: float) -> None:
    g = geometry(tilt_mm_per_slice=tilt)
    center = g.center()
    volume = sphere_volume(g, center)
    if name == "oblique":
        u, v = oblique_axes()
        reformat = Reformat.oblique(volume, center, u, v)
    else:
        reformat = Reformat(volume, name)  # type: ignore[arg-type]
    index, row, col = through(reformat, center)
    image = reformat.image(index)
    px = reformat.pixel_size
    across, down = extent_mm(image[row, :], px), extent_mm(image[:, col], px)
    voxel = max(SPACING)
    assert abs(across - 2 * RADIUS) <= voxel, (across, down)
    assert abs(down - 2 * RADIUS) <= voxel, (across, down)
    assert abs(across - down) <= voxel
    assert reformat.plane(index).pixel_spacing == (px, px)  # square pixels


def test_the_image_covers_the_volume_with_its_physical_aspect() -> None:
    volume = sphere_volume(geometry(), geometry().center())
    coronal = Reformat(volume, "coronal")
    # coronal: width along x = 160 * 0.7 mm, height along z = 48 * 2.5 mm, square 0.7 mm pixels
    assert coronal.pixel_size == pytest.approx(0.7)
    assert coronal.cols == 160
    assert coronal.rows == round(48 * 2.5 / 0.7)
    assert coronal.count == 160  # one plane per voxel row
    axial = Reformat(volume, "axial")
    assert (axial.rows, axial.cols, axial.count) == (160, 160, 48)
    assert axial.step == pytest.approx(2.5)


@pytest.mark.parametrize("flipped", [False, True], ids=["LPS-stored", "stored-flipped"])
def test_orientation_head_up_and_patient_right_on_image_left(flipped: bool) -> None:
    """A marker at the patient's left, anterior and head shows up on the image's right (axial,
    coronal), top (coronal, sagittal: head; axial: anterior), and left on the sagittal."""
    dirs = ((-1.0, 0.0, 0.0), (0.0, -1.0, 0.0)) if flipped else ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0))
    g = geometry(row_dir=dirs[0], col_dir=dirs[1])
    center = g.center()
    marker = center + np.array([30.0, -30.0, 40.0])  # +x left, -y anterior, +z head
    near = np.linalg.norm(patient_grid(g) - marker, axis=-1) <= 6.0
    volume = Volume(np.where(near, 1000.0, 0.0).astype(np.float32), g)
    expect = {  # (marker on the right half?, marker in the top half?)
        "axial": (True, True),
        "coronal": (True, True),
        "sagittal": (False, True),
    }
    for name, (right, top) in expect.items():
        reformat = Reformat(volume, name)  # type: ignore[arg-type]
        image = reformat.image(reformat.index_of(marker))
        rows, cols = np.nonzero(image >= 500)
        assert rows.size, name
        assert bool(cols.mean() > image.shape[1] / 2) is right, name
        assert bool(rows.mean() < image.shape[0] / 2) is top, name


def test_pixels_map_to_patient_mm_and_back_in_an_oblique_plane() -> None:
    """A volume linear in patient x, y, z is reproduced exactly by trilinear sampling, so each
    pixel's value checks the pixel -> patient mapping independently of the sampler."""
    g = geometry(tilt_mm_per_slice=0.5)
    p = patient_grid(g)
    coeff = np.array([0.5, -0.25, 2.0])
    volume = Volume((p @ coeff).astype(np.float32), g)
    u, v = oblique_axes()
    reformat = Reformat.oblique(volume, g.center(), u, v, pixel_size=1.3)
    index = reformat.index_of(g.center())
    plane = reformat.plane(index)
    assert np.linalg.norm(plane.to_pixel(g.center())[2]) < reformat.step / 2
    image = reformat.image(index)
    rows, cols = np.meshgrid(
        np.arange(plane.rows // 3, 2 * plane.rows // 3, 7),
        np.arange(plane.cols // 3, 2 * plane.cols // 3, 7),
        indexing="ij",
    )
    expected = plane.to_patient(rows, cols) @ coeff
    np.testing.assert_allclose(image[rows, cols], expected, atol=1e-2)
    r, c, d = plane.to_pixel(plane.to_patient(12.25, 40.5))
    assert (r, c, d) == pytest.approx((12.25, 40.5, 0.0))
    assert g.to_index(g.to_patient((3.0, 4.0, 5.0))) == pytest.approx((3.0, 4.0, 5.0))


def test_measurements_in_a_reformat_are_in_mm() -> None:
    g = geometry()
    volume = sphere_volume(g, g.center())
    coronal = Reformat(volume, "coronal")
    index, row, col = through(coronal, g.center())
    image = coronal.image(index)
    plane = coronal.plane(index)
    # a vertical line through the sphere (along z, the 2.5 mm axis), edge to edge
    column = np.nonzero(image[:, col] >= 500)[0]
    top, bottom = (float(col), column[0] - 0.5), (float(col), column[-1] + 0.5)
    measured = length(top, bottom, plane)
    assert measured.unit == "mm"
    assert measured.value == pytest.approx(2 * RADIUS, abs=2.5)
    stats = roi_stats(image, (col - 5.0, row - 5.0), (col + 5.0, row + 5.0), plane, "HU")
    assert stats is not None
    assert stats.mean == pytest.approx(1000.0)
    assert stats.area == pytest.approx(100 * plane.pixel_size**2)
    assert stats.area_unit == "mm²"


@pytest.mark.parametrize("kind", ["mip", "minip", "avg"])
def test_a_slab_reaches_as_far_as_its_thickness_and_not_beyond(kind: str) -> None:
    g = geometry()
    values = np.full(SHAPE, 100.0, dtype=np.float32)
    point = (20, 80, 80)
    values[point] = 1000.0 if kind != "minip" else -500.0
    volume = Volume(values, g)
    axial = Reformat(volume, "axial")
    slab = Slab(kind, 10.0)  # type: ignore[arg-type]  # 10 mm = the point +-2 slices of 2.5 mm
    assert len(axial.slab_offsets(slab)) == 5
    for index in range(14, 27):
        seen = float(axial.image(index, slab)[80, 80])
        if abs(index - point[0]) <= 2:
            expected = {"mip": 1000.0, "minip": -500.0, "avg": (1000.0 + 4 * 100.0) / 5}[kind]
        else:
            expected = 100.0
        assert seen == pytest.approx(expected), index


def test_one_volume_in_memory_and_a_bounded_cache() -> None:
    g = geometry()
    values = np.zeros(SHAPE, dtype=np.float32)
    volume = Volume(values, g)
    names: tuple[PlaneName, ...] = ("axial", "coronal", "sagittal")
    planes = [Reformat(volume, n, cache_size=4) for n in names]
    for reformat in planes:
        assert np.shares_memory(reformat.volume.values, values)
        for i in range(10):
            reformat.image(i)
        assert len(reformat._cache.items) == 4
    assert not volume.values.flags.writeable  # nobody paints into the shared voxels
    assert values.flags.writeable  # the caller's own array is left as it was


def test_bad_planes_and_slabs_are_said() -> None:
    volume = Volume(np.zeros(SHAPE, dtype=np.float32), geometry())
    with pytest.raises(ValueError, match="perpendicular"):
        Reformat.oblique(volume, (0, 0, 0), (1, 0, 0), (1, 1, 0))
    with pytest.raises(ValueError, match="no direction"):
        Reformat.oblique(volume, (0, 0, 0), (0, 0, 0), (0, 1, 0))
    with pytest.raises(IndexError, match=r"axial index 48 outside 0\.\.47"):
        Reformat(volume, "axial").image(48)
    with pytest.raises(ValueError, match="not one of mip, minip, avg"):
        parse_slab("max:10")
    with pytest.raises(ValueError, match="needs a thickness"):
        parse_slab("mip")
    with pytest.raises(ValueError, match="positive"):
        parse_slab("avg:-2")
    assert parse_slab("MIP:7.5") == Slab("mip", 7.5)
    with pytest.raises(ValueError, match="does not match its geometry"):
        Volume(np.zeros((3, 3, 3), dtype=np.float32), geometry())


def test_the_image_cache_is_bounded_in_bytes_too() -> None:
    """Four MPR viewports of a 400-slice CT must stay near one volume (issue 16: <= 1.2x): a
    reformat caches at most ``cache_bytes`` of images, the newest always."""
    volume = Volume(np.zeros(SHAPE, dtype=np.float32), geometry())
    coronal = Reformat(volume, "coronal", cache_bytes=300_000)
    one = coronal.image(0).nbytes  # 160 x 171 float32: 109 KiB
    for i in range(6):
        coronal.image(i)
    assert len(coronal._cache.items) == 300_000 // one == 2
    assert list(coronal._cache.items)[-1] == (5, None)
    tiny = Reformat(volume, "sagittal", cache_bytes=1)
    tiny.image(3)
    tiny.image(4)
    assert list(tiny._cache.items) == [(4, None)]  # never less than the image shown
    big = Volume(np.zeros((400, 64, 64), dtype=np.float32), geometry(shape=(400, 64, 64)))
    assert Reformat(big, "axial")._cache.max_bytes == 8 * 1024 * 1024  # the floor
