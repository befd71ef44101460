"""Audit for command-line use: commands that read patient data record it like the GUI does.

The CLI has no sign-in, so events name the operating-system account (role "cli"). The trail is
opened *before* the command touches any file and the command refuses to run when it cannot be
written (fail closed): an unaudited read of patient data is exactly what the trail must prevent.
"""

from __future__ import annotations

import getpass
import sys
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from core.audit.vocabulary import EventType, Outcome

if TYPE_CHECKING:
    from core.audit.log import AuditLog, AuditObject
    from core.imaging.model import Instance, StudyIndex

#: Exit code of a command refused because its audit trail could not be opened.
EXIT_NO_AUDIT = 3


class CliAudit:
    def __init__(self, log: AuditLog, user: str) -> None:
        self.log = log
        self.user = user

    @classmethod
    def open_or_explain(cls, command: str) -> CliAudit | None:
        """Open the profile's trail, or print why not (with the recovery path) and return None."""
        from core.audit.log import AuditLog
        from core.store.database import open_database
        from core.store.errors import DatabaseError

        try:
            db = open_database()
        except DatabaseError as exc:
            print(f"error: 'doctorai {command}' needs the audit trail and it cannot be opened: "
                  f"{exc}", file=sys.stderr)
            return None
        try:
            user = getpass.getuser()
        except (KeyError, OSError):  # no passwd entry (containers): still name someone
            user = "unknown-os-user"
        return cls(AuditLog(db), user)

    def record(
        self,
        event_type: EventType,
        objects: Sequence[AuditObject],
        outcome: Outcome = Outcome.SUCCESS,
        **details: Any,
    ) -> None:
        from core.audit.log import AuditEvent

        self.log.append(AuditEvent(event_type, user=self.user, role="cli", outcome=outcome,
                                   objects=objects, details=details))

    def close(self) -> None:
        self.log.db.close()


def index_objects(index: StudyIndex) -> list[AuditObject]:
    """One patient and one study object per study found (names stay in the encrypted trail)."""
    from core.audit.log import AuditObject

    objects: list[AuditObject] = []
    for patient in index.patients.values():
        objects.append(AuditObject("patient", patient.patient_id, patient.name))
        objects.extend(AuditObject("study", uid) for uid in patient.studies)
    return objects


def instance_objects(instances: Iterable[Instance]) -> list[AuditObject]:
    from core.audit.log import AuditObject

    objects: list[AuditObject] = []
    seen: set[tuple[str, str]] = set()
    for inst in instances:
        for kind, uid in (("patient", inst.patient_id), ("study", inst.study_instance_uid),
                          ("instance", inst.sop_instance_uid)):
            if uid and (kind, uid) not in seen:
                seen.add((kind, uid))
                objects.append(AuditObject(kind, uid))
    return objects
