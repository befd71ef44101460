"""AI results with their provenance and the radiologist's decisions, in the encrypted store."""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import Connection, func, select

from core.results.tables import decision_reasons
from core.store.database import Database
from core.store.schema import decisions, results

#: The radiologist's verdict on an AI result (the one name for it: GUI, CLI, store, sync).
Decision = Literal["accepted", "rejected", "comment"]
DECISIONS: tuple[Decision, ...] = ("accepted", "rejected", "comment")


@dataclass(frozen=True)
class DecisionRecord:
    """One decision on a result. ``sequence`` numbers a result's accepts and rejects (1, 2, ...;
    0 for a comment) so the backend can order them when two share a time; the latest wins."""

    decision: str
    comment: str
    user: str
    created_at: str
    audit_index: int
    reason: str = ""  # reject reason code (core.results.reasons), "" for none
    result_id: str = ""
    sequence: int = 0


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


def inputs_key(result: dict[str, Any]) -> frozenset[tuple[str, int]]:
    """The images a result is about, as (SOP instance UID, frame): two runs of the same model
    version with the same key are the same question asked again (order does not matter)."""
    inputs = result.get("provenance", {}).get("inputs", [])
    return frozenset((str(i.get("sop_instance_uid", "")), int(i.get("frame", 0))) for i in inputs)


def same_run(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether ``a`` and ``b`` are one model id and version on the same images."""
    return (
        a["model"]["id"] == b["model"]["id"]
        and a["model"]["version"] == b["model"]["version"]
        and inputs_key(a) == inputs_key(b)
    )


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
        reason: str = "",
    ) -> DecisionRecord:
        """Store a decision (and its reject reason) in the caller's transaction."""
        now = datetime.now(UTC).isoformat(timespec="microseconds")
        sequence = 0
        if decision != "comment":
            earlier = conn.execute(
                select(func.count())
                .select_from(decisions)
                .where(decisions.c.result_id == result_id, decisions.c.decision != "comment")
            ).scalar_one()
            sequence = int(earlier) + 1
        inserted = conn.execute(
            decisions.insert().values(
                result_id=result_id,
                decision=decision,
                comment=comment,
                user=user,
                created_at=now,
                audit_idx=audit_idx,
            )
        )
        if reason:
            key = inserted.inserted_primary_key
            assert key is not None  # an INSERT of one row has its key
            decision_id = key[0]
            conn.execute(decision_reasons.insert().values(decision_id=decision_id, reason=reason))
        return DecisionRecord(decision, comment, user, now, audit_idx, reason, result_id, sequence)

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

    def history(self, result_id: str) -> list[DecisionRecord]:
        """The decisions and comments on ``result_id`` and on every earlier or later run of the
        same model version on the same images (``same_run``), oldest first: a re-run shows
        what was decided before instead of a blank verdict."""
        this = self.get(result_id)
        query = (
            select(results)
            .where(
                results.c.model_id == this.model_id,
                results.c.model_version == this.model_version,
                results.c.study_uid == this.study_uid,
            )
            .order_by(results.c.created_at)
        )
        runs = [r for r in self._load(query) if same_run(r.payload, this.payload)]
        found = [d for r in runs for d in r.decisions]
        return sorted(found, key=lambda d: (d.created_at, d.audit_index))

    def _load(self, query: Any) -> list[StoredResult]:
        with self.db.engine.connect() as conn:
            rows = conn.execute(query).fetchall()
            out = []
            for row in rows:
                ds = conn.execute(
                    select(decisions, decision_reasons.c.reason)
                    .outerjoin(decision_reasons, decision_reasons.c.decision_id == decisions.c.id)
                    .where(decisions.c.result_id == row.id)
                    .order_by(decisions.c.id)
                ).fetchall()
                sequence = itertools.count(1)
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
                            DecisionRecord(
                                d.decision,
                                d.comment,
                                d.user,
                                d.created_at,
                                d.audit_idx,
                                d.reason or "",
                                row.id,
                                next(sequence) if d.decision != "comment" else 0,
                            )
                            for d in ds
                        ],
                    )
                )
        return out
