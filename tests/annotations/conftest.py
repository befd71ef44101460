"""A real encrypted profile with two radiologists and a technologist, and the shared 3-slice CT
shown once (so its study, patient and series are in the local study database)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from core.app.access import series_viewed
from core.app.workstation import Workstation
from core.imaging.index import build_index
from core.imaging.model import Instance
from core.security.users import Role
from tests.conftest import DICOM_DATA

PASSWORD = "correct horse battery"
CT3 = DICOM_DATA / "QIICR__dcmqi" / "data" / "segmentations" / "ct-3slice"


@dataclass(frozen=True)
class Shown:
    patient_id: str
    patient_name: str
    study_uid: str
    series_uid: str
    instances: tuple[Instance, ...]


def add_users(ws: Workstation) -> None:
    ws.users.create_user("admin", PASSWORD, Role.ADMIN, by="system")
    ws.users.create_user("dr-a", PASSWORD, Role.RADIOLOGIST, by="admin")
    ws.users.create_user("dr-b", PASSWORD, Role.RADIOLOGIST, by="admin")
    ws.users.create_user("tech", PASSWORD, Role.TECHNOLOGIST, by="admin")


def show_ct(ws: Workstation) -> Shown:
    """Index the real CT and record its series as shown (core.app.access)."""
    if not CT3.is_dir():
        pytest.skip(f"the shared 3-slice CT is not at '{CT3}'")
    ((patient, study, series),) = list(build_index([str(CT3)]).iter_series())
    series_viewed(ws, patient, study, series)
    return Shown(
        patient.patient_id,
        patient.name,
        study.study_instance_uid,
        series.series_instance_uid,
        tuple(series.instances),
    )


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "ws.db"


@pytest.fixture
def ws(db_path: Path) -> Iterator[Workstation]:
    workstation = Workstation.open(db_path)
    add_users(workstation)
    workstation.session.login("dr-a", PASSWORD)
    yield workstation
    workstation.close()


@pytest.fixture
def shown(ws: Workstation) -> Shown:
    return show_ct(ws)
