"""What the PACS layer tells the audit trail: a small callable protocol, so core.pacs does not
depend on how (or whether) the encrypted audit log is open.

Event types and outcomes are ``core.audit.vocabulary``'s own members (PS3.15 / DICOM CID 400);
the application's sink (``core.app.pacs_audit``) records them in the current actor's name.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from core.audit.vocabulary import EventType, Outcome

QUERY = EventType.QUERY
TRANSFERRED = EventType.INSTANCES_TRANSFERRED
EXPORT = EventType.EXPORT

SUCCESS = Outcome.SUCCESS
MINOR_FAILURE = Outcome.MINOR_FAILURE
SERIOUS_FAILURE = Outcome.SERIOUS_FAILURE

AuditObjects = Sequence[tuple[str, str]]  # (kind, id): kind is study | series | instance | ...


class AuditSink(Protocol):
    """Called once per query, retrieve and export, after it finished (or failed)."""

    def __call__(
        self,
        event_type: EventType,
        outcome: Outcome,
        objects: AuditObjects,
        details: dict[str, str],
    ) -> None: ...


def null_sink(
    event_type: EventType, outcome: Outcome, objects: AuditObjects, details: dict[str, str]
) -> None:
    """For callers that audit elsewhere (pure parsing, benchmarks); the app passes a real sink."""
