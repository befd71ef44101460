"""Overlay text and the tag rows, with and without the hide-PHI toggle."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pydicom
import pytest

from core.viewer.overlay import corner_text
from core.viewer.state import ViewerState
from core.viewer.tags import header_rows


def test_overlay_shows_and_hides_patient(ct_index, ct_frame, ct_dir: Path) -> None:
    ds = pydicom.dcmread(ct_dir / "1-060.dcm", stop_before_pixels=True)
    name = str(ds.PatientName)
    st = ViewerState()
    st.add_index(ct_index)
    st.set_series(next(ct_index.iter_series())[2])
    st.set_frame(2, ct_frame[0])
    text = corner_text(st, zoom=1.5).all_text()
    assert name in text
    assert "Im 3/5" in text
    assert "W 400  L 60" in text
    assert "Zoom 150%" in text
    assert "2012-07-06" in text
    st.hide_phi = True
    hidden = corner_text(st).all_text()
    assert name not in hidden
    assert str(ds.PatientID) not in hidden
    assert "2012-07-06" not in hidden
    assert "Im 3/5" in hidden  # non-identifying lines stay


def test_overlay_empty_without_series() -> None:
    assert corner_text(ViewerState()).all_text() == ""


def test_header_rows_real_file_and_phi_mask(ct_dir: Path) -> None:
    path = ct_dir / "1-001.dcm"
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    rows = header_rows(str(path))
    by_kw = {r.keyword: r for r in rows if r.depth == 0}
    assert by_kw["PatientName"].value == str(ds.PatientName)
    assert by_kw["PatientName"].tag == "(0010,0010)"
    assert by_kw["Modality"].value == "CT"
    assert by_kw["TransferSyntaxUID"].value == "1.2.840.10008.1.2"
    assert any(r.vr == "SQ" for r in rows)
    assert any(r.depth > 0 for r in rows)
    masked = {r.keyword: r for r in header_rows(str(path), hide_phi=True) if r.depth == 0}
    assert masked["PatientName"].value == "***"
    assert masked["Modality"].value == "CT"


def test_header_rows_inside_zip(ct_dir: Path, tmp_path: Path) -> None:
    archive = tmp_path / "study.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(ct_dir / "1-002.dcm", "inner/1-002.dcm")
    rows = header_rows(f"{archive}::inner/1-002.dcm")
    assert any(r.keyword == "SOPInstanceUID" for r in rows)


def test_header_rows_bad_file_names_it(tmp_path: Path) -> None:
    bad = tmp_path / "not-dicom.dcm"
    bad.write_bytes(b"hello")
    with pytest.raises(ValueError, match=r"not-dicom\.dcm"):
        header_rows(str(bad))


def test_phi_mask_covers_what_a_keyword_list_cannot(tmp_path: Path, ct_dir: Path) -> None:
    ds = pydicom.dcmread(ct_dir / "1-001.dcm", stop_before_pixels=True)
    ds.PatientWeight = 71.5
    ds.ImageComments = "patient John Doe, bed 4"
    ds.add_new(0x00091001, "LO", "private: DOE^JOHN")
    ds.OperatorsName = "SMITH^JANE"
    ds.ReviewerName = "ROE^RICHARD"  # a person name not on the keyword list
    path = tmp_path / "x.dcm"
    ds.save_as(path)
    plain = {r.tag: r.value for r in header_rows(str(path)) if r.depth == 0}
    masked = {r.tag: r.value for r in header_rows(str(path), hide_phi=True) if r.depth == 0}
    for tag in ("(0010,1030)", "(0020,4000)", "(0009,1001)", "(0008,1070)", "(300E,0008)"):
        assert plain[tag] != "***"
        assert masked[tag] == "***", tag
    assert masked["(0008,0060)"] == "CT"  # not identifying: shown
    assert masked["(0028,0010)"] == plain["(0028,0010)"]
