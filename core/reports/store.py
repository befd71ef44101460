"""The SQL of reports (table ``reports``, migration 0005). Every function takes the caller's
connection, so the use case (``core.app.reports``) decides the transaction and puts its audit
event in it.

The table is declared here, on the profile's shared metadata, rather than in
core/store/schema.py: this package owns the report's columns and their meaning.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Column,
    Connection,
    ForeignKey,
    Integer,
    String,
    Table,
    Text,
    insert,
    select,
    update,
)

from core.reports.model import Addendum, Report, ReportState
from core.store.schema import metadata

reports = Table(
    "reports",
    metadata,
    Column("study_uid", String(64), primary_key=True),
    Column("patient_id", Text, nullable=False, default=""),
    Column("state", String(16), nullable=False),
    Column("template_id", String(64), nullable=False, default=""),
    Column("findings", Text, nullable=False, default=""),
    Column("impression", Text, nullable=False, default=""),
    Column("author", String(128), nullable=False),
    Column("created_at", String(40), nullable=False),
    Column("updated_at", String(40), nullable=False),
    Column("signer", String(128), nullable=False, default=""),
    Column("signed_at", String(40)),
    Column("addenda", Text, nullable=False, default="[]"),  # JSON [{text, author, signed_at}]
    Column("exported", Text, nullable=False, default="[]"),  # JSON [Exported.to_json()]
    Column("revision", Integer, nullable=False, default=0),
    Column("audit_idx", Integer, ForeignKey("audit_events.idx"), nullable=False),
    extend_existing=True,
)


@dataclass(frozen=True)
class Exported:
    """One object a report was exported as: what, its UIDs, where it went and when."""

    kind: str  # "SR", "PDF", "KOS", "TID1500", "GSPS"
    destination: str  # a file path, or "pacs:<node>"
    at: str  # ISO time (UTC)
    sop_instance_uid: str = ""
    series_instance_uid: str = ""

    def to_json(self) -> dict[str, str]:
        return {
            "kind": self.kind,
            "destination": self.destination,
            "at": self.at,
            "sop_instance_uid": self.sop_instance_uid,
            "series_instance_uid": self.series_instance_uid,
        }


@dataclass(frozen=True)
class StoredReport:
    """A report as stored: the value, its revision, and what it was exported as."""

    report: Report
    revision: int
    exported: tuple[Exported, ...]


def _time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _row_values(report: Report) -> dict[str, Any]:
    addenda = [
        {"text": a.text, "author": a.author, "signed_at": a.signed_at.isoformat()}
        for a in report.addenda
    ]
    return {
        "patient_id": report.patient_id,
        "state": report.state.value,
        "template_id": report.template_id,
        "findings": report.findings,
        "impression": report.impression,
        "author": report.author,
        "created_at": report.created_at.isoformat() if report.created_at else "",
        "updated_at": report.updated_at.isoformat() if report.updated_at else "",
        "signer": report.signer,
        "signed_at": report.signed_at.isoformat() if report.signed_at else None,
        "addenda": json.dumps(addenda, ensure_ascii=False),
    }


def get(conn: Connection, study_uid: str) -> StoredReport | None:
    """The study's report, or None when nobody has written one."""
    row = conn.execute(select(reports).where(reports.c.study_uid == study_uid)).first()
    if row is None:
        return None
    addenda = tuple(
        Addendum(a["text"], a["author"], datetime.fromisoformat(a["signed_at"]))
        for a in json.loads(row.addenda)
    )
    report = Report(
        study_uid=row.study_uid,
        patient_id=row.patient_id,
        template_id=row.template_id,
        findings=row.findings,
        impression=row.impression,
        state=ReportState(row.state),
        author=row.author,
        created_at=_time(row.created_at),
        updated_at=_time(row.updated_at),
        signer=row.signer,
        signed_at=_time(row.signed_at),
        addenda=addenda,
    )
    exported = tuple(Exported(**item) for item in json.loads(row.exported))
    return StoredReport(report, int(row.revision), exported)


def insert_report(conn: Connection, report: Report, audit_idx: int) -> None:
    conn.execute(
        insert(reports).values(
            study_uid=report.study_uid, revision=0, audit_idx=audit_idx, **_row_values(report)
        )
    )


def update_report(conn: Connection, report: Report, revision: int, audit_idx: int) -> None:
    """Write ``report`` as ``revision`` (the caller read revision - 1 in this transaction)."""
    conn.execute(
        update(reports)
        .where(reports.c.study_uid == report.study_uid)
        .values(revision=revision, audit_idx=audit_idx, **_row_values(report))
    )


def add_exported(conn: Connection, study_uid: str, items: Iterable[Exported]) -> None:
    row = conn.execute(select(reports.c.exported).where(reports.c.study_uid == study_uid)).one()
    merged = [*json.loads(row.exported), *(e.to_json() for e in items)]
    conn.execute(
        update(reports)
        .where(reports.c.study_uid == study_uid)
        .values(exported=json.dumps(merged, ensure_ascii=False))
    )


def states(conn: Connection, study_uids: Iterable[str]) -> dict[str, ReportState]:
    """Each study's report state for the study list (NONE where there is no report)."""
    wanted = list(dict.fromkeys(study_uids))
    found = {uid: ReportState.NONE for uid in wanted}
    for start in range(0, len(wanted), 500):  # SQLite's bound-parameter limit
        chunk = wanted[start : start + 500]
        rows = conn.execute(
            select(reports.c.study_uid, reports.c.state).where(reports.c.study_uid.in_(chunk))
        )
        for uid, state in rows:
            found[uid] = ReportState(state)
    return found
