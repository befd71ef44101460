"""Where the radiologist's verdicts on AI results go: a small protocol the GUI talks to.

The AI panel never touches the database: it hands each new result and each accept / reject /
comment to a ``DecisionSink``. The in-memory default keeps them for the session; the encrypted
results store (core.results.ResultsStore: ``save`` + ``decide``) plugs in behind the same two
methods, with the signed-in user added by the adapter that connects them.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

Verdict = Literal["accepted", "rejected", "comment"]
VERDICTS: tuple[Verdict, ...] = ("accepted", "rejected", "comment")


@dataclass(frozen=True)
class DecisionEntry:
    result_id: str
    decision: Verdict
    comment: str
    created_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())


class DecisionSink(Protocol):
    def result_created(self, result: dict[str, Any]) -> None:
        """A model produced ``result`` (``InferenceResult.to_json()``); store it."""

    def decide(self, result_id: str, decision: Verdict, comment: str = "") -> None:
        """The user accepted, rejected or commented on a stored result."""

    def shadow_result(self, item: dict[str, Any]) -> None:
        """A shadow-mode candidate produced ``item`` (a sync ResultItem); record, never show."""


class InMemoryDecisionSink:
    """Session-only default; thread-safe so a worker may report results directly."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.results: dict[str, dict[str, Any]] = {}
        self.decisions: list[DecisionEntry] = []
        self.shadow_results: list[dict[str, Any]] = []

    def result_created(self, result: dict[str, Any]) -> None:
        with self._lock:
            self.results[str(result["result_id"])] = result

    def decide(self, result_id: str, decision: Verdict, comment: str = "") -> None:
        if decision not in VERDICTS:
            raise ValueError(f"unknown decision '{decision}' (accepted, rejected or comment)")
        with self._lock:
            if result_id not in self.results:
                raise KeyError(f"no AI result '{result_id}' in this session")
            self.decisions.append(DecisionEntry(result_id, decision, comment))

    def shadow_result(self, item: dict[str, Any]) -> None:
        with self._lock:
            self.shadow_results.append(item)

    def for_result(self, result_id: str) -> list[DecisionEntry]:
        with self._lock:
            return [d for d in self.decisions if d.result_id == result_id]

    def latest(self, result_id: str) -> Verdict | None:
        """The last accept/reject (comments do not change the verdict)."""
        final = [d.decision for d in self.for_result(result_id) if d.decision != "comment"]
        return final[-1] if final else None
