"""build_index on real files: geometry sorting, per-file errors, zip / folder / DICOMDIR, plain
images, absurd headers, incremental add."""

from __future__ import annotations

import shutil
import threading
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.fileset import FileSet

from core.imaging import sources
from core.imaging.index import add_paths, build_index, merge
from core.imaging.model import Instance, Series, StudyIndex
from core.imaging.pixels import PixelDecodeError, read_frame
from tests.imaging.refdata import CT_TS, PYDICOM_TF, WG04

BROKEN = {
    # file -> a word its reason must contain
    "pydicom__pydicom-data/data_store/data/emri_small_jpeg_2k_lossless_too_short.dcm": "truncated",
    f"{PYDICOM_TF}/MR_truncated.dcm": "truncated",
    "fo-dicom__fo-dicom/Tests/FO-DICOM.Tests/Test Data/"
    "GH177_D_CLUNIE_CT1_IVRLE_BigEndian_undefined_length.dcm": "DICOM",
    f"{WG04}/HTJ2K_08_RGB.dcm": "StudyInstanceUID",
}


def _only_series(index: StudyIndex) -> Series:
    all_series = [s for _, _, s in index.iter_series()]
    assert len(all_series) == 1
    return all_series[0]


def test_ct_stack_sorted_along_slice_normal(ct_stack: Path) -> None:
    index = build_index([ct_stack])
    series = _only_series(index)
    assert series.modality == "CT"
    assert len(series.instances) == 134
    # Independently: positions from pydicom, projected on the normal of the orientation.
    positions = []
    for inst in series.instances:
        ds = pydicom.dcmread(inst.path, stop_before_pixels=True)
        o = np.array(ds.ImageOrientationPatient, dtype=float)
        normal = np.cross(o[:3], o[3:])
        positions.append(float(np.dot(np.array(ds.ImagePositionPatient, dtype=float), normal)))
    assert positions == sorted(positions)
    assert len(set(positions)) == 134
    assert index.errors == []


def test_sort_falls_back_to_instance_number(ct_stack: Path, tmp_path: Path) -> None:
    for name in ("1-003.dcm", "1-001.dcm", "1-002.dcm"):
        ds = pydicom.dcmread(ct_stack / name)
        del ds.ImagePositionPatient
        ds.save_as(tmp_path / f"x{name}")
    series = _only_series(build_index([tmp_path]))
    assert [i.instance_number for i in series.instances] == [1, 2, 3]


def test_broken_files_reported_while_the_rest_loads(dicom_data: Path, tmp_path: Path) -> None:
    for rel in BROKEN:
        shutil.copy(dicom_data / rel, tmp_path / Path(rel).name)
    (tmp_path / "notes.bin").write_bytes(b"this is not a medical image at all" * 10)
    good = dicom_data / CT_TS / "CTImage.dcm"
    shutil.copy(good, tmp_path / "good.dcm")
    index = build_index([tmp_path, tmp_path / "missing.dcm"])
    reasons = {Path(e.path).name: e.reason for e in index.errors}
    for rel, word in BROKEN.items():
        assert word in reasons[Path(rel).name], reasons[Path(rel).name]
    assert "not a DICOM file" in reasons["notes.bin"]
    assert reasons["missing.dcm"] == "no such file or folder"
    assert len(index.errors) == len(BROKEN) + 2
    series = _only_series(index)
    assert [Path(i.path).name for i in series.instances] == ["good.dcm"]


def test_zip_folder_and_dicomdir(ct_stack: Path, tmp_path: Path) -> None:
    names = ["1-010.dcm", "1-011.dcm", "1-012.dcm"]
    archive = tmp_path / "study.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for n in names:
            zf.write(ct_stack / n, f"inner/{n}")
        zf.writestr("inner/readme.txt", "not an image")
    index = build_index([archive])
    series = _only_series(index)
    assert sorted(i.path for i in series.instances) == [f"{archive}::inner/{n}" for n in names]
    assert index.errors == []
    # zip members are read in memory and decode like files
    member = series.instances[0]
    name = member.path.rsplit("/", 1)[-1]
    direct = read_frame(_only_series(build_index([ct_stack / name])).instances[0])
    np.testing.assert_array_equal(read_frame(member).values, direct.values)
    assert sources.open_bytes(member.path) == (ct_stack / name).read_bytes()

    # A DICOMDIR built with pydicom's FileSet: its referenced files are found through it.
    fs = FileSet()
    for n in names:
        ds = pydicom.dcmread(ct_stack / n)
        ds.StudyID = ds.StudyID or "1"  # required by the default STUDY record (PS3.3 F.5)
        fs.add(ds)
    media = tmp_path / "media"
    fs.write(media)
    via_dicomdir = build_index([media / "DICOMDIR"])
    series = _only_series(via_dicomdir)
    assert len(series.instances) == 3
    assert via_dicomdir.errors == []
    # The same folder walked directly gives the same instances, not duplicates.
    walked = _only_series(build_index([media]))
    assert sorted(i.sop_instance_uid for i in walked.instances) == sorted(
        i.sop_instance_uid for i in series.instances
    )


