"""Results with provenance and decisions; each write also appends its audit event and queues
both for sync, all in one transaction (nothing recorded without its audit trail)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import select

from core.audit.log import AuditEvent, AuditLog, AuditObject
from core.audit.vocabulary import EventType
from core.results.upstream import result_item
from core.store.outbox import enqueue
from core.store.schema import decisions, results

Decision = Literal["accepted", "rejected", "comment"]
_EVENT = {
    "accepted": EventType.RESULT_ACCEPTED,
    "rejected": EventType.RESULT_REJECTED,
    "comment": EventType.RESULT_COMMENTED,
}


@dataclass(frozen=True)
class DecisionRecord:
    decision: str
    comment: str
    user: str
    created_at: str
    audit_index: int


@dataclass(frozen=True)
class StoredResult:
    id: str
    created_at: str
    user: str
    model_id: str
    model_version: str
    study_uid: str
    payload: dict[str, Any]
    audit_index: int
    decisions: list[DecisionRecord]

    @property
    def latest_decision(self) -> str:
        final = [d for d in self.decisions if d.decision != "comment"]
        return final[-1].decision if final else "none"


def _study_uid(result: dict[str, Any]) -> str:
    inputs = result.get("provenance", {}).get("inputs", [])
    return str(inputs[0].get("study_instance_uid", "")) if inputs else ""


class ResultsStore:
    def __init__(self, audit: AuditLog) -> None:
        self.audit = audit
        self.db = audit.db

    def save(
        self, result: dict[str, Any], user: str, role: str = "radiologist", patient_id: str = ""
    ) -> str:
        """Store an InferenceResult.to_json() and audit the model run."""
        objects = [AuditObject("model", f"{result['model']['id']}@{result['model']['version']}")]
        if patient_id:
            objects.append(AuditObject("patient", patient_id))
        study = _study_uid(result)
        if study:
            objects.append(AuditObject("study", study))
        with self.db.transaction() as conn:
            event = self.audit.append(
                AuditEvent(
                    EventType.MODEL_RUN,
                    user=user,
                    role=role,
                    objects=objects,
                    details={"result_id": result["result_id"]},
                ),
                conn=conn,
            )
            conn.execute(
                results.insert().values(
                    id=result["result_id"],
                    created_at=event.created_at,
                    user=user,
                    model_id=result["model"]["id"],
                    model_version=result["model"]["version"],
                    study_uid=study,
                    payload=json.dumps(result),
                    audit_idx=event.index,
                )
            )
        return str(result["result_id"])

    def record_shadow(self, item: dict[str, Any], user: str, role: str = "radiologist") -> str:
        """Audit a shadow-mode model run and queue its result item for the backend, in one
        transaction. Not stored as a result: nobody sees it or decides on it (core.inference.
        shadow)."""
        if not item.get("shadow"):
            raise ValueError("record_shadow takes shadow result items only")
        with self.db.transaction() as conn:
            self.audit.append(
                AuditEvent(
                    EventType.MODEL_RUN,
                    user=user,
                    role=role,
                    objects=[AuditObject("model", f"{item['model_id']}@{item['model_version']}")],
                    details={
                        "result_id": item["client_id"],
                        "shadow": True,
                        "rollout_id": item.get("rollout_id"),
                        "shown_result_id": item.get("summary", {}).get("shown_result_id"),
                    },
                ),
                conn=conn,
            )
            enqueue(conn, "result", item, item_id=str(item["client_id"]))
        return str(item["client_id"])

    def decide(
        self,
        result_id: str,
        decision: Decision,
        user: str,
        comment: str = "",
        role: str = "radiologist",
    ) -> DecisionRecord:
        if decision not in _EVENT:
            raise ValueError(f"unknown decision '{decision}' (accepted, rejected or comment)")
        with self.db.transaction() as conn:
            row = conn.execute(select(results).where(results.c.id == result_id)).first()
            if row is None:
                raise KeyError(f"no stored AI result '{result_id}'")
            event = self.audit.append(
                AuditEvent(
                    _EVENT[decision],
                    user=user,
                    role=role,
                    objects=[AuditObject("result", result_id), AuditObject("study", row.study_uid)],
                    details={"comment": comment} if comment else {},
                ),
                conn=conn,
            )
            now = datetime.now(UTC).isoformat(timespec="microseconds")
            conn.execute(
                decisions.insert().values(
                    result_id=result_id,
                    decision=decision,
                    comment=comment,
                    user=user,
                    created_at=now,
                    audit_idx=event.index,
                )
            )
            if decision != "comment":
                enqueue(conn, "result", result_item(json.loads(row.payload), decision))
        return DecisionRecord(decision, comment, user, now, event.index)

    def get(self, result_id: str) -> StoredResult:
        found = self._load(select(results).where(results.c.id == result_id))
        if not found:
            raise KeyError(f"no stored AI result '{result_id}'")
        return found[0]

    def list_for_study(self, study_uid: str) -> list[StoredResult]:
        return self._load(
            select(results).where(results.c.study_uid == study_uid).order_by(results.c.created_at)
        )

    def _load(self, query: Any) -> list[StoredResult]:
        with self.db.engine.connect() as conn:
            rows = conn.execute(query).fetchall()
            out = []
            for row in rows:
                ds = conn.execute(
                    select(decisions)
                    .where(decisions.c.result_id == row.id)
                    .order_by(decisions.c.id)
                ).fetchall()
                out.append(
                    StoredResult(
                        row.id,
                        row.created_at,
                        row.user,
                        row.model_id,
                        row.model_version,
                        row.study_uid,
                        json.loads(row.payload),
                        row.audit_idx,
                        [
                            DecisionRecord(d.decision, d.comment, d.user, d.created_at, d.audit_idx)
                            for d in ds
                        ],
                    )
                )
        return out
