"""Storing result and audit batches exactly once, and anchoring each workstation's audit chain.

Idempotency has two layers: the Idempotency-Key of a request (a replay gets the first answer's
bytes back), and the client id of every item (unique per device, so an item re-sent inside a
different batch is reported as a duplicate and not stored twice).
"""

from __future__ import annotations

import hashlib
import itertools
from datetime import datetime

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from backend import bulk
from backend.auth import aware
from backend.db import (
    AuditEvent,
    Device,
    IdempotencyRecord,
    Result,
    ResultDecision,
    SecurityAlert,
    utcnow,
)
from backend.storable import INT32_MAX
from core.sync.wire import (
    GENESIS_HASH,
    AuditBatch,
    BatchResponse,
    ChainHead,
    ResultItem,
    ResultsBatch,
)


class ChainError(Exception):
    """The batch does not extend the stored chain head. ``alert``: history rewritten or an old
    database restored (a fork, or a malformed chain), a Security Alert. Otherwise a gap: the
    events before it have not arrived yet (two batches racing on two processes), so the
    client retries and no alert is raised for mere ordering."""

    def __init__(
        self, code: str, message: str, data: dict[str, object], alert: bool = True
    ) -> None:
        super().__init__(message)
        self.code, self.message, self.data, self.alert = code, message, data, alert


#: pg_advisory_xact_lock(namespace, hashtext(device_id)): one batch per device at a time
DEVICE_LOCK_NAMESPACE = 0x44414944  # "DAID"


def serialize_device(session: Session, device_id: str) -> None:
    """Hold a per-device lock until the transaction ends, so two batches of one workstation
    on two processes are stored one after the other: the second sees the first's rows and
    chain head instead of colliding with them. PostgreSQL: an advisory transaction lock (other
    devices never wait). SQLite: the database's write lock, taken up front."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        session.execute(
            text("SELECT pg_advisory_xact_lock(:ns, hashtext(:d))"),
            {"ns": DEVICE_LOCK_NAMESPACE, "d": device_id},
        )
    elif dialect == "sqlite":
        session.execute(
            text("UPDATE devices SET revoked = revoked WHERE device_id = :d"), {"d": device_id}
        )
    # read under the lock: a revoke that lands after the request's token check still stops the
    # batch (the revoke itself takes no device lock, but its commit is seen from here on)
    revoked = session.execute(select(Device.revoked).where(Device.device_id == device_id)).scalar()
    if revoked is None or revoked:
        raise DeviceRevokedError(device_id)


class DeviceRevokedError(Exception):
    """The workstation was revoked (or deleted) after its request passed the token check."""


class IdempotencyMismatch(Exception):
    """The same Idempotency-Key came with a different body."""


def request_hash(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def lookup_replay(
    session: Session, device_id: str, key: str, endpoint: str, body_hash: str
) -> IdempotencyRecord | None:
    rec = session.get(IdempotencyRecord, (device_id, key))
    if rec is None:
        return None
    if rec.endpoint != endpoint or rec.request_hash != body_hash:
        raise IdempotencyMismatch(
            f"Idempotency-Key {key!r} was already used for a different request"
        )
    return rec


def remember(
    session: Session, device_id: str, key: str, endpoint: str, body_hash: str, body: bytes
) -> None:
    session.add(
        IdempotencyRecord(
            device_id=device_id,
            key=key,
            endpoint=endpoint,
            request_hash=body_hash,
            status_code=200,
            body=body,
        )
    )


def _decision_seq(item: ResultItem) -> int:
    """The workstation's sequence number of this decision (0 when it sent none or a bad one)."""
    seq = item.summary.get("decision_seq")
    if isinstance(seq, int) and not isinstance(seq, bool) and 0 <= seq <= INT32_MAX:
        return seq
    return 0


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


def oldest_age_s(times: list[datetime]) -> float:
    return max(0.0, (utcnow() - min(aware(t) for t in times)).total_seconds())


def store_results(session: Session, device_id: str, batch: ResultsBatch) -> BatchResponse:
    """The hot path: backend.bulk, a few set-based statements per batch with the outcomes of
    :func:`store_results_orm` (tests/backend/test_bulk.py holds them equal)."""
    return bulk.store_results(session, device_id, batch)


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


def _alert(session: Session, device_id: str, code: str, detail: dict[str, object]) -> None:
    session.add(SecurityAlert(device_id=device_id, code=code, detail=detail))


def store_audit(session: Session, device_id: str, batch: AuditBatch) -> BatchResponse:
    """The hot path: backend.bulk, with the outcomes of :func:`store_audit_orm`."""
    return bulk.store_audit(session, device_id, batch)


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


def record_chain_alert(session: Session, device_id: str, err: ChainError) -> None:
    _alert(session, device_id, err.code, {"message": err.message, **err.data})
    session.commit()
