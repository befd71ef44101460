"""Storing result and audit batches exactly once, and anchoring each workstation's audit chain.

Idempotency has two layers: the Idempotency-Key of a request (a replay gets the first answer's
bytes back), and the client id of every item (unique per device, so an item re-sent inside a
different batch is reported as a duplicate and not stored twice).
"""

from __future__ import annotations

import hashlib
from datetime import datetime

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from backend import bulk
from backend.auth import aware
from backend.db import (
    Device,
    IdempotencyRecord,
    SecurityAlert,
    utcnow,
)
from backend.db_lock import sqlite_write_lock
from backend.storable import INT32_MAX
from core.sync.wire import (
    AuditBatch,
    BatchResponse,
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
    else:
        sqlite_write_lock(session, Device)
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


def oldest_age_s(times: list[datetime]) -> float:
    return max(0.0, (utcnow() - min(aware(t) for t in times)).total_seconds())


def store_results(session: Session, device_id: str, batch: ResultsBatch) -> BatchResponse:
    """New results are stored; a decision on a known result (same client id, a ``decided_at``)
    is kept in the history and replaces the current one when it was made later (by decision
    time, then the workstation's ``decision_seq``). A replay of what is stored already is a
    duplicate. backend.bulk: a few set-based statements per batch; the per-row reference of
    the same rules is tests/backend/orm_reference.py (tests/backend/test_bulk.py holds them
    equal)."""
    return bulk.store_results(session, device_id, batch)


def _alert(session: Session, device_id: str, code: str, detail: dict[str, object]) -> None:
    session.add(SecurityAlert(device_id=device_id, code=code, detail=detail))


def store_audit(session: Session, device_id: str, batch: AuditBatch) -> BatchResponse:
    """Accept events that extend the device's chain head; events already held must match hash
    for hash (else a fork, :class:`ChainError`). backend.bulk; per-row reference:
    tests/backend/orm_reference.py."""
    return bulk.store_audit(session, device_id, batch)


def record_chain_alert(session: Session, device_id: str, err: ChainError) -> None:
    _alert(session, device_id, err.code, {"message": err.message, **err.data})
    session.commit()
