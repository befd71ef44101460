"""Real images for the report tests: the 3-slice CT of the PACS tests and a 64-frame
Enhanced MR (frame-level references), and dciodvfy as the validator."""

from __future__ import annotations

import shutil
import subprocess
import warnings
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest

from core.app.access import series_viewed
from core.app.workstation import Workstation
from core.imaging.index import build_index
from core.reports.items import ImageRef
from core.security.users import Role
from tests.conftest import DICOM_DATA

CT3_DIR = DICOM_DATA / "QIICR__dcmqi" / "data" / "segmentations" / "ct-3slice"
ENHANCED_MR = DICOM_DATA / "neurolabusc__dcm_qa_enh" / "In" / "Philips" / "IM_0027_fMAP.dcm"


@pytest.fixture(autouse=True)
def _quiet_one_part_names():
    """highdicom warns that the sources' one-part patient name ('JANCT000') may be unintended;
    it is the real file's value and is copied as it is."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "The string .* unlikely to represent", UserWarning)
        yield


@pytest.fixture(scope="session")
def ct3() -> list[pydicom.Dataset]:
    if not CT3_DIR.is_dir():
        pytest.skip(f"shared DICOM data not found under '{DICOM_DATA}'")
    return [pydicom.dcmread(p) for p in sorted(CT3_DIR.glob("*.dcm"))]


@pytest.fixture(scope="session")
def enhanced_mr() -> pydicom.Dataset:
    if not ENHANCED_MR.is_file():
        pytest.skip(f"shared DICOM file '{ENHANCED_MR}' not found")
    return pydicom.dcmread(ENHANCED_MR)


def ref(ds: pydicom.Dataset, frame: int | None = None, description: str = "") -> ImageRef:
    return ImageRef(str(ds.SOPClassUID), str(ds.SOPInstanceUID), frame, description)


def dciodvfy(ds: pydicom.Dataset, folder: Path) -> tuple[set[str], set[str]]:
    """dciodvfy's (errors, warnings) for the object written as a DICOM file in ``folder``; a
    machine without dicom3tools fails here, naming the package (.ci/run installs it)."""
    tool = shutil.which("dciodvfy")
    assert tool is not None, (
        "dciodvfy is not installed: the exported objects are validated with it "
        "(Debian/Ubuntu: apt-get install dicom3tools; .ci/run installs it)"
    )
    path = folder / f"{ds.SOPInstanceUID}.dcm"
    ds.save_as(path, enforce_file_format=True)
    out = subprocess.run(
        [tool, str(path)], capture_output=True, text=True, errors="replace", timeout=60
    )
    said = (out.stdout + out.stderr).splitlines()
    assert said, f"dciodvfy printed nothing for {path} (exit code {out.returncode})"
    errors = {line.strip() for line in said if line.startswith("Error")}
    warns = {line.strip() for line in said if line.startswith("Warning")}
    return errors, warns


PASSWORD = "correct horse battery"


def add_users(ws: Workstation) -> None:
    ws.users.create_user("admin", PASSWORD, Role.ADMIN, by="system")
    ws.users.create_user("dr-a", PASSWORD, Role.RADIOLOGIST, by="admin")
    ws.users.create_user("tech", PASSWORD, Role.TECHNOLOGIST, by="admin")


@pytest.fixture
def ws(tmp_path: Path) -> Iterator[Workstation]:
    workstation = Workstation.open(tmp_path / "ws.db")
    add_users(workstation)
    workstation.session.login("dr-a", PASSWORD)
    yield workstation
    workstation.close()


@pytest.fixture
def study(ws: Workstation) -> tuple[str, str]:
    """The real 3-slice CT shown once (recorded in the study database): (study UID, patient)."""
    if not CT3_DIR.is_dir():
        pytest.skip(f"the shared 3-slice CT is not at '{CT3_DIR}'")
    ((patient, st, series),) = list(build_index([str(CT3_DIR)]).iter_series())
    series_viewed(ws, patient, st, series)
    return st.study_instance_uid, patient.patient_id
