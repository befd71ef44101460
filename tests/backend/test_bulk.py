"""backend.bulk gives the ORM path's outcomes (stored/duplicates in item order, the current
decision and its history, chain acceptance and refusals) on SQLite and a real PostgreSQL 15:
the same batches go through both, each on a device of its own, and everything is compared."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from backend import bulk, ingest
from backend.db import AuditEvent, Device, Result, ResultDecision, make_engine, make_sessionmaker
from core.sync.wire import GENESIS_HASH, AuditBatch, AuditEventItem, ResultItem, ResultsBatch
from tests.backend import orm_reference, pg

ORM_RESULTS = orm_reference.store_results_orm
ORM_AUDIT = orm_reference.store_audit_orm
T0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def sessions(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[sessionmaker[Session]]:
    if request.param == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path_factory.mktemp('bulk') / 'b.db'}")
        yield make_sessionmaker(engine)
        engine.dispose()
        return
    reason = pg.unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    with pg.postgres_server() as url:
        engine = make_engine(url)
        yield make_sessionmaker(engine)
        engine.dispose()


def _device(sessions: sessionmaker[Session]) -> str:
    dev = uuid.uuid4().hex
    with sessions() as s:
        s.add(Device(device_id=dev, secret_hash="x" * 64))
        s.commit()
    return dev


def _item(
    cid: str, decision: str = "none", at: datetime | None = None, seq: Any = None, **kw: Any
) -> ResultItem:
    return ResultItem(
        client_id=cid,
        created_at=T0,
        model_id="m",
        model_version="1",
        decision=decision,  # type: ignore[arg-type]
        decided_at=at,
        latency_ms=5.0,
        summary={"score": 0.5} if seq is None else {"score": 0.5, "decision_seq": seq},
        **kw,
    )


def _run(sessions: sessionmaker[Session], store: Any, dev: str, batch: Any) -> Any:
    with sessions() as s:
        try:
            out = store(s, dev, batch)
        except ingest.ChainError as exc:
            s.rollback()
            return ("refused", exc.code, exc.alert, exc.data)
        s.commit()
        return out.model_dump()


def _results_state(sessions: sessionmaker[Session], dev: str) -> tuple[list[Any], list[Any]]:
    with sessions() as s:
        results = sorted(
            (r.client_id, r.decision, r.decided_at and _utc(r.decided_at), r.model_id, r.summary)
            for r in s.scalars(select(Result).where(Result.device_id == dev))
        )
        history = sorted(
            (d.client_id, d.decision, _utc(d.decided_at), d.seq)
            for d in s.scalars(select(ResultDecision).where(ResultDecision.device_id == dev))
        )
    return results, history


def _utc(dt: datetime) -> datetime:
    return dt.astimezone(UTC) if dt.tzinfo else dt.replace(tzinfo=UTC)


RESULT_SCENARIOS: dict[str, list[list[ResultItem]]] = {
    "new and replayed": [
        [_item("a"), _item("b"), _item("c")],
        [_item("b"), _item("d"), _item("d"), _item("e"), _item("a")],
    ],
    "decisions versioned": [
        [_item("x", "accepted", T0), _item("y")],
        [_item("x", "rejected", T0 + timedelta(minutes=5))],
        [_item("x", "accepted", T0 - timedelta(minutes=5))],  # older: history only
        [_item("x", "rejected", T0 + timedelta(minutes=5))],  # the same decision: replay
        [_item("y", "accepted", T0), _item("y", "accepted", T0), _item("y")],
    ],
    "new result decided twice in one batch": [
        [
            _item("z"),
            _item("z", "accepted", T0 + timedelta(minutes=3)),
            _item("z", "rejected", T0 + timedelta(minutes=1)),
            _item("w", "rejected", T0),
            _item("w"),
        ],
        [_item("z"), _item("w", "rejected", T0)],
    ],
    "stored result, then replayed and decided in one batch": [
        [_item("u")],
        [_item("u"), _item("u", "accepted", T0), _item("v"), _item("v", "rejected", T0)],
    ],
    "offset times and optional fields": [
        [
            _item("o", "accepted", T0.astimezone(timezone(timedelta(hours=2)))),
            _item("p", shadow=True, rollout_id=7, study_ref="h" * 64),
        ],
        [_item("o", "accepted", T0), _item("o", "rejected", T0 + timedelta(seconds=1))],
    ],
    "one instant, ordered by the workstation's decision_seq": [
        [_item("s"), _item("t", "rejected", T0, 3), _item("t", "accepted", T0, 2)],
        [_item("s", "accepted", T0, 1), _item("s", "rejected", T0, 2)],
        [_item("s", "accepted", T0, 1), _item("s", "accepted", T0, 0)],  # replay; lower seq
        [_item("t", "accepted", T0, 4), _item("s", "accepted", T0, 5)],
        [
            _item("s", "rejected", T0, True),
            _item("s", "none", T0, -1),
            _item("s", "accepted", T0, 1.5),
        ],
    ],
    "naive times (taken as UTC by the database)": [
        [_item("n", "accepted", T0.replace(tzinfo=None)), _item("q")],
        [_item("n", "accepted", T0), _item("n", "rejected", T0.replace(tzinfo=None, hour=9))],
    ],
}


@pytest.mark.parametrize("name", list(RESULT_SCENARIOS))
def test_results_same_as_orm(sessions: sessionmaker[Session], name: str) -> None:
    batches = [ResultsBatch(items=items) for items in RESULT_SCENARIOS[name]]
    a, b = _device(sessions), _device(sessions)
    for batch in batches:
        assert _run(sessions, bulk.store_results, b, batch) == _run(sessions, ORM_RESULTS, a, batch)
    assert _results_state(sessions, b) == _results_state(sessions, a)


def test_results_outcomes(sessions: sessionmaker[Session]) -> None:
    """Not only equal to the ORM: the outcomes the sync protocol promises."""
    dev = _device(sessions)
    first = _run(sessions, bulk.store_results, dev, ResultsBatch(items=[_item("r1"), _item("r2")]))
    assert (first["stored"], first["duplicates"]) == (["r1", "r2"], [])
    later = T0 + timedelta(hours=1)
    batch = ResultsBatch(items=[_item("r2"), _item("r1", "rejected", later), _item("r3")])
    second = _run(sessions, bulk.store_results, dev, batch)
    assert (second["stored"], second["duplicates"]) == (["r1", "r3"], ["r2"])
    results, history = _results_state(sessions, dev)
    assert [(c, d, t) for c, d, t, *_ in results] == [
        ("r1", "rejected", later),
        ("r2", "none", None),
        ("r3", "none", None),
    ]
    assert history == [("r1", "rejected", later, 0)]


def _chain(n: int, start_hash: str = GENESIS_HASH, start: int = 0) -> list[AuditEventItem]:
    out, prev = [], start_hash
    for i in range(start, start + n):
        h = hashlib.sha256(f"{prev}{i}{uuid.uuid4()}".encode()).hexdigest()
        out.append(
            AuditEventItem(
                event_id=f"e{i}-{h[:6]}",
                index=i,
                prev_hash=prev,
                hash=h,
                created_at=T0,
                type="viewed",
                actor="dr-a",
                data={"i": i},
            )
        )
        prev = h
    return out


def _audit_state(sessions: sessionmaker[Session], dev: str) -> tuple[Any, list[Any]]:
    with sessions() as s:
        d = s.get(Device, dev)
        assert d is not None
        events = [
            (e.index, e.event_id, e.prev_hash, e.hash, e.type, e.actor, e.data)
            for e in s.scalars(
                select(AuditEvent).where(AuditEvent.device_id == dev).order_by(AuditEvent.index)
            )
        ]
        return (d.head_index, d.head_hash, d.last_sync_at is not None), events


def test_audit_same_as_orm(sessions: sessionmaker[Session]) -> None:
    chain = _chain(10)
    fork = _chain(2, chain[4].hash, 5)  # index 5 chained to the right head, another event
    other = _chain(1, chain[5].hash, 5)  # index 5, another hash at a held position
    broken = [chain[6], chain[8]]
    batches = [
        AuditBatch(events=chain[2:4]),  # a gap: nothing held yet
        AuditBatch(events=chain[0:5]),
        AuditBatch(events=chain[3:8]),  # overlap: 3, 4 held; 5..7 new
        AuditBatch(events=fork),  # index 5 held with another hash: a fork
        AuditBatch(events=other),
        AuditBatch(events=broken),  # not consecutive
        AuditBatch(events=chain[9:10]),  # a gap (8 missing)
        AuditBatch(events=chain[0:3]),  # all held: duplicates
        AuditBatch(events=chain[8:10]),
    ]
    a, b = _device(sessions), _device(sessions)
    answers = []
    for batch in batches:
        want = _run(sessions, ORM_AUDIT, a, batch)
        assert _run(sessions, bulk.store_audit, b, batch) == want
        answers.append(want if isinstance(want, tuple) else (want["stored"], want["duplicates"]))
    assert _audit_state(sessions, b) == _audit_state(sessions, a)
    # and what the protocol promises: gaps are not alerts, forks and broken batches are
    assert [x[1:3] for x in answers if isinstance(x, tuple) and x[0] == "refused"] == [
        ("audit_chain_gap", False),
        ("audit_chain_fork", True),
        ("audit_chain_fork", True),
        ("audit_chain_broken", True),
        ("audit_chain_gap", False),
    ]
    head, events = _audit_state(sessions, b)
    assert head[:2] == (9, chain[9].hash)
    assert [e[1] for e in events] == [e.event_id for e in chain]


def test_bulk_statements_per_batch(sessions: sessionmaker[Session], tmp_path: Path) -> None:
    """The point of the module: a 200-row batch is a handful of statements, not 200+."""
    from sqlalchemy import event

    dev = _device(sessions)
    engine = sessions.kw["bind"]
    seen: list[str] = []

    def count(_conn: Any, _cur: Any, stmt: str, *_a: Any) -> None:
        seen.append(stmt)

    event.listen(engine, "before_cursor_execute", count)
    try:
        items = [_item(uuid.uuid4().hex) for _ in range(200)]
        items += [_item(uuid.uuid4().hex, "accepted", T0) for _ in range(50)]
        _run(sessions, bulk.store_results, dev, ResultsBatch(items=items))
        results_statements = len(seen)
        seen.clear()
        _run(sessions, bulk.store_audit, dev, AuditBatch(events=_chain(200)))
    finally:
        event.remove(engine, "before_cursor_execute", count)
    # the device lock, its revoked check, the inserts/selects, the last-sync update: a handful
    assert results_statements <= 8, results_statements
    assert len(seen) <= 8, seen
