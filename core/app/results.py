"""Use cases of AI results: a model run is recorded, the radiologist decides on it.

Each does the whole job in one transaction: checks the actor's permission, stores the row,
appends the audit event naming patient, study, series and instances (from the result's input
references) and queues what goes upstream. A result goes upstream when it is made; decisions
follow under the same client id, with their time. Callers run these off the GUI thread.

``ReadingResults`` is what the window's AI panel needs; ``StoredResults`` is the workstation's,
``SessionResults`` serves a window opened without a profile (nothing is stored or audited
because no trail exists; the window says so).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, Protocol

from core.app.workstation import Workstation
from core.audit.events import Participants, event
from core.audit.vocabulary import EventType
from core.results.reasons import check_reason
from core.results.store import DECISIONS, Decision, DecisionRecord, same_run
from core.results.upstream import result_item
from core.security.users import Permission
from core.store.outbox import enqueue

_EVENT = {
    "accepted": EventType.RESULT_ACCEPTED,
    "rejected": EventType.RESULT_REJECTED,
    "comment": EventType.RESULT_COMMENTED,
}


def input_participants(inputs: Iterable[dict[str, Any]]) -> Participants:
    """Patient, study, series and instance of each input reference (``InputRef`` as JSON)."""
    found = Participants()
    for ref in inputs:
        found.patient(str(ref.get("patient_id", "")))
        found.study(str(ref.get("study_instance_uid", "")))
        found.series(str(ref.get("series_instance_uid", "")))
        uid = str(ref.get("sop_instance_uid", ""))
        if not uid.startswith("row-"):  # tabular rows are no DICOM instances
            found.add("instance", uid)
    return found


def result_participants(result: dict[str, Any]) -> Participants:
    """Patient, study, series and instances the model read, then the model and the result."""
    found = input_participants(result.get("provenance", {}).get("inputs", []))
    model = result["model"]
    found.add("model", f"{model['id']}@{model['version']}")
    found.add("result", str(result["result_id"]))
    return found


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """``same_run`` for results that may lack a model or inputs (session-only test results)."""
    try:
        return same_run(a, b)
    except (KeyError, TypeError):
        return False


def _check_decision(decision: str) -> Decision:
    if decision not in DECISIONS:
        raise ValueError(f"unknown decision '{decision}' (accepted, rejected or comment)")
    return decision


class ReadingResults(Protocol):
    def check_run(self) -> None:
        """Raise PermissionDenied when the actor may not run models (before any work)."""

    def record(self, result: dict[str, Any], **details: Any) -> None:
        """A model produced ``result`` (``InferenceResult.to_json()``): keep it."""

    def record_shadow(self, item: dict[str, Any]) -> None:
        """A shadow candidate produced ``item`` (a ResultItem): report it, never show it."""

    def decide(
        self, result_id: str, decision: Decision, comment: str = "", reason: str = ""
    ) -> DecisionRecord:
        """The radiologist accepted, rejected (with a reason code, core.results.reasons) or
        commented on a kept result."""

    def latest(self, result_id: str) -> Decision | None:
        """The last accept or reject of a result (None: none yet)."""

    def history(self, result_id: str) -> list[DecisionRecord]:
        """Decisions and comments on the result and on other runs of the same model version
        on the same images, oldest first (what a re-run shows)."""


class StoredResults:
    """The workstation's results: encrypted, audited, queued for the backend."""

    def __init__(self, ws: Workstation) -> None:
        self.ws = ws

    def check_run(self) -> None:
        self.ws.require(Permission.RUN_AI)

    def record(self, result: dict[str, Any], **details: Any) -> None:
        """Model Run: store the result, audit it, queue it upstream (decision "none")."""
        actor = self.ws.require(Permission.RUN_AI)
        audit, store = self.ws.audit, self.ws.results
        with self.ws.db.transaction() as conn:
            stored = audit.append(
                event(EventType.MODEL_RUN, actor, result_participants(result), **details),
                conn=conn,
            )
            store.insert_result(conn, result, actor.user, stored.created_at, stored.index)
            enqueue(conn, "result", result_item(result), item_id=str(result["result_id"]))

    def record_shadow(self, item: dict[str, Any]) -> None:
        """A shadow run is audited and sent up, never stored as a result nobody sees."""
        if not item.get("shadow"):
            raise ValueError("record_shadow takes shadow result items only")
        actor = self.ws.require(Permission.RUN_AI)
        shown = item.get("summary", {}).get("shown_result_id")
        participants = Participants().add("model", f"{item['model_id']}@{item['model_version']}")
        participants.add("result", str(item["client_id"]))
        with self.ws.db.transaction() as conn:
            self.ws.audit.append(
                event(
                    EventType.MODEL_RUN,
                    actor,
                    participants,
                    result_id=item["client_id"],
                    shadow=True,
                    rollout_id=item.get("rollout_id"),
                    shown_result_id=shown,
                ),
                conn=conn,
            )
            enqueue(conn, "result", item, item_id=str(item["client_id"]))

    def decide(
        self, result_id: str, decision: Decision, comment: str = "", reason: str = ""
    ) -> DecisionRecord:
        """Store the decision, audit it (a rejection's reason code in the event's details) and
        queue it upstream with its time and sequence, in one transaction."""
        decision = _check_decision(decision)
        reason = check_reason(decision, reason, comment)
        actor = self.ws.require(Permission.DECIDE)
        store = self.ws.results
        details: dict[str, Any] = {"comment": comment} if comment else {}
        if reason:
            details["reason"] = reason
        with self.ws.db.transaction() as conn:
            result = store.payload(conn, result_id)
            stored = self.ws.audit.append(
                event(_EVENT[decision], actor, result_participants(result), **details),
                conn=conn,
            )
            record = store.insert_decision(
                conn, result_id, decision, comment, actor.user, stored.index, reason
            )
            if decision != "comment":
                item = result_item(result, decision, record.created_at, record.sequence, reason)
                enqueue(conn, "result", item)
        return record

    def latest(self, result_id: str) -> Decision | None:
        return self.ws.results.latest_decision(result_id)

    def history(self, result_id: str) -> list[DecisionRecord]:
        return self.ws.results.history(result_id)


