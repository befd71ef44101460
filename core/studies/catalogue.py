"""The local study database: one row per study opened or retrieved, one per series.

Written by the "series viewed / files indexed" use cases (core.app.access) in the same
transaction as their audit event, read by the study list and the priors search. Every function
that touches SQL takes the caller's connection, so the use case decides the transaction.

What a row keeps to open the study again (``location``): the instance paths as they were
opened - plain files, a zip archive for its members, or files of the encrypted PACS cache.
Opening checks that they still exist and says which are gone (a cache entry may have been
evicted: retrieve it again).

Issuer of Patient ID and Frame of Reference UID are not kept by the imaging index, so
``entry_from_study`` reads them from one header per series (header only, bounded like every
other DICOM read here, through core.imaging.sources).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, and_, delete, func, insert, or_, select, update

from core.imaging.model import Patient, Series, Study
from core.imaging.sources import sealed_reader, split_zip_path
from core.store.schema import series as series_table
from core.store.schema import studies

#: Paths kept per study: enough for any real study; a larger one keeps its first paths and
#: opens from what is left (the folder of the first path is kept too, see ``open_paths``).
MAX_LOCATION_PATHS = 5000


class StudyNotFound(LookupError):
    """No study with that UID in the local database."""


class StudyNotRecorded(StudyNotFound):
    """The study is not in the local study database, so the patient of an act on it (an
    annotation, a report) cannot be named in the audit trail."""


class StudyUnavailable(OSError):
    """The study is listed but none of its files can be opened any more."""


@dataclass(frozen=True)
class SeriesEntry:
    uid: str
    modality: str = ""
    description: str = ""
    number: int | None = None
    n_instances: int = 0
    body_part: str = ""
    frame_of_reference: str = ""


@dataclass(frozen=True)
class StudyEntry:
    """A study as the study list shows it (and as the priors search matches it)."""

    study_uid: str
    patient_id: str = ""
    issuer: str = ""
    patient_name: str = ""
    birth_date: str = ""
    sex: str = ""
    accession: str = ""
    study_date: str = ""
    study_time: str = ""
    description: str = ""
    modalities: tuple[str, ...] = ()
    n_series: int = 0
    n_instances: int = 0
    source: str = "file"
    location: tuple[str, ...] = ()
    first_seen: str = ""
    last_opened: str = ""
    series: tuple[SeriesEntry, ...] = field(default=(), compare=False)

    @property
    def display_name(self) -> str:
        return self.patient_name.replace("^", " ").strip()


@dataclass(frozen=True)
class StudySearch:
    """What the study list asks for; empty fields do not filter. ``text`` matches the patient's
    name (any order of its parts, ``^`` as a space), the Patient ID or the accession number;
    dates are DICOM dates (YYYYMMDD), inclusive."""

    text: str = ""
    date_from: str = ""
    date_to: str = ""
    modality: str = ""
    limit: int = 500

    def keys(self) -> list[str]:
        """The names of the filters used (what an audit event says, not their values)."""
        named = (
            ("text", self.text),
            ("date_from", self.date_from),
            ("date_to", self.date_to),
            ("modality", self.modality),
        )
        return [name for name, value in named if value.strip()]


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


# --- building entries from the imaging index ------------------------------------------------
def _header_tags(path: str) -> tuple[str, str]:
    """(IssuerOfPatientID, FrameOfReferenceUID) of one file; ("", "") when it has none or is
    not DICOM (a plain image)."""
    from core.imaging.sources import open_stream, read_dicom

    try:
        with open_stream(path) as fp:
            ds, _ = read_dicom(fp, stop_before_pixels=True)
    except Exception:  # noqa: BLE001 - pydicom raises many types; the index already read it
        return "", ""
    return str(ds.get("IssuerOfPatientID", "") or "").strip(), str(
        ds.get("FrameOfReferenceUID", "") or ""
    )


def _location_of(path: str) -> str:
    """What to reopen for one instance path: the zip archive for a member, else the path."""
    parts = split_zip_path(path)
    return parts[0] if parts is not None else path


def is_cached(path: str) -> bool:
    """A file of a sealed folder (the encrypted PACS cache)."""
    return sealed_reader(path) is not None


def entry_from_study(
    patient: Patient, study: Study, source: str = "", read_headers: bool = True
) -> StudyEntry:
    """The row for ``study`` as the index knows it. ``source``: "pacs:<node>" when known;
    otherwise "file", or "pacs" for files of the PACS cache."""
    series_entries: list[SeriesEntry] = []
    issuer = ""
    paths: list[str] = []
    seen: set[str] = set()
    for s in study.series.values():
        first = next((i.path for i in s.instances if not i.is_plain_image), None)
        found_issuer, frame_of_reference = (
            _header_tags(first) if read_headers and first else ("", "")
        )
        issuer = issuer or found_issuer
        series_entries.append(_series_entry(s, frame_of_reference))
        for inst in s.instances:
            where = _location_of(inst.path)
            if where not in seen and len(paths) < MAX_LOCATION_PATHS:
                seen.add(where)
                paths.append(where)
    if not source:
        source = "pacs" if paths and all(is_cached(p) for p in paths) else "file"
    modalities = sorted({s.modality for s in series_entries if s.modality})
    return StudyEntry(
        study_uid=study.study_instance_uid,
        patient_id=patient.patient_id,
        issuer=issuer,
        patient_name=patient.name,
        birth_date=patient.birth_date,
        sex=patient.sex,
        accession=study.accession_number,
        study_date=study.study_date,
        study_time=study.study_time,
        description=study.description,
        modalities=tuple(modalities),
        n_series=len(series_entries),
        n_instances=sum(s.n_instances for s in series_entries),
        source=source,
        location=tuple(paths),
        series=tuple(series_entries),
    )


def _series_entry(s: Series, frame_of_reference: str) -> SeriesEntry:
    return SeriesEntry(
        uid=s.series_instance_uid,
        modality=s.modality,
        description=s.description,
        number=s.series_number,
        n_instances=len(s.instances),
        body_part=s.body_part,
        frame_of_reference=frame_of_reference,
    )


# --- writing --------------------------------------------------------------------------------
def _merged_location(old: Sequence[str], new: Sequence[str]) -> list[str]:
    """New paths first (where the study was opened last), then the old ones still unknown."""
    out = list(dict.fromkeys([*new, *old]))
    return out[:MAX_LOCATION_PATHS]


def _merged_source(old: str, new: str) -> str:
    """A named PACS node is kept when the same study is later opened from the cache."""
    if new == "pacs" and old.startswith("pacs:"):
        return old
    return new


def upsert(conn: Connection, entry: StudyEntry, *, opened: bool, at: str | None = None) -> None:
    """Record ``entry`` (insert or update; its series too); ``opened`` also sets last_opened.

    Counts and series only grow: a provisional first image (one instance) recorded before the
    whole folder was indexed never shrinks what a full index recorded."""
    at = at or now_iso()
    row = conn.execute(select(studies).where(studies.c.study_uid == entry.study_uid)).first()
    values: dict[str, Any] = {
        "patient_id": entry.patient_id,
        "issuer_of_patient_id": entry.issuer,
        "patient_name": entry.patient_name,
        "birth_date": entry.birth_date,
        "sex": entry.sex,
        "accession": entry.accession,
        "study_date": entry.study_date,
        "study_time": entry.study_time,
        "description": entry.description,
    }
    if row is None:
        values.update(
            modalities="\\".join(entry.modalities),
            n_series=entry.n_series,
            n_instances=entry.n_instances,
            study_uid=entry.study_uid,
            source=entry.source,
            location=json.dumps(list(entry.location)),
            first_seen=at,
            last_opened=at if opened else None,
        )
        conn.execute(insert(studies).values(**values))
    else:
        old = row._mapping
        for key in ("issuer_of_patient_id", "birth_date", "sex", "accession", "description"):
            values[key] = values[key] or old[key]  # a sparser header never blanks a field
        values["source"] = _merged_source(str(old["source"]), entry.source)
        values["location"] = json.dumps(
            _merged_location(json.loads(old["location"] or "[]"), entry.location)
        )
        if opened:
            values["last_opened"] = at
        conn.execute(update(studies).where(studies.c.study_uid == entry.study_uid).values(values))
    _upsert_series(conn, entry)
    _recount(conn, entry.study_uid)


def _upsert_series(conn: Connection, entry: StudyEntry) -> None:
    for s in entry.series:
        row = conn.execute(select(series_table).where(series_table.c.uid == s.uid)).first()
        values = {
            "study_uid": entry.study_uid,
            "modality": s.modality,
            "description": s.description,
            "number": s.number,
            "n_instances": s.n_instances,
            "body_part": s.body_part,
            "frame_of_reference": s.frame_of_reference,
        }
        if row is None:
            conn.execute(insert(series_table).values(uid=s.uid, **values))
        else:
            old = row._mapping
            values["n_instances"] = max(s.n_instances, int(old["n_instances"]))
            values["frame_of_reference"] = s.frame_of_reference or old["frame_of_reference"]
            conn.execute(update(series_table).where(series_table.c.uid == s.uid).values(values))


def _recount(conn: Connection, study_uid: str) -> None:
    """The study's modalities and counts from its series rows (all ever recorded)."""
    rows = conn.execute(
        select(series_table.c.modality, series_table.c.n_instances).where(
            series_table.c.study_uid == study_uid
        )
    ).all()
    if not rows:  # a study known without its series (a PACS answer): keep what it said
        return
    conn.execute(
        update(studies)
        .where(studies.c.study_uid == study_uid)
        .values(
            modalities="\\".join(sorted({str(m) for m, _n in rows if m})),
            n_series=len(rows),
            n_instances=sum(int(n) for _m, n in rows),
        )
    )


