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
BEGIN_TRANSFER = EventType.BEGIN_TRANSFERRING
ACCESSED = EventType.INSTANCES_ACCESSED
EXPORT = EventType.EXPORT

SUCCESS = Outcome.SUCCESS
MINOR_FAILURE = Outcome.MINOR_FAILURE
SERIOUS_FAILURE = Outcome.SERIOUS_FAILURE

AuditObjects = Sequence[tuple[str, str]]  # (kind, id): kind is study | series | instance | ...


class AuditSink(Protocol):
    """Called once per query and export after it finished (or failed); a retrieve calls it
    first before anything is fetched (``core.pacs.retrieve.record_first``) and again at the end.
    Raising refuses what the call is about to allow."""

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


def record_first(
    sink: AuditSink,
    event_type: EventType,
    objects: AuditObjects,
    details: dict[str, str],
    refused: str,
) -> None:
    """Record ``event_type`` before the data it covers is fetched or shown; if the trail cannot
    take it, raise ``AuditRefusedError`` saying ``refused`` and why (the data stays unread)."""
    from core.pacs.errors import AuditRefusedError

    try:
        sink(event_type, SUCCESS, objects, details)
    except Exception as exc:  # the store raises its own types: locked, closed, disk full
        raise AuditRefusedError(
            f"{refused}: the audit trail could not record it "
            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else 'no detail'}); "
            "nothing was retrieved or shown"
        ) from exc
