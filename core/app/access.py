"""Use case: patient data was read (HIPAA 164.312(b)): a series shown in the window, files
indexed by the CLI. Recorded as DICOM Instances Accessed naming patient, study and series.

The studies read are recorded in the local study database (core.studies.catalogue) in the same
transaction as the event: a study is listed after a restart exactly when its access is on the
trail. ``refresh_studies`` updates rows already there once a folder's indexing has finished
(the event was written when the first image showed)."""

from __future__ import annotations

from typing import Any

from core.app.workstation import Workstation
from core.audit.events import Participants, event
from core.audit.log import StoredEvent
from core.audit.vocabulary import EventType
from core.imaging.model import Patient, Series, Study, StudyIndex
from core.security.users import Permission
from core.studies import catalogue


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
    """A series on screen (once per series opened, not per slice); its study is recorded as
    opened in the local study database."""
    actor = ws.require(Permission.VIEW)
    entry = (  # headers read before the write transaction starts
        catalogue.entry_from_study(patient, study) if patient and study is not None else None
    )
    with ws.db.transaction() as conn:
        stored = ws.audit.append(
            event(
                EventType.INSTANCES_ACCESSED,
                actor,
                series_participants(patient, study, series),
                action="view",
                modality=series.modality,
                **details,
            ),
            conn=conn,
        )
        if entry is not None:
            catalogue.upsert(conn, entry, opened=True, at=stored.created_at)
    return stored


def index_read(ws: Workstation, index: StudyIndex, **details: Any) -> StoredEvent:
    """Headers of every file found were read (``doctorai inspect``); every study found is
    recorded in the local study database (not as opened: nobody looked at its images)."""
    actor = ws.require(Permission.LOAD)
    entries = [
        catalogue.entry_from_study(p, st)
        for p in index.patients.values()
        for st in p.studies.values()
    ]
    with ws.db.transaction() as conn:
        stored = ws.audit.append(
            event(EventType.INSTANCES_ACCESSED, actor, Participants().index(index), **details),
            conn=conn,
        )
        for entry in entries:
            catalogue.upsert(conn, entry, opened=False, at=stored.created_at)
    return stored


def refresh_studies(ws: Workstation, index: StudyIndex) -> int:
    """Bring the rows of studies already recorded up to a finished index (all their series,
    files and counts); studies not recorded are left out (their access is not on the trail).
    Returns how many rows were updated."""
    ws.require(Permission.LOAD)
    with ws.db.engine.connect() as conn:
        known = {
            uid
            for p in index.patients.values()
            for uid in p.studies
            if catalogue.is_recorded(conn, uid)
        }
    entries = [
        catalogue.entry_from_study(p, st)
        for p in index.patients.values()
        for st in p.studies.values()
        if st.study_instance_uid in known
    ]
    if entries:
        with ws.db.transaction() as conn:
            for entry in entries:
                catalogue.upsert(conn, entry, opened=False)
    return len(entries)
