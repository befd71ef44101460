"""Reformat geometry of awkward series, from their slice headers to the reformatted image:
irregular spacing is resampled by the real slice positions (a sphere stays round), missing and
misplaced slices are refused naming the series and where, a tilted gantry is drawn through the
sheared affine, a localizer mixed into a real CT series is left out and named."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pydicom
import pytest
from pydicom.uid import generate_uid

from core.imaging.geometry import GeometryError, VolumeGeometry, plan_volume
from core.imaging.index import build_index
from core.imaging.model import Frame, Series
from core.imaging.volume import iter_load, slice_refs
from core.viewer.reformat import Reformat, Volume, load_series_volume, volume_from_frames
from tests.viewer.synthetic import at_positions, sphere_frames

SIZE = (96, 96)
PIXEL = 0.8  # mm; the image spans 76.8 mm
START = (-38.0, -38.0)
RADIUS = 25.0
CENTRE = np.array([START[0] + 47.5 * PIXEL, START[1] + 47.5 * PIXEL, 50.0])
COL_DIR = np.array([0.0, 1.0, 0.0])  # axial slices: rows run along +y
FINE, COARSE = 2.5, 5.0
# "within half a voxel": half the smallest voxel edge (the in-plane pixel, also the reformat's
# pixel). The sphere's edge is a 6 mm linear ramp (``sphere_frames``), so linear interpolation
# between slices up to 5 mm apart finds the surface; a sharp edge sampled 5 mm apart could not.
TOLERANCE = PIXEL / 2


def two_spacings(fine_to: float = 50.0, top: float = 150.0) -> list[float]:
    """Slice z: 2.5 mm apart up to ``fine_to``, then 5 mm apart (the table spacing changed)."""
    fine = np.arange(0.0, fine_to + 1e-9, FINE)
    coarse = np.arange(fine_to + COARSE, top + 1e-9, COARSE)
    return [float(z) for z in np.concatenate((fine, coarse))]


def positions(zs: Sequence[float], tilt_degrees: float = 0.0) -> list[tuple[float, float, float]]:
    """Axial slices at ``zs``; a tilted gantry slides each slice along y by z * tan(tilt)."""
    shift = math.tan(math.radians(tilt_degrees))
    return [(START[0], START[1] + (z - zs[0]) * shift, z) for z in zs]


def series_of(zs: Sequence[float], tilt_degrees: float = 0.0, uid: str = "1.2.826.0.9.1") -> Series:
    return at_positions(uid, positions(zs, tilt_degrees), size=SIZE, pixel_spacing=(PIXEL, PIXEL))


def crossing(profile: npt.NDArray[np.float32], level: float = 500.0) -> tuple[float, float]:
    """Sub-pixel positions where the profile first rises above and last falls below ``level``."""
    inside = np.nonzero(profile >= level)[0]
    assert inside.size, "the sphere is not in this profile"
    i0, i1 = int(inside[0]), int(inside[-1])
    assert i0 > 0, "the sphere reaches the image's edge"
    assert i1 < len(profile) - 1, "the sphere reaches the image's edge"
    left = i0 - 1 + (level - profile[i0 - 1]) / (profile[i0] - profile[i0 - 1])
    right = i1 + (profile[i1] - level) / (profile[i1] - profile[i1 + 1])
    return float(left), float(right)


def chord_errors(reformat: Reformat, centre: npt.NDArray[np.float64]) -> tuple[float, float]:
    """(across, down) error in mm of the sphere's chords through the pixel nearest ``centre``
    against the true chords of those lines (2 sqrt(R^2 - d^2), d their distance from it)."""
    index = reformat.index_of(centre)
    plane = reformat.plane(index)
    row_f, col_f, _ = plane.to_pixel(centre)
    row, col = round(row_f), round(col_f)
    image = reformat.image(index)
    px = reformat.pixel_size
    errors = []
    for profile, start, direction in (
        (image[row, :], plane.to_patient(row, 0), plane.u),
        (image[:, col], plane.to_patient(0, col), plane.v),
    ):
        left, right = crossing(profile)
        rel = centre - start
        d = float(np.linalg.norm(rel - (rel @ direction) * direction))
        errors.append((right - left) * px - 2 * math.sqrt(RADIUS**2 - d**2))
    return errors[0], errors[1]


def reformats(volume: Volume, centre: npt.NDArray[np.float64]) -> dict[str, Reformat]:
    a, b = math.radians(35), math.radians(25)
    u = np.array([math.cos(a), math.sin(a) * math.cos(b), math.sin(a) * math.sin(b)])
    v = np.cross(u, [0.0, 1.0, 0.0])
    out = {n: Reformat(volume, n) for n in ("axial", "coronal", "sagittal")}
    out["oblique"] = Reformat.oblique(volume, centre, u, v / np.linalg.norm(v))
    return out


@pytest.mark.parametrize("tilt", [0.0, 15.0], ids=["straight", "tilted-15deg"])
def test_a_sphere_across_two_slice_spacings_stays_round_in_every_plane(tilt: float) -> None:
    """Half the sphere lies in the 2.5 mm part, half in the 5 mm part."""
    zs = two_spacings()
    series = series_of(zs, tilt)
    centre = CENTRE + np.array([0.0, (CENTRE[2] - zs[0]) * math.tan(math.radians(tilt)), 0.0])
    frames = sphere_frames(series, centre, RADIUS)
    volume = volume_from_frames(series, slice_refs(series), frames)
    g = volume.geometry
    assert g.shape == (61, *SIZE)  # 150 mm at 2.5 mm: the finer spacing kept
    assert g.slice_spacing == pytest.approx(FINE)
    assert g.tilt_degrees == pytest.approx(tilt, abs=0.01)
    assert any("resampled" in n and "41 slices to 61" in n for n in volume.notes)
    for name, reformat in reformats(volume, centre).items():
        across, down = chord_errors(reformat, centre)
        assert abs(across) <= TOLERANCE, (name, across, down)
        assert abs(down) <= TOLERANCE, (name, across, down)


def test_stacked_as_if_regular_the_same_slices_are_drawn_out_of_round() -> None:
    """The control: the old assumption (one spacing, the median) squashes the sphere, so the
    test above can fail."""
    zs = two_spacings()
    series = series_of(zs)
    frames = sphere_frames(series, CENTRE, RADIUS)
    values = np.stack([f.values for f in frames if f is not None])
    naive = VolumeGeometry(
        shape=values.shape,
        origin=np.array(positions(zs)[0]),
        row_dir=np.array([1.0, 0.0, 0.0]),
        col_dir=COL_DIR,
        step=np.array([0.0, 0.0, float(np.median(np.diff(zs)))]),
        pixel_spacing=(PIXEL, PIXEL),
    )
    volume = Volume(values, naive)
    on_screen = naive.to_patient((zs.index(CENTRE[2]), 47.5, 47.5))  # where it is drawn
    _, down = chord_errors(Reformat(volume, "coronal"), on_screen)
    assert abs(down) > 10 * TOLERANCE


def test_voxel_slices_on_acquired_slices_are_those_slices_and_between_them_a_blend() -> None:
    zs = two_spacings()
    series = series_of(zs)
    frames = sphere_frames(series, CENTRE, RADIUS)
    acquired = [f.values.copy() for f in frames if f is not None]
    volume = volume_from_frames(series, slice_refs(series), frames)
    g = volume.geometry
    for k, z in enumerate(zs):
        j = round((z - zs[0]) / FINE)
        assert g.to_patient((j, 0, 0))[2] == pytest.approx(z)
        np.testing.assert_array_equal(volume.values[j], acquired[k])
    # z = 57.5 lies halfway between the acquired 55 and 60
    j = round((57.5 - zs[0]) / FINE)
    k = zs.index(55.0)
    np.testing.assert_allclose(
        volume.values[j], (acquired[k] + acquired[k + 1]) / 2, rtol=1e-6, atol=1e-3
    )
    assert volume.background == pytest.approx(float(volume.values.min()))
    # every acquired slice is on the 2.5 mm grid: the viewer's frames became views of the
    # volume, so the series is in memory once, as a plain stack would be
    for frame in frames:
        assert frame is not None
        assert np.shares_memory(frame.values, volume.values)


def test_a_transition_gap_between_two_spacings_is_accepted() -> None:
    """2.5 mm, one 3.75 mm gap, then 5 mm: a real change of table speed, resampled."""
    zs = [*np.arange(0.0, 20.1, FINE), *np.arange(23.75, 60.0, COARSE)]
    series = series_of(zs)
    plan = plan_volume(slice_refs(series))
    assert plan.resampled
    last = plan.geometry.to_patient((plan.geometry.shape[0] - 1, 0, 0))
    assert last[2] == pytest.approx(zs[-1])
    frames = sphere_frames(series, CENTRE, RADIUS)
    volume = volume_from_frames(series, slice_refs(series), frames)
    shared = [f is not None and np.shares_memory(f.values, volume.values) for f in frames]
    # the grid runs from z = 0 to 58.75 in 24 steps of 2.448 mm (the finest spacing, adjusted
    # to end on the last slice): only the first and the last slice lie on it; the others keep
    # their own arrays beside the volume
    assert plan.geometry.slice_spacing == pytest.approx(58.75 / 24)
    assert shared == [k in (0, len(zs) - 1) for k in range(len(zs))]


@pytest.mark.parametrize(
    ("zs", "expected"),
    [
        (
            [*np.arange(0.0, 20.1, FINE), *np.arange(27.5, 60.0, FINE)],  # 2 slices of 2.5 lost
            "2 slice(s) missing: a gap of 7.50 mm after slice 8 where the others are 2.50 mm "
            "(between slice positions 20.00 and 27.50 mm along the normal)",
        ),
        (
            [*np.arange(0.0, 20.1, FINE), *np.arange(30.0, 71.0, COARSE)],  # 10 mm, then 5 mm
            "1 slice(s) missing: a gap of 10.00 mm after slice 8 where the others are 5.00 mm "
            "(between slice positions 20.00 and 30.00 mm along the normal)",
        ),
    ],
    ids=["gap-in-one-spacing", "gap-between-two-spacings"],
)
def test_a_gap_is_refused_naming_the_series_and_its_positions(
    zs: list[float], expected: str
) -> None:
    series = series_of(zs, uid="1.2.826.0.9.77")
    frames = sphere_frames(series, CENTRE, RADIUS)
    with pytest.raises(GeometryError) as info:
        volume_from_frames(series, slice_refs(series), frames)
    message = str(info.value)
    assert message.startswith("series '1.2.826.0.9.77' cannot be reformatted: ")
    assert expected in message


def test_a_slice_out_of_place_is_refused_not_resampled() -> None:
    """One slice moved 1 mm up: a 3.5 then a 1.5 mm gap in a 2.5 mm series."""
    zs = [float(z) for z in np.arange(0.0, 40.1, FINE)]
    zs[6] += 1.0
    with pytest.raises(GeometryError, match=r"irregular slice spacing: gaps from 1\.50 to 3\.50"):
        plan_volume(slice_refs(series_of(zs)))


@pytest.mark.parametrize("tilt", [12.0, 25.0])
def test_a_tilted_regular_series_keeps_the_sphere_round(tilt: float) -> None:
    """Gantry tilt: slices along z 2.5 mm apart, each sliding along y; the affine is sheared and
    every plane samples the voxels where they were."""
    zs = [float(z) for z in np.arange(0.0, 100.1, FINE)]
    series = series_of(zs, tilt)
    shift = math.tan(math.radians(tilt))
    centre = CENTRE + np.array([0.0, (CENTRE[2] - zs[0]) * shift, 0.0])
    volume = volume_from_frames(series, slice_refs(series), sphere_frames(series, centre, RADIUS))
    g = volume.geometry
    assert g.shape[0] == len(zs)  # not resampled: a plain stack with a sheared affine
    assert g.tilt_degrees == pytest.approx(tilt, abs=0.01)
    assert g.step == pytest.approx([0.0, FINE * shift, FINE])
    for name, reformat in reformats(volume, centre).items():
        across, down = chord_errors(reformat, centre)
        assert abs(across) <= TOLERANCE, (name, across, down)
        assert abs(down) <= TOLERANCE, (name, across, down)


def test_a_varying_tilt_is_refused() -> None:
    zs = [float(z) for z in np.arange(0.0, 40.1, FINE)]
    bent = [(x, y + (0.02 * (z - 20.0) ** 2), z) for x, y, z in positions(zs)]
    series = at_positions("1.2.826.0.9.5", bent, size=SIZE, pixel_spacing=(PIXEL, PIXEL))
    with pytest.raises(GeometryError, match=r"'1\.2\.826\.0\.9\.5'.*not lie on one straight"):
        plan_volume(slice_refs(series))


# --- a localizer in a real CT series ------------------------------------------------------
CT = ("pyvista__vtk-data", "Data", "DICOM_Stack")


def ct_copy(dicom_data: Path, dest: Path, localizer_type: str | None) -> Path:
    """Slices 40..51 of the shared CT, plus (when ``localizer_type`` is given) a coronal image
    of another size with that ImageType value 3, as a scout mixed into the series."""
    source = dicom_data.joinpath(*CT)
    if not source.is_dir():
        pytest.skip(f"the shared 134-slice CT is not at '{source}'")
    files = sorted(
        source.glob("*.dcm"), key=lambda p: float(pydicom.dcmread(p).ImagePositionPatient[2])
    )
    dest.mkdir()
    for path in files[40:52]:
        pydicom.dcmread(path).save_as(dest / path.name)
    if localizer_type is not None:
        ds = pydicom.dcmread(files[45])
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.InstanceNumber = 1
        ds.ImageType = ["ORIGINAL", "PRIMARY", localizer_type]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 0, -1]
        x, y, z = (float(v) for v in ds.ImagePositionPatient)
        ds.ImagePositionPatient = [x, y + 100.0, z + 20.0]
        pixels = ds.pixel_array[:256, :]
        ds.Rows = 256
        ds.PixelData = pixels.tobytes()
        ds.save_as(dest / "scout.dcm")
    return dest


def only_series(path: Path) -> Series:
    ((_, _, series),) = build_index([path]).iter_series()
    return series


def test_a_localizer_is_left_out_and_named(dicom_data: Path, tmp_path: Path) -> None:
    series = only_series(ct_copy(dicom_data, tmp_path / "with-scout", "LOCALIZER"))
    assert len(series.instances) == 13
    clean = load_series_volume(only_series(ct_copy(dicom_data, tmp_path / "clean", None)))
    volume = load_series_volume(series)
    assert volume.geometry.shape == (12, 512, 512)
    assert volume.notes == (
        "1 localizer image(s) left out of the volume (instance number 1): ImageType LOCALIZER, "
        "another orientation or size than the series' slices",
    )
    np.testing.assert_array_equal(volume.values, clean.values)
    assert volume.geometry.affine == pytest.approx(clean.geometry.affine)
    # the viewer's path: its decoded frames (the scout among them) stacked without the scout
    refs = slice_refs(series)
    frames: list[Frame | None] = [None] * len(refs)
    for i, frame in iter_load(series):
        frames[i] = frame
    from_frames = volume_from_frames(series, refs, frames)
    np.testing.assert_array_equal(from_frames.values, clean.values)
    assert from_frames.notes == volume.notes
    assert Reformat(from_frames, "coronal").image().shape[1] == 512


def test_another_orientation_that_is_no_localizer_stays_refused(
    dicom_data: Path, tmp_path: Path
) -> None:
    series = only_series(ct_copy(dicom_data, tmp_path / "odd", "AXIAL"))
    with pytest.raises(GeometryError) as info:
        load_series_volume(series)
    assert series.series_instance_uid in str(info.value)
    assert "different image sizes" in str(info.value)
    assert (
        "1 image(s) unlike the others (instance number 1) are not marked LOCALIZER in their "
        "ImageType, so they are not left out" in str(info.value)
    )


def test_a_real_ct_whose_spacing_changes_is_resampled_and_rendered(
    dicom_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Real files: the shared CT's 3 mm slices 40..51, then every other one (6 mm) up to 62, as
    a reconstruction whose interval changes. The volume is on a 3 mm grid; where a voxel slice
    lies on an acquired slice it is that slice, between two 6 mm slices it is their mean; the
    CLI draws the coronal with the physical height."""
    import cli

    source = dicom_data.joinpath(*CT)
    if not source.is_dir():
        pytest.skip(f"the shared 134-slice CT is not at '{source}'")
    files = sorted(
        source.glob("*.dcm"), key=lambda p: float(pydicom.dcmread(p).ImagePositionPatient[2])
    )[40:63]
    dest = tmp_path / "two-spacings"
    dest.mkdir()
    kept = [p for k, p in enumerate(files) if k < 12 or k % 2 == 0]
    for path in kept:
        pydicom.dcmread(path).save_as(dest / path.name)
    series = only_series(dest)
    assert len(series.instances) == len(kept) == 18
    volume = load_series_volume(series)
    assert volume.geometry.shape == (23, 512, 512)  # 66 mm on a 3 mm grid
    assert volume.geometry.slice_spacing == pytest.approx(3.0, abs=0.01)
    assert "resampled" in volume.notes[0]
    clean = load_series_volume(only_series(copy_all(files, tmp_path / "all")))
    for k in range(23):
        if k < 12 or k % 2 == 0:  # an acquired slice
            np.testing.assert_array_equal(volume.values[k], clean.values[k])
        else:  # halfway between two acquired 6 mm neighbours
            mean = (clean.values[k - 1] + clean.values[k + 1]) / 2
            np.testing.assert_allclose(volume.values[k], mean, atol=1e-3)
    out = tmp_path / "coronal.png"
    assert cli.main(["render", str(dest), "--plane", "coronal", "--out", str(out)]) == 0
    said = capsys.readouterr().out
    assert "note: " in said  # the resampling is said, never silent
    assert "resampled" in said
    from PIL import Image

    height, width = np.asarray(Image.open(out)).shape
    pixel = min(volume.geometry.pixel_spacing)
    assert height == round(23 * 3.0 / pixel)
    assert width == 512


def copy_all(files: Sequence[Path], dest: Path) -> Path:
    dest.mkdir()
    for path in files:
        pydicom.dcmread(path).save_as(dest / path.name)
    return dest
