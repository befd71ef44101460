"""The PACS layer's audit sink on the workstation's trail: each query, retrieve and store is
recorded in the name of whoever acts when it happens (the signed-in user, or the CLI's OS
account)."""

from __future__ import annotations

from core.app.workstation import Workstation
from core.audit.events import Participants
from core.audit.vocabulary import EventType, Outcome
from core.pacs.audit import AuditObjects, AuditSink


def pacs_audit(ws: Workstation) -> AuditSink:
    def sink(
        event_type: EventType, outcome: Outcome, objects: AuditObjects, details: dict[str, str]
    ) -> None:
        participants = Participants()
        for kind, oid in objects:
            participants.add(kind, oid)
        ws.record(event_type, participants, Outcome(outcome), **details)

    return sink
