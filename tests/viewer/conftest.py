"""Real CT data for the viewer-state tests, decoded here with plain pydicom (independently of
core.imaging, so these tests check the viewer math, not the pixel pipeline)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest

from core.imaging.model import Frame, Instance, Patient, Series, Study, StudyIndex

CT_DIR = ("pyvista__vtk-data", "Data", "DICOM_Stack")


@pytest.fixture
def ct_dir(dicom_data: Path) -> Path:
    path = dicom_data.joinpath(*CT_DIR)
    if not path.is_dir():
        pytest.skip(f"the shared 134-slice CT is not at '{path}'")
    return path


def decode(path: Path) -> tuple[pydicom.Dataset, np.ndarray]:
    ds = pydicom.dcmread(path)
    values = ds.pixel_array.astype(np.float64) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    return ds, values


@pytest.fixture
def ct_frame(ct_dir: Path) -> tuple[Frame, np.ndarray, pydicom.Dataset]:
    ds, values = decode(ct_dir / "1-067.dcm")
    frame = Frame(
        values=values.astype(np.float32),
        windows=[(float(ds.WindowCenter), float(ds.WindowWidth))],
        pixel_spacing=(float(ds.PixelSpacing[0]), float(ds.PixelSpacing[1])),
        units="HU",
        value_range=(float(values.min()), float(values.max())),
    )
    return frame, values, ds


def instance_from(path: Path) -> Instance:
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    return Instance(
        path=str(path),
        sop_instance_uid=str(ds.SOPInstanceUID),
        instance_number=int(ds.InstanceNumber),
        rows=int(ds.Rows),
        columns=int(ds.Columns),
        image_position=tuple(float(v) for v in ds.ImagePositionPatient),  # type: ignore[arg-type]
        image_orientation=tuple(float(v) for v in ds.ImageOrientationPatient),  # type: ignore[arg-type]
        pixel_spacing=(float(ds.PixelSpacing[0]), float(ds.PixelSpacing[1])),
    )


@pytest.fixture
def ct_index(ct_dir: Path) -> StudyIndex:
    """A small index of five real CT slices, built by hand from their headers."""
    files = sorted(ct_dir.glob("1-06*.dcm"))[:5]
    ds = pydicom.dcmread(files[0], stop_before_pixels=True)
    series = Series(
        str(ds.SeriesInstanceUID),
        "CT",
        str(ds.SeriesDescription),
        int(ds.SeriesNumber),
        instances=[instance_from(f) for f in files],
    )
    study = Study(
        str(ds.StudyInstanceUID),
        str(ds.StudyDate),
        description=str(ds.StudyDescription),
        series={series.series_instance_uid: series},
    )
    patient = Patient(
        str(ds.PatientID), str(ds.PatientName), studies={study.study_instance_uid: study}
    )
    return StudyIndex(patients={patient.patient_id: patient})
