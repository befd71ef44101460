"""The sync hot path in bulk: a batch of results or audit events in a few set-based statements.

Same outcomes as the ORM path it replaces (``backend.ingest.store_results_orm`` /
``store_audit_orm``, kept as the reference the parity tests compare against): the same
``stored``/``duplicates`` lists in item order, the same decision history, the same chain checks.
What changes is the cost: no ORM object, identity-map entry or unit-of-work flush per row.

Per results batch: one SELECT of the known results (only when the batch carries decisions), one
``INSERT .. ON CONFLICT DO NOTHING RETURNING`` for the decision history, one for the new results
(a row the database already holds is not returned, so it is reported as a duplicate: duplicate
detection is the insert itself), and an ``executemany`` UPDATE for changed decisions. Per audit
batch: the head, the held events it overlaps, one multi-row INSERT, one UPDATE of the head.

The caller holds the per-device lock (``serialize_device``), so the results of one device are
written by one transaction at a time; the ON CONFLICT only makes a lost race harmless.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Table, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session
from sqlalchemy.sql import bindparam

from backend.auth import aware
from backend.db import AuditEvent, Device, Result, ResultDecision, utcnow
from core.sync.wire import (
    GENESIS_HASH,
    AuditBatch,
    BatchResponse,
    ChainHead,
    ResultItem,
    ResultsBatch,
)

RESULTS: Table = Result.__table__  # type: ignore[assignment]
DECISIONS: Table = ResultDecision.__table__  # type: ignore[assignment]
EVENTS: Table = AuditEvent.__table__  # type: ignore[assignment]
DEVICES: Table = Device.__table__  # type: ignore[assignment]


def _insert_ignoring(session: Session, table: Table) -> Any:
    """``INSERT .. ON CONFLICT DO NOTHING`` in the session's dialect."""
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing()
    return sqlite.insert(table).on_conflict_do_nothing()


def _time_key(dialect: str) -> Any:
    """The identity of a stored time as the database sees it: PostgreSQL compares instants;
    SQLite stores the wall time without its offset (and hands it back naive)."""
    if dialect == "postgresql":
        return lambda dt: aware(dt).astimezone(UTC)
    return lambda dt: dt.replace(tzinfo=None)


def _row(device_id: str, item: ResultItem, now: datetime) -> dict[str, Any]:
    return {
        "device_id": device_id,
        "client_id": item.client_id,
        "created_at": item.created_at,
        "received_at": now,
        "model_id": item.model_id,
        "model_version": item.model_version,
        "decision": item.decision,
        "decided_at": item.decided_at,
        "latency_ms": item.latency_ms,
        "shadow": item.shadow,
        "rollout_id": item.rollout_id,
        "study_ref": item.study_ref,
        "summary": item.summary,
    }


def _later(current: datetime | None, new: datetime) -> bool:
    return current is None or aware(current) < aware(new)


def _new_decisions(
    session: Session, device_id: str, decided: list[ResultItem], now: datetime, key: Any
) -> list[tuple[str, Any]]:
    """Add every decision to the history; the (client id, time) pairs that were not there."""
    rows = [
        {
            "device_id": device_id,
            "client_id": i.client_id,
            "decision": i.decision,
            "decided_at": i.decided_at,
            "received_at": now,
        }
        for i in decided
    ]
    stmt = _insert_ignoring(session, DECISIONS).returning(
        DECISIONS.c.client_id, DECISIONS.c.decided_at
    )
    return [(c, key(t)) for c, t in session.execute(stmt, rows)]


