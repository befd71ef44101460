"""``doctorai render PATH --plane ...`` on the shared CT and on broken copies of it.

The broken series are real files: a few slices of the shared CT copied with pydicom and edited
(a slice deleted, a position moved, a tilted gantry), so the refusals are met as a user would.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image

import cli
from core.imaging.display import render
from core.imaging.index import build_index
from core.imaging.model import Series
from core.viewer.reformat import Reformat, load_series_volume, parse_slab

CT = ("pyvista__vtk-data", "Data", "DICOM_Stack")


@pytest.fixture
def ct_series_dir(dicom_data: Path) -> Path:
    path = dicom_data.joinpath(*CT)
    if not path.is_dir():
        pytest.skip(f"the shared 134-slice CT is not at '{path}'")
    return path


def only_series(path: Path) -> Series:
    ((_, _, series),) = build_index([path]).iter_series()
    return series


def expected_image(
    path: Path,
    plane: str,
    index: int | None = None,
    slab: str | None = None,
    window: tuple[float, float] | None = None,
) -> np.ndarray:
    """What the viewer's core pipeline paints for that plane (independent of the CLI code)."""
    reformat = Reformat(load_series_volume(only_series(path)), plane)  # type: ignore[arg-type]
    frame = reformat.frame(index, parse_slab(slab) if slab else None)
    return render(frame, window=window)


