"""Studies of made-up patients: copies of the shared 3-slice CT with their Patient ID, issuer,
name, study UID, date and accession edited by pydicom."""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest
from pydicom.uid import generate_uid

from tests.conftest import DICOM_DATA

CT3_DIR = DICOM_DATA / "QIICR__dcmqi" / "data" / "segmentations" / "ct-3slice"


def ct3_files() -> list[Path]:
    files = sorted(CT3_DIR.glob("*.dcm"))
    if not files:
        pytest.skip(f"the shared 3-slice CT is not at '{CT3_DIR}'")
    return files


def make_study(
    folder: Path,
    *,
    patient_id: str,
    issuer: str | None = None,
    name: str = "DOE^JANE",
    date: str = "20200101",
    accession: str = "",
    description: str = "CT CHEST",
    modality: str = "CT",
) -> str:
    """Write an edited copy of the 3-slice CT into ``folder``; returns its Study Instance UID.
    ``issuer`` None: no Issuer of Patient ID element at all."""
    folder.mkdir(parents=True, exist_ok=True)
    study_uid, series_uid, frame_uid = generate_uid(), generate_uid(), generate_uid()
    for n, src in enumerate(ct3_files()):
        ds = pydicom.dcmread(src)
        ds.PatientID = patient_id
        if issuer is None:
            if "IssuerOfPatientID" in ds:
                del ds.IssuerOfPatientID
        else:
            ds.IssuerOfPatientID = issuer
        ds.PatientName = name
        ds.StudyInstanceUID = study_uid
        ds.SeriesInstanceUID = series_uid
        ds.FrameOfReferenceUID = frame_uid
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.StudyDate = date
        ds.AccessionNumber = accession
        ds.StudyDescription = description
        ds.Modality = modality
        ds.save_as(folder / f"{n:02d}.dcm")
    return study_uid