def set_source(conn: Connection, study_uid: str, source: str) -> None:
    """Name where a study came from (a retrieve from PACS node X: "pacs:X")."""
    conn.execute(update(studies).where(studies.c.study_uid == study_uid).values(source=source))


def forget(conn: Connection, study_uid: str) -> None:
    conn.execute(delete(series_table).where(series_table.c.study_uid == study_uid))
    conn.execute(delete(studies).where(studies.c.study_uid == study_uid))


# --- reading --------------------------------------------------------------------------------
def _entry(row: Any, series_rows: Iterable[Any] = ()) -> StudyEntry:
    m = row._mapping
    return StudyEntry(
        study_uid=m["study_uid"],
        patient_id=m["patient_id"],
        issuer=m["issuer_of_patient_id"],
        patient_name=m["patient_name"],
        birth_date=m["birth_date"],
        sex=m["sex"],
        accession=m["accession"],
        study_date=m["study_date"],
        study_time=m["study_time"],
        description=m["description"],
        modalities=tuple(x for x in str(m["modalities"]).split("\\") if x),
        n_series=int(m["n_series"]),
        n_instances=int(m["n_instances"]),
        source=m["source"],
        location=tuple(json.loads(m["location"] or "[]")),
        first_seen=m["first_seen"],
        last_opened=m["last_opened"] or "",
        series=tuple(
            SeriesEntry(
                uid=s.uid,
                modality=s.modality,
                description=s.description,
                number=s.number,
                n_instances=int(s.n_instances),
                body_part=s.body_part,
                frame_of_reference=s.frame_of_reference,
            )
            for s in series_rows
        ),
    )


