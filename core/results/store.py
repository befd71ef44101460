"""AI results with their provenance and the radiologist's decisions, in the encrypted store."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import Connection, select

from core.store.database import Database
from core.store.schema import decisions, results

#: The radiologist's verdict on an AI result (the one name for it: GUI, CLI, store, sync).
Decision = Literal["accepted", "rejected", "comment"]
DECISIONS: tuple[Decision, ...] = ("accepted", "rejected", "comment")


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


def study_uid(result: dict[str, Any]) -> str:
    inputs = result.get("provenance", {}).get("inputs", [])
    return str(inputs[0].get("study_instance_uid", "")) if inputs else ""


class ResultsStore:
    """Rows of results and decisions. Writes take the caller's connection: the use cases
    (core.app.results) write them in the same transaction as their audit event and outbox item,
    so nothing is recorded without its audit trail."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def insert_result(
        self, conn: Connection, result: dict[str, Any], user: str, created_at: str, audit_idx: int
    ) -> None:
        conn.execute(
            results.insert().values(
                id=result["result_id"],
                created_at=created_at,
                user=user,
                model_id=result["model"]["id"],
                model_version=result["model"]["version"],
                study_uid=study_uid(result),
                payload=json.dumps(result),
                audit_idx=audit_idx,
            )
        )

    def payload(self, conn: Connection, result_id: str) -> dict[str, Any]:
        """The stored ``InferenceResult.to_json()``; KeyError naming the id when there is none."""
        row = conn.execute(select(results.c.payload).where(results.c.id == result_id)).first()
        if row is None:
            raise KeyError(f"no stored AI result '{result_id}'")
        payload: dict[str, Any] = json.loads(row.payload)
        return payload

    def insert_decision(
        self,
        conn: Connection,
        result_id: str,
        decision: Decision,
        comment: str,
        user: str,
        audit_idx: int,
    ) -> DecisionRecord:
        now = datetime.now(UTC).isoformat(timespec="microseconds")
        conn.execute(
            decisions.insert().values(
                result_id=result_id,
                decision=decision,
                comment=comment,
                user=user,
                created_at=now,
                audit_idx=audit_idx,
            )
        )
        return DecisionRecord(decision, comment, user, now, audit_idx)

    def latest_decision(self, result_id: str) -> Decision | None:
        """The last accept/reject (comments do not change the verdict); None if undecided or
        unknown."""
        with self.db.engine.connect() as conn:
            row = conn.execute(
                select(decisions.c.decision)
                .where(decisions.c.result_id == result_id, decisions.c.decision != "comment")
                .order_by(decisions.c.id.desc())
                .limit(1)
            ).first()
        return row.decision if row is not None else None

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