class SessionResults:
    """A window with no profile (tests, screenshots): results and verdicts for this session
    only. Thread-safe, as workers record results."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.results: dict[str, dict[str, Any]] = {}
        self.decisions: list[tuple[str, Decision, str]] = []
        self.records: list[DecisionRecord] = []  # the same decisions, whole
        self.shadow_results: list[dict[str, Any]] = []

    def check_run(self) -> None:
        """No profile, no accounts: whoever opened the window may run models."""

    def record(self, result: dict[str, Any], **details: Any) -> None:
        with self._lock:
            self.results[str(result["result_id"])] = result

    def record_shadow(self, item: dict[str, Any]) -> None:
        with self._lock:
            self.shadow_results.append(item)

    def decide(
        self, result_id: str, decision: Decision, comment: str = "", reason: str = ""
    ) -> DecisionRecord:
        decision = _check_decision(decision)
        reason = check_reason(decision, reason, comment)
        with self._lock:
            if result_id not in self.results:
                raise KeyError(f"no AI result '{result_id}' in this session")
            self.decisions.append((result_id, decision, comment))
            sequence = 0
            if decision != "comment":
                mine = [r for r in self.records if r.result_id == result_id]
                sequence = 1 + sum(r.decision != "comment" for r in mine)
            record = DecisionRecord(
                decision,
                comment,
                "this session",
                datetime.now(UTC).isoformat(timespec="microseconds"),
                -1,
                reason,
                result_id,
                sequence,
            )
            self.records.append(record)
        return record

    def history(self, result_id: str) -> list[DecisionRecord]:
        with self._lock:
            this = self.results.get(result_id)
            if this is None:
                raise KeyError(f"no AI result '{result_id}' in this session")
            same = {rid for rid, r in self.results.items() if rid == result_id or _same(r, this)}
            return [r for r in self.records if r.result_id in same]

    def latest(self, result_id: str) -> Decision | None:
        with self._lock:
            final = [d for r, d, _ in self.decisions if r == result_id and d != "comment"]
        return final[-1] if final else None