def is_recorded(conn: Connection, study_uid: str) -> bool:
    row = conn.execute(select(studies.c.study_uid).where(studies.c.study_uid == study_uid))
    return row.first() is not None


def patient_of(conn: Connection, study_uid: str, what: str) -> tuple[str, str]:
    """(patient ID, patient name) of a recorded study, for auditing ``what`` ("its report")
    by patient; ``StudyNotRecorded`` says why not and what to do."""
    row = conn.execute(
        select(studies.c.patient_id, studies.c.patient_name).where(studies.c.study_uid == study_uid)
    ).first()
    if row is None:
        raise StudyNotRecorded(
            f"study '{study_uid}' is not in the local study database, so {what} cannot be "
            "audited by patient: show one of its series first"
        )
    return str(row.patient_id), str(row.patient_name)


def get(conn: Connection, study_uid: str) -> StudyEntry:
    """One study with its series; raises StudyNotFound."""
    row = conn.execute(select(studies).where(studies.c.study_uid == study_uid)).first()
    if row is None:
        raise StudyNotFound(f"no study '{study_uid}' in the local study database")
    rows = conn.execute(
        select(series_table)
        .where(series_table.c.study_uid == study_uid)
        .order_by(series_table.c.number)
    ).all()
    return _entry(row, rows)


