"""The per-row ORM rules of storing result and audit batches: the reference that
backend.bulk (the production path, set-based statements) is held equal to by
tests/backend/test_bulk.py. Test code only: production has one rule set, backend.bulk."""

from __future__ import annotations

import itertools

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from backend.auth import aware
from backend.db import AuditEvent, Device, Result, ResultDecision, utcnow
from backend.ingest import ChainError, _decision_seq, serialize_device
from core.sync.wire import (
    GENESIS_HASH,
    AuditBatch,
    BatchResponse,
    ChainHead,
    ResultItem,
    ResultsBatch,
)


def _keep_decision(session: Session, device_id: str, item: ResultItem, seq: int) -> bool:
    """Add the decision to the history; False when this very decision is there already
    (same time and sequence: a replay). Two decisions made in one instant are two."""
    seen = session.scalar(
        select(ResultDecision.id).where(
            ResultDecision.device_id == device_id,
            ResultDecision.client_id == item.client_id,
            ResultDecision.decided_at == item.decided_at,
            ResultDecision.seq == seq,
        )
    )
    if seen is not None:
        return False
    assert item.decided_at is not None
    session.add(
        ResultDecision(
            device_id=device_id,
            client_id=item.client_id,
            decision=item.decision,
            decided_at=item.decided_at,
            seq=seq,
        )
    )
    session.flush()
    return True


def _supersedes(
    session: Session, device_id: str, current: Result, item: ResultItem, seq: int
) -> bool:
    """Is the new decision later than the current one: by decision time, and in the same
    instant by the workstation's sequence."""
    assert item.decided_at is not None
    if current.decided_at is None or aware(current.decided_at) < aware(item.decided_at):
        return True
    if aware(current.decided_at) > aware(item.decided_at):
        return False
    rival = session.scalar(  # the highest other sequence in that instant: the current one
        select(func.max(ResultDecision.seq)).where(
            ResultDecision.device_id == device_id,
            ResultDecision.client_id == item.client_id,
            ResultDecision.decided_at == item.decided_at,
            ResultDecision.seq != seq,
        )
    )
    return rival is None or rival < seq


def store_results_orm(session: Session, device_id: str, batch: ResultsBatch) -> BatchResponse:
    """New results are stored; a decision on a known result (same client id, a ``decided_at``)
    is kept in the history and replaces the current one when it was made later. A replay of
    what is stored already is a duplicate."""
    serialize_device(session, device_id)
    ids = [i.client_id for i in batch.items]
    known = {
        r.client_id: r
        for r in session.scalars(
            select(Result).where(Result.device_id == device_id, Result.client_id.in_(ids))
        )
    }
    stored, dups = [], []
    for item in batch.items:
        seq = _decision_seq(item)
        if item.decided_at is not None and _keep_decision(session, device_id, item, seq):
            stored.append(item.client_id)
            current = known.get(item.client_id)
            if current is not None and _supersedes(session, device_id, current, item, seq):
                current.decision, current.decided_at = item.decision, item.decided_at
            if current is not None:
                continue
        elif item.client_id in known or item.decided_at is not None:  # a replay
            dups.append(item.client_id)
            continue
        else:
            stored.append(item.client_id)
        result = Result(
            device_id=device_id,
            client_id=item.client_id,
            created_at=item.created_at,
            model_id=item.model_id,
            model_version=item.model_version,
            decision=item.decision,
            decided_at=item.decided_at,
            latency_ms=item.latency_ms,
            shadow=item.shadow,
            rollout_id=item.rollout_id,
            study_ref=item.study_ref,
            summary=item.summary,
        )
        session.add(result)
        known[item.client_id] = result
    return BatchResponse(stored=stored, duplicates=dups)


def store_audit_orm(session: Session, device_id: str, batch: AuditBatch) -> BatchResponse:
    """Accept events that extend the head; events already held must match hash for hash."""
    serialize_device(session, device_id)
    device = session.get(Device, device_id, with_for_update=True)
    assert device is not None  # the token was checked against the device table
    events = batch.events
    for prev, ev in itertools.pairwise(events):
        if ev.index != prev.index + 1 or ev.prev_hash != prev.hash:
            raise ChainError(
                "audit_chain_broken",
                f"event {ev.event_id!r} (index {ev.index}) does not follow index {prev.index}",
                {"index": ev.index},
            )
    head_index = -1 if device.head_index is None else device.head_index
    head_hash = device.head_hash or GENESIS_HASH
    held = {
        e.index: e
        for e in session.scalars(
            select(AuditEvent).where(
                AuditEvent.device_id == device_id,
                AuditEvent.index.in_([e.index for e in events if e.index <= head_index]),
            )
        )
    }
    stored, dups = [], []
    for ev in events:
        if ev.index <= head_index:
            old = held.get(ev.index)
            if old is None or old.hash != ev.hash or old.event_id != ev.event_id:
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
        session.add(
            AuditEvent(
                device_id=device_id,
                event_id=ev.event_id,
                index=ev.index,
                prev_hash=ev.prev_hash,
                hash=ev.hash,
                created_at=ev.created_at,
                type=ev.type,
                actor=ev.actor,
                data=ev.data,
            )
        )
        stored.append(ev.event_id)
        head_index, head_hash = ev.index, ev.hash
    device.head_index, device.head_hash = head_index, head_hash
    device.last_sync_at = utcnow()
    return BatchResponse(
        stored=stored, duplicates=dups, head=ChainHead(index=head_index, hash=head_hash)
    )