def test_coronal_png_has_the_physical_aspect_and_is_what_the_viewer_shows(
    ct_series_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "coronal.png"
    assert cli.main(["render", str(ct_series_dir), "--plane", "coronal", "--out", str(out)]) == 0
    assert "coronal 256 of 512" in capsys.readouterr().out
    image = np.asarray(Image.open(out))
    height, width = image.shape
    first = pydicom.dcmread(ct_series_dir / "1-001.dcm", stop_before_pixels=True)
    row_mm = float(first.PixelSpacing[1]) * int(first.Columns)  # patient x: 512 x 1.074 mm
    positions = [
        float(pydicom.dcmread(p, stop_before_pixels=True).ImagePositionPatient[2])
        for p in sorted(ct_series_dir.glob("*.dcm"))
    ]
    gap = (max(positions) - min(positions)) / (len(positions) - 1)
    z_mm = max(positions) - min(positions) + gap  # 134 slices of 3 mm
    assert height / width == pytest.approx(z_mm / row_mm, abs=1.0 / width)
    np.testing.assert_array_equal(image, expected_image(ct_series_dir, "coronal"))


def test_index_slab_and_window(ct_series_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "sag.png"
    args = ["--plane", "sagittal", "--index", "200", "--slab", "mip:15", "--window", "300", "1500"]
    assert cli.main(["render", str(ct_series_dir), *args, "--out", str(out)]) == 0
    expected = expected_image(ct_series_dir, "sagittal", 200, "mip:15", (300.0, 1500.0))
    np.testing.assert_array_equal(np.asarray(Image.open(out)), expected)
    # the axial plane of an axial series is the acquired slice itself, at full resolution
    axial = tmp_path / "axial.png"
    assert cli.main(["render", str(ct_series_dir), "--plane", "axial", "--out", str(axial)]) == 0
    middle = only_series(ct_series_dir).instances[67].path  # the axial default: the middle
    assert cli.main(["render", middle, "--out", str(tmp_path / "s.png")]) == 0
    np.testing.assert_array_equal(
        np.asarray(Image.open(axial)), np.asarray(Image.open(tmp_path / "s.png"))
    )


def copy_slices(
    ct: Path, dest: Path, edit: Callable[[int, pydicom.Dataset], bool] | None = None
) -> Path:
    """Slices 40..63 of the CT into ``dest`` (sorted by position), ``edit``ed; a slice is left
    out where ``edit`` returns False."""
    dest.mkdir()
    files = sorted(
        ct.glob("*.dcm"), key=lambda p: float(pydicom.dcmread(p).ImagePositionPatient[2])
    )
    for k, path in enumerate(files[40:64]):
        ds = pydicom.dcmread(path)
        if edit is not None and edit(k, ds) is False:
            continue
        ds.save_as(dest / path.name)
    return dest


def refused(
    folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], plane: str = "coronal"
) -> str:
    out = tmp_path / "never.png"
    assert cli.main(["render", str(folder), "--plane", plane, "--out", str(out)]) == 1
    assert not out.exists()
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert only_series(folder).series_instance_uid in err  # names the series
    return err


def test_a_missing_slice_is_refused(
    ct_series_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = copy_slices(ct_series_dir, tmp_path / "missing", lambda k, ds: k != 10)
    err = refused(folder, tmp_path, capsys)
    assert "1 slice(s) missing: a gap of 6.00 mm after slice 9 where the others are 3.00 mm" in err


def test_irregular_spacing_is_refused(
    ct_series_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def move(k: int, ds: pydicom.Dataset) -> bool:
        if k == 12:
            x, y, z = ds.ImagePositionPatient
            ds.ImagePositionPatient = [x, y, float(z) + 1.2]
        return True

    err = refused(copy_slices(ct_series_dir, tmp_path / "irregular", move), tmp_path, capsys)
    assert "irregular slice spacing: gaps from 1.80 to 4.20 mm (usual 3.00 mm)" in err


def test_mixed_orientation_and_duplicate_positions_are_refused(
    ct_series_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def turn(k: int, ds: pydicom.Dataset) -> bool:
        if k == 5:
            ds.ImageOrientationPatient = [1, 0, 0, 0, 0, -1]
        return True

    err = refused(copy_slices(ct_series_dir, tmp_path / "turned", turn), tmp_path, capsys)
    assert "mixed orientations" in err

    def same(k: int, ds: pydicom.Dataset) -> bool:
        if k == 7:
            x, y, z = ds.ImagePositionPatient
            ds.ImagePositionPatient = [x, y, float(z) - 3.0]  # on top of slice 6
        return True

    err = refused(copy_slices(ct_series_dir, tmp_path / "same", same), tmp_path, capsys, "axial")
    assert "are at the same position" in err


def test_gantry_tilt_is_corrected_not_refused(
    ct_series_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A 12 degree tilt: each slice's position slides along y by 3 mm * tan(12 deg). The volume
    is drawn through the sheared affine (every slice where the scanner put it)."""
    shift = 3.0 * math.tan(math.radians(12))

    def tilt(k: int, ds: pydicom.Dataset) -> bool:
        x, y, z = ds.ImagePositionPatient
        ds.ImagePositionPatient = [x, float(y) + k * shift, z]
        ds.GantryDetectorTilt = 12
        return True

    folder = copy_slices(ct_series_dir, tmp_path / "tilted", tilt)
    out = tmp_path / "tilted.png"
    assert cli.main(["render", str(folder), "--plane", "sagittal", "--out", str(out)]) == 0
    assert "gantry tilt 12.0 deg corrected" in capsys.readouterr().out
    volume = load_series_volume(only_series(folder))
    g = volume.geometry
    for k, inst in enumerate(only_series(folder).instances):
        assert g.to_patient((k, 0, 0)) == pytest.approx(inst.image_position, abs=0.01)
    # the sagittal plane shows slice k's voxel (r, c) at its tilted patient position
    sagittal = Reformat(volume, "sagittal")
    point = g.to_patient((12, 200, 256))
    plane = sagittal.plane(sagittal.index_of(point))
    row, col, distance = plane.to_pixel(point)
    assert abs(distance) <= sagittal.step / 2
    value = sagittal.image(sagittal.index_of(point))[round(row), round(col)]
    neighbourhood = volume.values[11:14, 199:202, 255:258]
    assert neighbourhood.min() - 1 <= value <= neighbourhood.max() + 1


def test_bad_options_are_said_before_any_work(
    ct_series_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = str(tmp_path / "x.png")
    path = str(ct_series_dir)
    cases = {
        ("--index", "3"): "--index need(s) --plane",
        ("--plane", "coronal", "--slab", "max:3"): "slab kind 'max' is not one of mip, minip, avg",
        ("--plane", "coronal", "--slab", "mip"): "needs a thickness",
        ("--plane", "coronal", "--frame", "2"): "with --plane use --index",
        ("--plane", "axial", "--index", "134"): "outside this series' axial planes 0..133",
        ("--plane", "axial", "--series", "1.2.3"): "no series '1.2.3' with images",
    }
    for options, message in cases.items():
        assert cli.main(["render", path, *options, "--out", out]) in (1, 2), options
        assert message in capsys.readouterr().err, options
    assert not Path(out).exists()


def test_a_reformat_export_is_audited(
    ct_series_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from core.audit.log import AuditLog
    from core.audit.vocabulary import EventType
    from core.store.database import open_database

    out = tmp_path / "cor.png"
    assert cli.main(["render", str(ct_series_dir), "--plane", "coronal", "--out", str(out)]) == 0
    capsys.readouterr()
    db = open_database()
    try:
        (export,) = list(AuditLog(db).iter_events())
    finally:
        db.close()
    assert export.event_type == EventType.EXPORT
    assert export.details["plane"] == "coronal"
    ids = {o["id"] for o in export.objects}
    assert str(out.resolve()) in ids
    assert {i.sop_instance_uid for i in only_series(ct_series_dir).instances} <= ids


def test_a_series_of_several_volumes_is_refused_by_name(
    dicom_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The enhanced Philips field map holds two 32-slice volumes at the same positions."""
    path = dicom_data / "neurolabusc__dcm_qa_enh/In/Philips/IM_0027_fMAP.dcm"
    out = tmp_path / "never.png"
    assert cli.main(["render", str(path), "--plane", "coronal", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "it holds 2 volumes at the same 32 positions" in err
    assert not out.exists()
