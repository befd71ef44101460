"""The append-only audit trail. There is deliberately no update or delete in this API.

Appends are serialised (a lock in-process, BEGIN IMMEDIATE across processes) so the chain stays
linear; each append also queues the event for the central backend in the same transaction.
"""

from __future__ import annotations

import hashlib
import json
import threading
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, select

from core.audit.chain import GENESIS_HASH, canonical, chain_hash
from core.audit.vocabulary import EventType, Outcome
from core.store.database import Database
from core.store.outbox import enqueue
from core.store.schema import audit_events


@dataclass(frozen=True)
class AuditObject:
    """A participant object: what the event touched (PS3.15 ParticipantObjectIdentification)."""

    kind: str  # patient | study | series | instance | model | file | user | audit-log | result
    id: str
    name: str = ""  # e.g. the patient's name; stored encrypted, never sent upstream

    def as_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "id": self.id, "name": self.name}


@dataclass(frozen=True)
class AuditEvent:
    event_type: EventType
    user: str
    role: str = ""
    outcome: Outcome = Outcome.SUCCESS
    objects: Sequence[AuditObject] = ()
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StoredEvent:
    index: int
    event_id: str
    created_at: str
    user: str
    role: str
    workstation: str
    event_type: EventType
    outcome: int
    objects: list[dict[str, str]]
    details: dict[str, Any]
    prev_hash: str
    hash: str

    def content(self) -> dict[str, Any]:
        """What the hash covers."""
        return _content(
            self.index,
            self.event_id,
            self.created_at,
            self.user,
            self.role,
            self.workstation,
            self.event_type.name,
            self.outcome,
            self.objects,
            self.details,
        )


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    checked: int
    first_bad_index: int | None = None
    reason: str = ""


def _content(
    index: int,
    event_id: str,
    created_at: str,
    user: str,
    role: str,
    workstation: str,
    type_name: str,
    outcome: int,
    objects: list[dict[str, str]],
    details: dict[str, Any],
) -> dict[str, Any]:
    return {
        "index": index,
        "event_id": event_id,
        "created_at": created_at,
        "user": user,
        "role": role,
        "workstation": workstation,
        "type": type_name,
        "outcome": outcome,
        "objects": objects,
        "details": details,
    }


def _row_to_event(row: Any) -> StoredEvent:
    return StoredEvent(
        index=row.idx,
        event_id=row.event_id,
        created_at=row.created_at,
        user=row.user,
        role=row.role,
        workstation=row.workstation,
        event_type=EventType[row.event_type],
        outcome=row.outcome,
        objects=json.loads(row.objects),
        details=json.loads(row.details),
        prev_hash=row.prev_hash,
        hash=row.hash,
    )


def _wire_payload(event: StoredEvent) -> dict[str, Any]:
    """What the backend receives: the chain links and no patient data (a digest of the objects)."""
    digest = hashlib.sha256(canonical({"objects": event.objects}).encode()).hexdigest()
    return {
        "event_id": event.event_id,
        "index": event.index,
        "prev_hash": event.prev_hash,
        "hash": event.hash,
        "created_at": event.created_at,
        "type": event.event_type.name,
        "actor": event.user,
        "data": {
            "outcome": event.outcome,
            "role": event.role,
            "workstation": event.workstation,
            "objects_digest": digest,
        },
    }


