"""backend.storable_scan.problems answers exactly as backend.storable.problems: every kind of
unstorable value, in every place a sync body can carry it, and clean bodies."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from backend import storable, storable_scan
from core.sync.wire import AuditBatch, AuditEventItem, ResultItem, ResultsBatch

NOW = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)
BAD_VALUES: dict[str, Any] = {
    "nul": "a\x00b",
    "surrogate": "x\ud800y",
    "int over 64 bits": 2**63,
    "int under 64 bits": -(2**63) - 1,
    "nan": float("nan"),
    "inf": float("inf"),
    "-inf": float("-inf"),
}
HARMLESS: dict[str, Any] = {
    "none": None,
    "long digits in text": "12345678901234567890",
    "largest int": 2**63 - 1,
    "year 9999 text": "9999-01-01",
    "null text": "null",
    "unicode": "Zürich ✓ 医学",
}


def _result(**kw: Any) -> ResultItem:
    base: dict[str, Any] = {
        "client_id": "c1",
        "created_at": NOW,
        "model_id": "m",
        "model_version": "1",
        "latency_ms": 5.0,
        "summary": {"label": "x", "score": 0.5},
    }
    return ResultItem(**{**base, **kw})


def _event(**kw: Any) -> AuditEventItem:
    base: dict[str, Any] = {
        "event_id": "e1",
        "index": 0,
        "prev_hash": "0" * 64,
        "hash": "1" * 64,
        "created_at": NOW,
        "type": "viewed",
        "actor": "dr-a",
        "data": {"n": 1},
    }
    return AuditEventItem(**{**base, **kw})


def _bodies() -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = [
        ("clean results", ResultsBatch(items=[_result(), _result(client_id="c2")])),
        ("clean audit", AuditBatch(events=[_event()])),
    ]
    for name, v in {**BAD_VALUES, **HARMLESS}.items():
        out += [
            (f"summary value {name}", ResultsBatch(items=[_result(summary={"v": v})])),
            (f"nested {name}", ResultsBatch(items=[_result(summary={"a": [1, {"b": v}]})])),
            (f"audit data {name}", AuditBatch(events=[_event(data={"k": {"deep": [v]}})])),
        ]
        if isinstance(v, str):
            out.append((f"key {name}", ResultsBatch(items=[_result(summary={v: 1})])))
            if name != "surrogate":  # a typed str field refuses it at validation already
                out.append((f"actor {name}", AuditBatch(events=[_event(actor=v)])))
    for days, hours in ((1, 5), (-1, -5)):
        edge = datetime(9999, 12, 31, 23, tzinfo=timezone(timedelta(hours=-hours)))
        if days == -1:
            edge = datetime(1, 1, 1, 1, tzinfo=timezone(timedelta(hours=hours)))
        out.append((f"date edge {days}", ResultsBatch(items=[_result(created_at=edge)])))
        out.append((f"decided edge {days}", ResultsBatch(items=[_result(decided_at=edge)])))
    out.append(
        ("late date, no overflow", ResultsBatch(items=[_result(created_at=datetime(9999, 1, 1))]))
    )
    return out


@pytest.mark.parametrize(("name", "body"), _bodies(), ids=[n for n, _ in _bodies()])
def test_same_answer_as_the_exact_walk(name: str, body: Any) -> None:
    want = storable.problems(body)
    assert storable_scan.problems(body) == want
    if any(name.endswith(bad) for bad in BAD_VALUES) and not name.startswith("key"):
        assert want, f"{name}: the exact walk found nothing (the case is not bad)"


def test_a_clean_batch_skips_the_walk(monkeypatch: pytest.MonkeyPatch) -> None:
    """The point: a clean batch is answered without the exact walk; a marked one walks."""
    walks: list[Any] = []
    exact = storable.problems

    def spy(body: Any) -> list[dict[str, Any]]:
        walks.append(body)
        return exact(body)

    monkeypatch.setattr(storable, "problems", spy)
    clean = ResultsBatch(items=[_result(client_id=f"c{i}") for i in range(200)])
    assert storable_scan.problems(clean) == []
    assert walks == []
    marked = ResultsBatch(items=[_result(summary={"n": None})])
    assert storable_scan.problems(marked) == []
    assert walks == [marked]