def store_results(session: Session, device_id: str, batch: ResultsBatch) -> BatchResponse:
    """New results are stored; a decision on a known result (same client id, a ``decided_at``)
    is kept in the history and replaces the current one when it was made later. A replay of
    what is stored already is a duplicate. (The rules of ``ingest.store_results_orm``.)"""
    from backend.ingest import serialize_device

    serialize_device(session, device_id)
    dialect = session.get_bind().dialect.name
    key = _time_key(dialect)
    now = utcnow()
    decided = [i for i in batch.items if i.decided_at is not None]
    fresh: dict[tuple[str, Any], int] = {}
    known: dict[str, datetime | None] = {}
    if decided:
        for pair in _new_decisions(session, device_id, decided, now, key):
            fresh[pair] = fresh.get(pair, 0) + 1
        ids = list({i.client_id for i in decided})
        known = {
            c: t
            for c, t in session.execute(
                select(RESULTS.c.client_id, RESULTS.c.decided_at).where(
                    RESULTS.c.device_id == device_id, RESULTS.c.client_id.in_(ids)
                )
            )
        }
    pending: dict[str, dict[str, Any]] = {}  # new in this batch, in item order
    changed: dict[str, tuple[str, datetime]] = {}  # stored results whose decision changes
    outcome: list[tuple[str, bool | None]] = []  # True stored, False duplicate, None: insert says
    for item in batch.items:
        cid = item.client_id
        if item.decided_at is not None and fresh.get((cid, key(item.decided_at)), 0) > 0:
            fresh[(cid, key(item.decided_at))] -= 1
            outcome.append((cid, True))
            if cid in pending:
                row = pending[cid]
                if _later(row["decided_at"], item.decided_at):
                    row["decision"], row["decided_at"] = item.decision, item.decided_at
            elif cid in known:
                current = changed[cid][1] if cid in changed else known[cid]
                if _later(current, item.decided_at):
                    changed[cid] = (item.decision, item.decided_at)
            else:
                pending[cid] = _row(device_id, item, now)
        elif item.decided_at is not None or cid in pending or cid in known:  # a replay
            outcome.append((cid, False))
        else:
            outcome.append((cid, None))
            pending[cid] = _row(device_id, item, now)
    inserted: set[str] = set()
    if pending:
        stmt = _insert_ignoring(session, RESULTS).returning(RESULTS.c.client_id)
        inserted = set(session.scalars(stmt, list(pending.values())))
    if changed:
        session.execute(
            update(RESULTS)
            .where(RESULTS.c.device_id == device_id, RESULTS.c.client_id == bindparam("cid"))
            .values(decision=bindparam("dec"), decided_at=bindparam("at")),
            [{"cid": c, "dec": d, "at": t} for c, (d, t) in changed.items()],
        )
    stored = [c for c, ok in outcome if ok or (ok is None and c in inserted)]
    dups = [c for c, ok in outcome if ok is False or (ok is None and c not in inserted)]
    return BatchResponse(stored=stored, duplicates=dups)


def store_audit(session: Session, device_id: str, batch: AuditBatch) -> BatchResponse:
    """Accept events that extend the head; events already held must match hash for hash.
    (The rules of ``ingest.store_audit_orm``, raising the same ``ChainError``s.)"""
    from backend.ingest import ChainError, serialize_device

    serialize_device(session, device_id)
    head_q = select(DEVICES.c.head_index, DEVICES.c.head_hash).where(
        DEVICES.c.device_id == device_id
    )
    if session.get_bind().dialect.name == "postgresql":
        head_q = head_q.with_for_update()
    head = session.execute(head_q).one()
    events = batch.events
    for prev, ev in itertools.pairwise(events):
        if ev.index != prev.index + 1 or ev.prev_hash != prev.hash:
            raise ChainError(
                "audit_chain_broken",
                f"event {ev.event_id!r} (index {ev.index}) does not follow index {prev.index}",
                {"index": ev.index},
            )
    head_index: int = -1 if head.head_index is None else head.head_index
    head_hash: str = head.head_hash or GENESIS_HASH
    overlap = [e.index for e in events if e.index <= head_index]
    held: dict[int, tuple[str, str]] = {}
    if overlap:
        held = {
            i: (h, e)
            for i, h, e in session.execute(
                select(EVENTS.c.index, EVENTS.c.hash, EVENTS.c.event_id).where(
                    EVENTS.c.device_id == device_id, EVENTS.c.index.in_(overlap)
                )
            )
        }
    stored, dups, rows = [], [], []
    now = utcnow()
    for ev in events:
        if ev.index <= head_index:
            if held.get(ev.index) != (ev.hash, ev.event_id):
                raise ChainError(
                    "audit_chain_fork",
                    f"event at index {ev.index} differs from the one this server holds: the "
                    "workstation's audit history was rewritten or an older database restored",
                    {"index": ev.index, "server_head": {"index": head_index, "hash": head_hash}},
                )
            dups.append(ev.event_id)
            continue
        if ev.index != head_index + 1 or ev.prev_hash != head_hash:
            fork = ev.index <= head_index + 1  # the next index, chained to another head
            raise ChainError(
                "audit_chain_fork" if fork else "audit_chain_gap",
                f"event at index {ev.index} does not extend the server's chain head "
                f"(index {head_index})"
                + ("" if fork else "; the events before it have not arrived yet: retry"),
                {"index": ev.index, "server_head": {"index": head_index, "hash": head_hash}},
                alert=fork,
            )
        rows.append(
            {
                "device_id": device_id,
                "event_id": ev.event_id,
                "index": ev.index,
                "prev_hash": ev.prev_hash,
                "hash": ev.hash,
                "created_at": ev.created_at,
                "received_at": now,
                "type": ev.type,
                "actor": ev.actor,
                "data": ev.data,
            }
        )
        stored.append(ev.event_id)
        head_index, head_hash = ev.index, ev.hash
    if rows:
        # RETURNING makes SQLAlchemy send one multi-row VALUES statement, not one per event
        session.execute(EVENTS.insert().returning(EVENTS.c.id), rows).all()
    session.execute(
        update(DEVICES)
        .where(DEVICES.c.device_id == device_id)
        .values(head_index=head_index, head_hash=head_hash, last_sync_at=now)
    )
    return BatchResponse(
        stored=stored, duplicates=dups, head=ChainHead(index=head_index, hash=head_hash)
    )