class AuditLog:
    """Append, read, verify. One instance per database, shared by all threads."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._lock = threading.Lock()

    def append(
        self, event: AuditEvent, *, conn: Connection | None = None, sync: bool = True
    ) -> StoredEvent:
        """Write one event (durable when this returns, or when the caller's transaction commits)."""
        with self._lock:
            if conn is not None:
                return self._append(conn, event, sync)
            with self.db.transaction() as own:
                return self._append(own, event, sync)

    def _append(self, conn: Connection, event: AuditEvent, sync: bool) -> StoredEvent:
        last = conn.execute(
            select(audit_events.c.idx, audit_events.c.hash)
            .order_by(audit_events.c.idx.desc())
            .limit(1)
        ).first()
        index, prev = (last.idx + 1, last.hash) if last else (0, GENESIS_HASH)
        event_id = str(uuid.uuid4())
        created = datetime.now(UTC).isoformat(timespec="microseconds")
        objects = [o.as_dict() for o in event.objects]
        content = _content(
            index,
            event_id,
            created,
            event.user,
            event.role,
            self.db.workstation_id,
            event.event_type.name,
            int(event.outcome),
            objects,
            event.details,
        )
        digest = chain_hash(prev, content)
        conn.execute(
            audit_events.insert().values(
                idx=index,
                event_id=event_id,
                created_at=created,
                user=event.user,
                role=event.role,
                workstation=self.db.workstation_id,
                event_type=event.event_type.name,
                outcome=int(event.outcome),
                objects=json.dumps(objects, ensure_ascii=False),
                details=json.dumps(event.details, ensure_ascii=False),
                prev_hash=prev,
                hash=digest,
            )
        )
        stored = StoredEvent(
            index,
            event_id,
            created,
            event.user,
            event.role,
            self.db.workstation_id,
            event.event_type,
            int(event.outcome),
            objects,
            event.details,
            prev,
            digest,
        )
        if sync:
            enqueue(conn, "audit", _wire_payload(stored), item_id=event_id)
        return stored

    def chain_head(self) -> tuple[int, str]:
        """(index, hash) of the newest event; (-1, genesis) for an empty trail."""
        with self.db.engine.connect() as conn:
            last = conn.execute(
                select(audit_events.c.idx, audit_events.c.hash)
                .order_by(audit_events.c.idx.desc())
                .limit(1)
            ).first()
        return (last.idx, last.hash) if last else (-1, GENESIS_HASH)

    def iter_events(
        self,
        *,
        since: str | None = None,
        user: str | None = None,
        event_type: EventType | None = None,
        patient: str | None = None,
        until: str | None = None,
    ) -> Iterator[StoredEvent]:
        query = select(audit_events).order_by(audit_events.c.idx)
        if since:
            query = query.where(audit_events.c.created_at >= since)
        if until:
            query = query.where(audit_events.c.created_at <= until)
        if user:
            query = query.where(audit_events.c.user == user)
        if event_type:
            query = query.where(audit_events.c.event_type == event_type.name)
        with self.db.engine.connect() as conn:
            rows = conn.execute(query).fetchall()
        for row in rows:
            event = _row_to_event(row)
            if patient and not any(
                o["kind"] == "patient" and patient in (o["id"], o["name"]) for o in event.objects
            ):
                continue
            yield event

    def verify(self) -> VerifyResult:
        """Walk the chain; name the first index whose row was changed, removed, moved or added."""
        expected_index, prev = 0, GENESIS_HASH
        with self.db.engine.connect() as conn:
            rows = conn.execute(select(audit_events).order_by(audit_events.c.idx))
            for row in rows:
                if row.idx != expected_index:
                    return VerifyResult(
                        False,
                        expected_index,
                        expected_index,
                        f"expected index {expected_index}, found {row.idx} "
                        "(an event was deleted or inserted)",
                    )
                try:
                    event = _row_to_event(row)
                except (KeyError, ValueError) as exc:
                    return VerifyResult(False, expected_index, row.idx, f"unreadable row: {exc}")
                if row.prev_hash != prev:
                    return VerifyResult(
                        False,
                        expected_index,
                        row.idx,
                        "prev_hash does not match the previous event's hash",
                    )
                if chain_hash(prev, event.content()) != row.hash:
                    return VerifyResult(
                        False,
                        expected_index,
                        row.idx,
                        "content does not match its hash (the row was changed)",
                    )
                prev = row.hash
                expected_index += 1
        return VerifyResult(True, expected_index)