def _dicom_date(value: str, what: str) -> str:
    """YYYYMMDD from YYYYMMDD or YYYY-MM-DD; ValueError naming the field otherwise."""
    text = value.strip().replace("-", "")
    if text and (len(text) != 8 or not text.isdigit()):
        raise ValueError(f"{what} '{value}' is not a date (YYYY-MM-DD)")
    return text


def search(conn: Connection, query: StudySearch) -> list[StudyEntry]:
    """Studies matching every given filter, newest study date first."""
    conditions = []
    words = query.text.replace("^", " ").split()
    name = func.lower(func.replace(studies.c.patient_name, "^", " "))
    for word in words:  # every word must match the name, the ID or the accession
        like = f"%{_escape(word.lower())}%"
        conditions.append(
            or_(
                name.like(like, escape="\\"),
                func.lower(studies.c.patient_id).like(like, escape="\\"),
                func.lower(studies.c.accession).like(like, escape="\\"),
            )
        )
    lo = _dicom_date(query.date_from, "From date")
    hi = _dicom_date(query.date_to, "To date")
    if lo:
        conditions.append(studies.c.study_date >= lo)
    if hi:
        conditions.append(studies.c.study_date <= hi)
    if query.modality.strip():
        wanted = query.modality.strip().upper()
        if not wanted.isalnum():
            raise ValueError(f"modality '{query.modality}' is not a DICOM modality (e.g. CT, MR)")
        conditions.append(
            or_(
                studies.c.modalities == wanted,
                studies.c.modalities.like(f"{wanted}\\%", escape="|"),
                studies.c.modalities.like(f"%\\{wanted}", escape="|"),
                studies.c.modalities.like(f"%\\{wanted}\\%", escape="|"),
            )
        )
    stmt = (
        select(studies)
        .where(and_(*conditions))
        .order_by(studies.c.study_date.desc(), studies.c.study_time.desc())
        .limit(max(1, query.limit))
    )
    return [_entry(r) for r in conn.execute(stmt).all()]


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def recent(conn: Connection, n: int = 50) -> list[StudyEntry]:
    """The ``n`` studies opened or retrieved from a PACS last, most recent first (a study only
    indexed, e.g. by ``doctorai inspect`` of a whole disk, is found by searching)."""
    used = func.coalesce(studies.c.last_opened, studies.c.first_seen)
    stmt = (
        select(studies)
        .where(or_(studies.c.last_opened.is_not(None), studies.c.source.like("pacs%")))
        .order_by(used.desc(), studies.c.study_uid)
        .limit(max(1, n))
    )
    return [_entry(r) for r in conn.execute(stmt).all()]


def of_patient(conn: Connection, patient_id: str, issuer: str) -> list[StudyEntry]:
    """Every study of exactly this Patient ID and issuer (the priors search's local half)."""
    stmt = select(studies).where(
        studies.c.patient_id == patient_id, studies.c.issuer_of_patient_id == issuer
    )
    return [_entry(r) for r in conn.execute(stmt).all()]


def open_paths(entry: StudyEntry) -> list[str]:
    """The paths to index to open ``entry`` again: those that still exist. Raises
    StudyUnavailable naming the study and why when none do."""
    alive = [p for p in entry.location if os.path.exists(p)]
    if alive:
        return alive
    if not entry.location:
        why = "no file location was recorded for it"
    elif entry.source.startswith("pacs"):
        why = "its files are no longer in the PACS cache (evicted or purged): retrieve it again"
    else:
        why = f"its files are gone (first was '{entry.location[0]}')"
    raise StudyUnavailable(f"cannot open study '{entry.study_uid}': {why}")


def issuer_of(study: Study) -> str:
    """The Issuer of Patient ID of a study as indexed (read from its first DICOM header)."""
    for s in study.series.values():
        first = next((i.path for i in s.instances if not i.is_plain_image), None)
        if first:
            return _header_tags(first)[0]
    return ""