def test_plain_png_is_its_own_study(tmp_path: Path, ct_stack: Path) -> None:
    gray = (np.arange(64 * 32) % 256).astype(np.uint8).reshape(64, 32)
    Image.fromarray(gray).save(tmp_path / "a.png")
    Image.fromarray(np.dstack([gray, gray, gray])).save(tmp_path / "b.jpg", quality=95)
    index = build_index([tmp_path / "a.png", tmp_path / "b.jpg", ct_stack / "1-001.dcm"])
    assert len(index.patients) == 3
    plain = [s for _, _, s in index.iter_series() if s.modality == "OT"]
    assert len(plain) == 2
    png = next(s for s in plain if s.description == "a.png").instances[0]
    assert png.is_plain_image
    assert (png.rows, png.columns) == (64, 32)
    frame = read_frame(png)
    np.testing.assert_array_equal(frame.values, gray.astype(np.float32))
    from core.imaging.display import render

    np.testing.assert_array_equal(render(frame), gray)  # 8-bit gray shows as stored
    jpg = next(s for s in plain if s.description == "b.jpg").instances[0]
    assert read_frame(jpg).is_color


def _absurd(tmp_path: Path, dicom_data: Path) -> Path:
    ds = pydicom.dcmread(dicom_data / CT_TS / "CTImage.dcm")
    ds.Rows = 65535
    ds.Columns = 65535
    ds.NumberOfFrames = 100000
    path = tmp_path / "absurd.dcm"
    ds.save_as(path)
    return path


def test_absurd_dimensions_rejected_without_big_allocation(
    tmp_path: Path, dicom_data: Path
) -> None:
    path = _absurd(tmp_path, dicom_data)
    tracemalloc.start()
    try:
        index = build_index([path])
        direct = Instance(path=str(path), sop_instance_uid="x")
        with pytest.raises(PixelDecodeError, match="absurd"):
            read_frame(direct)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert [e.path for e in index.errors] == [str(path)]
    assert "absurd" in index.errors[0].reason
    assert peak < 50 * 1024**2


def test_dimensions_beyond_file_size_rejected(tmp_path: Path, dicom_data: Path) -> None:
    ds = pydicom.dcmread(dicom_data / CT_TS / "CTImage.dcm")
    ds.Rows = 4096  # within the caps, but the file holds only 512x512 values
    ds.Columns = 4096
    path = tmp_path / "big.dcm"
    ds.save_as(path)
    index = build_index([path])
    assert "needs" in index.errors[0].reason


def test_huge_element_length_does_not_exhaust_memory(tmp_path: Path, dicom_data: Path) -> None:
    data = bytearray((dicom_data / CT_TS / "CTImage.dcm").read_bytes())
    at = data.find(b"\x08\x00\x30\x10")  # (0008,1030) Study Description, implicit VR
    assert at > 0
    data[at + 4 : at + 8] = (0xFFFFFFF0).to_bytes(4, "little")  # declares ~4 GiB
    path = tmp_path / "huge_length.dcm"
    path.write_bytes(bytes(data))
    tracemalloc.start()
    try:
        index = build_index([path])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 50 * 1024**2
    assert [e.path for e in index.errors] == [str(path)]
    assert "beyond the end of the file" in index.errors[0].reason


