"""What the PACS layer tells the audit trail: a small callable protocol, so core.pacs does not
depend on how (or whether) the encrypted audit log is open.

Event types are the PS3.15 / DICOM CID 400 meanings, spelled as ``core.audit.vocabulary``
spells them, so ``EventType.from_name(event_type)`` maps them one to one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from core.audit.log import AuditLog

QUERY = "Query"
TRANSFERRED = "DICOM Instances Transferred"
EXPORT = "Export"

# PS3.15 EventOutcomeIndicator values (same numbers as core.audit.vocabulary.Outcome)
SUCCESS = 0
MINOR_FAILURE = 4
SERIOUS_FAILURE = 8

AuditObjects = Sequence[tuple[str, str]]  # (kind, id): kind is study | series | instance | ...


class AuditSink(Protocol):
    """Called once per query, retrieve and export, after it finished (or failed)."""

    def __call__(
        self, event_type: str, outcome: int, objects: AuditObjects, details: dict[str, str]
    ) -> None: ...


def null_sink(
    event_type: str, outcome: int, objects: AuditObjects, details: dict[str, str]
) -> None:
    """For callers that audit elsewhere (pure parsing); the app always passes a real sink."""


def audit_log_sink(log: AuditLog, user: str, role: str = "") -> AuditSink:
    """Adapt the encrypted ``core.audit.log.AuditLog`` to the sink protocol."""
    from core.audit.log import AuditEvent, AuditObject
    from core.audit.vocabulary import EventType, Outcome

    def sink(
        event_type: str, outcome: int, objects: AuditObjects, details: dict[str, str]
    ) -> None:
        log.append(
            AuditEvent(
                event_type=EventType.from_name(event_type),
                user=user,
                role=role,
                outcome=Outcome(outcome),
                objects=[AuditObject(kind, oid) for kind, oid in objects],
                details=dict(details),
            )
        )

    return sink
