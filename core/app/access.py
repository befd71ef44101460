"""Use case: patient data was read (HIPAA 164.312(b)): a series shown in the window, files
indexed by the CLI. Recorded as DICOM Instances Accessed naming patient, study and series."""

from __future__ import annotations

from typing import Any

from core.app.workstation import Workstation
from core.audit.events import Participants
from core.audit.log import StoredEvent
from core.audit.vocabulary import EventType
from core.imaging.model import Patient, Series, Study, StudyIndex
from core.security.users import Permission


def series_participants(
    patient: Patient | None, study: Study | None, series: Series
) -> Participants:
    found = Participants()
    if patient is not None:
        found.patient(patient.patient_id, patient.name)
    if study is not None:
        found.study(study.study_instance_uid)
    return found.series(series.series_instance_uid)


def series_viewed(
    ws: Workstation, patient: Patient | None, study: Study | None, series: Series, **details: Any
) -> StoredEvent:
    """A series on screen (once per series opened, not per slice)."""
    ws.require(Permission.VIEW)
    return ws.record(
        EventType.INSTANCES_ACCESSED,
        series_participants(patient, study, series),
        action="view",
        modality=series.modality,
        **details,
    )


def index_read(ws: Workstation, index: StudyIndex, **details: Any) -> StoredEvent:
    """Headers of every file found were read (``doctorai inspect``)."""
    ws.require(Permission.LOAD)
    return ws.record(EventType.INSTANCES_ACCESSED, Participants().index(index), **details)