def test_merge_and_add_paths(ct_stack: Path) -> None:
    first = build_index([ct_stack / f"1-00{i}.dcm" for i in (1, 2, 3)])
    new = add_paths(first, [ct_stack / f"1-00{i}.dcm" for i in (3, 4, 5)] + ["/no/such/file"])
    series = _only_series(first)
    assert [i.instance_number for i in series.instances] == [5, 4, 3, 2, 1]  # by position
    assert [e.reason for e in new.errors] == ["no such file or folder"]
    assert [e.reason for e in first.errors] == ["no such file or folder"]
    again = merge(first, build_index([ct_stack / "1-001.dcm"]))
    assert len(_only_series(again).instances) == 5


def test_progress_and_cancel(ct_stack: Path) -> None:
    calls: list[tuple[int, int]] = []
    build_index([ct_stack], progress=lambda d, t: calls.append((d, t)))
    assert calls[-1] == (134, 134)
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)
    event = threading.Event()
    event.set()
    cancelled = build_index([ct_stack], cancel=event, workers=1)
    assert sum(len(s.instances) for _, _, s in cancelled.iter_series()) == 0


def test_fast_scanner_and_pydicom_index_every_shared_file_alike(dicom_data: Path) -> None:
    """The hand-written header scanner (core.imaging.scan) against pydicom, file by file."""
    import warnings

    from core.imaging.header import HeaderError, read_header

    checked = 0
    for path in sorted(dicom_data.rglob("*.dcm")):
        outcomes = []
        for fast in (True, False):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                try:
                    outcomes.append(read_header(str(path), fast=fast))
                except HeaderError as exc:
                    outcomes.append(type(exc))
        assert outcomes[0] == outcomes[1], path
        checked += 1
    assert checked > 150


def test_duplicate_instance_uids_and_two_names_for_one_patient(tmp_path: Path) -> None:
    """A copy of a file is refused by name (two slices at one position otherwise); one patient
    ID under two names loads but is flagged, never merged silently."""
    import shutil

    import pydicom

    from core.imaging.index import build_index, merge

    src = Path(__file__).resolve().parents[2] / "resources" / "sample" / "chest_cr" / "RG1_J2KI.dcm"
    a, copy = tmp_path / "a.dcm", tmp_path / "copy.dcm"
    shutil.copy(src, a)
    shutil.copy(src, copy)
    index = build_index([a, copy])
    assert sum(len(s.instances) for _p, _st, s in index.iter_series()) == 1
    (error,) = index.errors
    assert "same SOP Instance UID as" in error.reason
    assert {error.path, error.reason.split("'")[1]} == {str(a), str(copy)}

    other = tmp_path / "other" / "b.dcm"
    other.parent.mkdir()
    ds = pydicom.dcmread(src)
    ds.PatientName = "SMYTHE^ANNE"
    ds.SOPInstanceUID = pydicom.uid.generate_uid()
    ds.save_as(other)
    both = build_index([a, other])
    assert len(both.patients) == 1
    (warning,) = both.warnings
    assert warning.path == str(other)
    assert "also used with the name" in warning.reason
    assert "SMYTHE^ANNE" in warning.reason
    assert both.errors == []
    # the same when the second file is opened later into the open studies
    first = build_index([a])
    later = build_index([other])
    merge(first, later)
    assert len(later.warnings) == 1
    assert len(first.warnings) == 1
    same = tmp_path / "same" / "c.dcm"
    same.parent.mkdir()
    ds.PatientName = str(pydicom.dcmread(src).PatientName).lower() + "^"
    ds.SOPInstanceUID = pydicom.uid.generate_uid()
    ds.save_as(same)
    assert build_index([a, same]).warnings == []  # case and empty parts are not a conflict


def test_damaged_zip_and_image_files_are_named_as_what_they_claim(tmp_path: Path) -> None:
    from core.imaging.index import build_index

    junk = bytes(range(256)) * 12
    for name in ("scan.png", "photo.jpeg", "study.zip", "plain.bin"):
        (tmp_path / name).write_bytes(junk)
    reasons = {Path(e.path).name: e.reason for e in build_index([tmp_path]).errors}
    assert reasons["scan.png"] == "not a readable PNG image (its content is not one)"
    assert reasons["photo.jpeg"] == "not a readable JPEG image (its content is not one)"
    assert reasons["study.zip"] == "not a readable zip archive (damaged or truncated)"
    assert reasons["plain.bin"].startswith("not a DICOM file")
    assert "force=True" not in reasons["plain.bin"]
