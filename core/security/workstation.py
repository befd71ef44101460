"""One object per running workstation that ties the encrypted store to the signed-in user.

The GUI (and any long-lived front end) opens it once: the database, the audit trail, the user
accounts, the session and the results store share one connection pool, and every audited action
goes through ``record`` so it carries the current user and role without each caller knowing them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.audit.log import AuditEvent, AuditLog, AuditObject, StoredEvent
from core.audit.vocabulary import EventType, Outcome
from core.config import SecuritySettings
from core.inference.decisions import Verdict
from core.results.store import ResultsStore
from core.security.session import Session
from core.security.users import Permission, UserStore
from core.store.database import Database, open_database

#: Who the trail names for events that happen before anyone signs in (start-up, failed logins).
SYSTEM_USER = "system"


@dataclass
class Workstation:
    db: Database
    audit: AuditLog
    users: UserStore
    session: Session
    results: ResultsStore

    @classmethod
    def open(
        cls, path: Path | None = None, security: SecuritySettings | None = None
    ) -> Workstation:
        """Open (first run: create) the profile's encrypted database; raises core.store errors."""
        db = open_database(path)
        audit = AuditLog(db)
        users = UserStore(audit, security)
        return cls(db, audit, users, Session(users), ResultsStore(audit))

    @property
    def user_name(self) -> str:
        return self.session.user.username if self.session.user else SYSTEM_USER

    @property
    def role_name(self) -> str:
        return self.session.user.role.value if self.session.user else ""

    def record(
        self,
        event_type: EventType,
        objects: Sequence[AuditObject] = (),
        outcome: Outcome = Outcome.SUCCESS,
        **details: Any,
    ) -> StoredEvent:
        """Append an audit event in the name of the signed-in user (durable on return)."""
        return self.audit.append(
            AuditEvent(
                event_type,
                user=self.user_name,
                role=self.role_name,
                outcome=outcome,
                objects=objects,
                details=details,
            )
        )

    def decision_sink(self) -> ResultsDecisionSink:
        return ResultsDecisionSink(self)

    def close(self) -> None:
        self.db.close()


class ResultsDecisionSink:
    """The AI panel's ``DecisionSink`` backed by the encrypted results store.

    Saving a result audits the model run; deciding checks the user may decide, then stores the
    decision with its audit event and (for accept/reject) queues it for the backend, all in one
    transaction (core.results.store).
    """

    def __init__(self, workstation: Workstation) -> None:
        self.ws = workstation

    def result_created(self, result: dict[str, Any]) -> None:
        user = self.ws.session.require(Permission.RUN_AI)
        patient = str(result.get("patient_id", "") or "")
        self.ws.results.save(result, user.username, user.role.value, patient_id=patient)

    def shadow_result(self, item: dict[str, Any]) -> None:
        user = self.ws.session.require(Permission.RUN_AI)
        self.ws.results.record_shadow(item, user.username, user.role.value)

    def decide(self, result_id: str, decision: Verdict, comment: str = "") -> None:
        user = self.ws.session.require(Permission.DECIDE)
        self.ws.results.decide(result_id, decision, user.username, comment, user.role.value)

    def latest(self, result_id: str) -> Verdict | None:
        try:
            stored = self.ws.results.get(result_id)
        except KeyError:
            return None
        for record in reversed(stored.decisions):
            if record.decision in ("accepted", "rejected"):
                return record.decision  # type: ignore[return-value]
        return None
