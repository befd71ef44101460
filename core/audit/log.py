"""The append-only audit trail. There is deliberately no update or delete in this API.

Appends are serialised (group commit in-process, BEGIN IMMEDIATE across processes) so the chain
stays linear; each append also queues the event for the central backend in the same transaction.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, select
from sqlalchemy.exc import DBAPIError

from core.audit.chain import GENESIS_HASH, canonical, chain_hash
from core.audit.chain_key import ChainKey, create_chain_key, read_chain_key
from core.audit.group_commit import GroupCommit
from core.audit.head_record import (
    HeadComparison,
    HeadRecorder,
    compare,
    head_key,
    read_head,
)
from core.audit.vocabulary import EventType, Outcome
from core.store.database import (
    READ_ERRORS,
    Database,
    StorageCheck,
    commit_notes,
    quiet_sqlcipher,
)
from core.store.outbox import OUTBOX_INSERT_SQL, enqueue_many, outbox_rows
from core.store.schema import audit_events


@dataclass(frozen=True)
class AuditObject:
    """A participant object: what the event touched (PS3.15 ParticipantObjectIdentification)."""

    kind: str  # patient | study | series | instance | model | file | user | audit-log | result
    id: str
    name: str = ""  # e.g. the patient's name; stored encrypted, never sent upstream

    def as_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "id": self.id, "name": self.name}


@dataclass(frozen=True)
class AuditEvent:
    event_type: EventType
    user: str
    role: str = ""
    outcome: Outcome = Outcome.SUCCESS
    objects: Sequence[AuditObject] = ()
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StoredEvent:
    index: int
    event_id: str
    created_at: str
    user: str
    role: str
    workstation: str
    event_type: EventType
    outcome: int
    objects: list[dict[str, str]]
    details: dict[str, Any]
    prev_hash: str
    hash: str

    def content(self) -> dict[str, Any]:
        """What the hash covers."""
        return _content(
            self.index,
            self.event_id,
            self.created_at,
            self.user,
            self.role,
            self.workstation,
            self.event_type.name,
            self.outcome,
            self.objects,
            self.details,
        )


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    checked: int
    first_bad_index: int | None = None
    reason: str = ""


CHAIN_CHECK = "hash chain"
HEAD_CHECK = "recorded head"
_NO_HEAD = HeadComparison(True, "not compared")


@dataclass(frozen=True)
class TrailCheck:
    """``doctorai audit verify`` and the viewer's Verify: the hash chain over the audit rows
    plus the file's own checks (page HMACs, SQLite integrity), each reported by name."""

    chain: VerifyResult
    storage: tuple[StorageCheck, ...]
    head: HeadComparison = _NO_HEAD  # against the head recorded in the keyring

    @property
    def ok(self) -> bool:
        return self.chain.ok and self.head.ok and all(c.ok for c in self.storage)

    @property
    def checked(self) -> int:
        return self.chain.checked

    @property
    def first_bad_index(self) -> int | None:
        return self.chain.first_bad_index

    def chain_line(self) -> str:
        if self.chain.ok:
            return f"{CHAIN_CHECK}: ok ({self.chain.checked} events, chain intact)"
        if self.chain.first_bad_index is None:
            return f"{CHAIN_CHECK}: {self.chain.reason}"
        return f"{CHAIN_CHECK}: TAMPERED at index {self.chain.first_bad_index}: {self.chain.reason}"

    def lines(self) -> list[tuple[bool, str]]:
        """(ok, "name: what it found") per check, the chain first."""
        head = (self.head.ok, f"{HEAD_CHECK}: {'ok, ' if self.head.ok else ''}{self.head.reason}")
        return [(self.chain.ok, self.chain_line()), head] + [(c.ok, str(c)) for c in self.storage]

    def failed(self) -> list[str]:
        """The names of the checks that failed."""
        names = [] if self.chain.ok else [CHAIN_CHECK]
        names += [] if self.head.ok else [HEAD_CHECK]
        return names + [c.name for c in self.storage if not c.ok]


def _content(
    index: int,
    event_id: str,
    created_at: str,
    user: str,
    role: str,
    workstation: str,
    type_name: str,
    outcome: int,
    objects: list[dict[str, str]],
    details: dict[str, Any],
) -> dict[str, Any]:
    return {
        "index": index,
        "event_id": event_id,
        "created_at": created_at,
        "user": user,
        "role": role,
        "workstation": workstation,
        "type": type_name,
        "outcome": outcome,
        "objects": objects,
        "details": details,
    }


def _row_to_event(row: Any) -> StoredEvent:
    return StoredEvent(
        index=row.idx,
        event_id=row.event_id,
        created_at=row.created_at,
        user=row.user,
        role=row.role,
        workstation=row.workstation,
        event_type=EventType[row.event_type],
        outcome=row.outcome,
        objects=json.loads(row.objects),
        details=json.loads(row.details),
        prev_hash=row.prev_hash,
        hash=row.hash,
    )


def _wire_payload(event: StoredEvent, objects_canonical: str | None = None) -> dict[str, Any]:
    """What the backend receives: the chain links and no patient data (a digest of the objects).

    ``objects_canonical`` is canonical(event.objects) when the caller has it already."""
    objects = canonical(event.objects) if objects_canonical is None else objects_canonical
    digest = hashlib.sha256(f'{{"objects":{objects}}}'.encode()).hexdigest()  # canonical form
    return {
        "event_id": event.event_id,
        "index": event.index,
        "prev_hash": event.prev_hash,
        "hash": event.hash,
        "created_at": event.created_at,
        "type": event.event_type.name,
        "actor": event.user,
        "data": {
            "outcome": event.outcome,
            "role": event.role,
            "workstation": event.workstation,
            "objects_digest": digest,
        },
    }


@dataclass(frozen=True)
class _Prepared:
    """An event checked and serialised in the caller's thread, before it joins a batch.

    ``details`` is the JSON round trip of the caller's dict, so the hash covers exactly what
    ``verify`` will read back (tuples become lists, keys strings); a value JSON cannot store
    fails here, for this caller only, instead of failing a whole group-commit batch.
    """

    event: AuditEvent
    event_id: str
    objects: list[dict[str, str]]
    details: dict[str, Any]
    objects_json: str
    details_json: str


def _time_ordered_id() -> str:
    """A UUIDv7 (RFC 9562: 48-bit Unix milliseconds, then random bits) as text.

    Ids that grow with time make the event_id and outbox primary-key indexes append to their
    last page; random uuid4 ids dirtied one random B-tree page per event in each index, which
    on this disk made group commits write-bandwidth bound. Written here because Python 3.11's
    uuid module has no uuid7."""
    value = (time.time_ns() // 1_000_000 & (1 << 48) - 1) << 80 | secrets.randbits(80)
    value = value & ~(0xF << 76) | 0x7 << 76  # version 7
    value = value & ~(0x3 << 62) | 0x2 << 62  # RFC variant
    return str(uuid.UUID(int=value))


_JSON = json.JSONEncoder(ensure_ascii=False)  # built once: json.dumps(...) builds one per call


def _prepare(event: AuditEvent) -> _Prepared:
    objects = [o.as_dict() for o in event.objects]
    details: dict[str, Any] = {}
    details_json = "{}"
    if event.details:
        try:
            details_json = _JSON.encode(event.details)
        except (TypeError, ValueError) as exc:
            raise ValueError(
                f"audit event {event.event_type.name}: details are not JSON-serialisable ({exc})"
            ) from exc
        details = json.loads(details_json)
    objects_json = canonical(objects)  # also the wire digest's input; readers use json.loads
    return _Prepared(event, _time_ordered_id(), objects, details, objects_json, details_json)


_COLUMNS = (
    "idx, event_id, created_at, user, role, workstation, event_type, outcome, objects, details,"
    " prev_hash, hash"
)
_INSERT_SQL = f"INSERT INTO audit_events ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)"
_LAST_SQL = "SELECT idx, hash FROM audit_events ORDER BY idx DESC LIMIT 1"
_HEAD_KEY = "audit_head"  # in commit_notes: the head a caller's transaction moved
_Batch = tuple[Sequence[_Prepared], bool]  # (events of one caller, queue them for sync?)

#: Most events written in one group-commit transaction (a larger append_many is not split).
MAX_BATCH_EVENTS = 1000


class AuditLog:
    """Append, read, verify. One instance per database, shared by all threads.

    Concurrent ``append`` calls without ``conn`` are group-committed: one transaction and one
    fsync for all events queued meanwhile, each caller returning once its own event is durable.
    The chain stays linear because every batch reads the head inside its BEGIN IMMEDIATE
    transaction (which also serialises against other processes).
    """

    def __init__(self, db: Database) -> None:
        self.db = db
        self._group: GroupCommit[_Batch, list[StoredEvent]] = GroupCommit(
            self._commit_batches, MAX_BATCH_EVENTS
        )
        self.chain_key, head_secret, head_key_made = self._keys()
        # the head, also kept outside the database
        self.head_record = HeadRecorder(db.path, head_secret)
        db.after_commit.append(self._after_commit)
        db.before_close.append(self.head_record.close)
        if head_key_made:  # a trail from before head records: start from here
            index, digest = self.chain_head()
            if index >= 0:
                self.head_record.start_at(index, digest)

    def _keys(self) -> tuple[ChainKey, bytes | None, bool]:
        """The chain key, the head key and whether the head key was made just now. A missing
        key is made under the write lock (BEGIN IMMEDIATE): one process makes it, any other
        opening the trail at the same moment then reads it (two keys would make each other's
        links and head records look forged). The chain is keyed from the next event on."""
        path = self.db.path
        chain = read_chain_key(path)
        head, _made = head_key(path, create=False)
        if chain is not None and head is not None:
            return chain, head, False
        with self.db.transaction() as conn:
            chain = read_chain_key(path)
            if chain is None:
                last = conn.exec_driver_sql(_LAST_SQL).first()
                chain = create_chain_key(path, last[0] + 1 if last else 0)
            head, made = head_key(path, create=True)
        return chain, head, made

    def _after_commit(self, info: dict[Any, Any]) -> None:
        head = info.get(_HEAD_KEY)
        if head is not None:
            self.head_record.note(*head)

    @property
    def group_stats(self) -> tuple[int, int]:
        """(transactions, events) written through group commit so far by this instance."""
        return self._group.batches, self._group.items

    def append(
        self, event: AuditEvent, *, conn: Connection | None = None, sync: bool = True
    ) -> StoredEvent:
        """Write one event: durable when this returns (or, with ``conn``, when the caller's
        transaction commits - the event then joins that transaction, all or nothing).

        Without ``conn``, never call this while the same thread holds an open write
        transaction: the group's BEGIN IMMEDIATE would wait for that thread's own lock."""
        return self.append_many([event], conn=conn, sync=sync)[0]

    def append_many(
        self, events: Sequence[AuditEvent], *, conn: Connection | None = None, sync: bool = True
    ) -> list[StoredEvent]:
        """Write several events atomically and contiguously in the chain (e.g. a study import):
        all durable when this returns, or none written. Same ``conn`` rule as ``append``."""
        prepared = [_prepare(e) for e in events]
        if not prepared:
            return []
        batches: list[_Batch] = [(prepared, sync)]
        if conn is not None:  # the caller's BEGIN IMMEDIATE transaction already serialises
            last = conn.exec_driver_sql(_LAST_SQL).first()
            out, rows, queued = self._chain(tuple(last) if last else None, batches)
            conn.exec_driver_sql(_INSERT_SQL, rows)  # a list: executemany
            enqueue_many(conn, "audit", queued)
            newest = out[0][-1]
            commit_notes(conn)[_HEAD_KEY] = (newest.index, newest.hash)  # once committed
            return out[0]
        return self._group.submit((prepared, sync), len(prepared))

    def _commit_batches(self, batches: Sequence[_Batch]) -> list[list[StoredEvent]]:
        """One BEGIN IMMEDIATE ... COMMIT for a whole group (COMMIT fsyncs: synchronous=FULL).

        Straight on the pooled DB-API connection: SQLAlchemy's per-statement bookkeeping costs
        about as much as the statements of a small batch themselves, on the hottest path."""
        raw = self.db.engine.raw_connection()
        dbapi_error: type[Exception] = raw.driver_connection.Error  # type: ignore[union-attr]
        statement = "BEGIN IMMEDIATE"
        try:
            cursor = raw.cursor()
            cursor.execute(statement)
            statement = _LAST_SQL
            out, rows, queued = self._chain(cursor.execute(statement).fetchone(), batches)
            statement = _INSERT_SQL
            cursor.executemany(statement, rows)
            if queued:
                statement = OUTBOX_INSERT_SQL
                cursor.executemany(statement, outbox_rows("audit", queued))
            statement = "COMMIT"
            cursor.execute(statement)
        except dbapi_error as exc:  # the same exception types as the SQLAlchemy paths raise
            raw.rollback()  # a no-op when there is no open transaction
            raise DBAPIError.instance(statement, None, exc, dbapi_error) from exc
        except BaseException:
            raw.rollback()
            raise
        else:
            newest = out[-1][-1]
            self.head_record.note(newest.index, newest.hash)
            return out
        finally:
            raw.close()  # back to the pool

    def _chain(
        self, head: tuple[int, str] | None, batches: Sequence[_Batch]
    ) -> tuple[list[list[StoredEvent]], list[tuple[Any, ...]], list[tuple[str, dict[str, Any]]]]:
        """Link the batches' events after ``head``, in order: the stored events per batch, the
        audit rows to insert and the (id, payload) items to queue for sync. No I/O here."""
        index, prev = (head[0] + 1, head[1]) if head else (0, GENESIS_HASH)
        ws = self.db.workstation_id
        key, keyed_from = self.chain_key.key, self.chain_key.keyed_from
        rows: list[tuple[Any, ...]] = []
        queued: list[tuple[str, dict[str, Any]]] = []
        out: list[list[StoredEvent]] = []
        for prepared, sync in batches:
            stored_events: list[StoredEvent] = []
            for p in prepared:
                e = p.event
                created = datetime.now(UTC).isoformat(timespec="microseconds")
                outcome = int(e.outcome)
                content = _content(
                    index, p.event_id, created, e.user, e.role, ws, e.event_type.name,
                    outcome, p.objects, p.details,
                )  # fmt: skip
                digest = chain_hash(prev, content, key if index >= keyed_from else b"")
                stored = StoredEvent(
                    index, p.event_id, created, e.user, e.role, ws, e.event_type,
                    outcome, p.objects, p.details, prev, digest,
                )  # fmt: skip
                rows.append(
                    (
                        index, p.event_id, created, e.user, e.role, ws, e.event_type.name,
                        outcome, p.objects_json, p.details_json, prev, digest,
                    )
                )  # fmt: skip
                if sync:
                    queued.append((p.event_id, _wire_payload(stored, p.objects_json)))
                stored_events.append(stored)
                index, prev = index + 1, digest
            out.append(stored_events)
        return out, rows, queued

    def chain_head(self) -> tuple[int, str]:
        """(index, hash) of the newest event; (-1, genesis) for an empty trail."""
        with self.db.engine.connect() as conn:
            last = conn.execute(
                select(audit_events.c.idx, audit_events.c.hash)
                .order_by(audit_events.c.idx.desc())
                .limit(1)
            ).first()
        return (last.idx, last.hash) if last else (-1, GENESIS_HASH)

    def iter_events(
        self,
        *,
        since: str | None = None,
        user: str | None = None,
        event_type: EventType | None = None,
        patient: str | None = None,
        until: str | None = None,
    ) -> Iterator[StoredEvent]:
        query = select(audit_events).order_by(audit_events.c.idx)
        if since:
            query = query.where(audit_events.c.created_at >= since)
        if until:
            query = query.where(audit_events.c.created_at <= until)
        if user:
            query = query.where(audit_events.c.user == user)
        if event_type:
            query = query.where(audit_events.c.event_type == event_type.name)
        with self.db.engine.connect() as conn:
            rows = conn.execute(query).fetchall()
        for row in rows:
            event = _row_to_event(row)
            if patient and not any(
                o["kind"] == "patient" and patient in (o["id"], o["name"]) for o in event.objects
            ):
                continue
            yield event

    def check(self) -> TrailCheck:
        """Everything ``verify`` checks plus SQLCipher's page HMAC check and SQLite's
        integrity check over the whole file: pages outside the audit rows count too."""
        storage = tuple(self.db.check_storage())
        try:
            with quiet_sqlcipher():
                chain = self.verify()
        except READ_ERRORS as exc:  # an audit page that fails its HMAC cannot be read at all
            reason = getattr(exc, "orig", None) or exc
            chain = VerifyResult(False, 0, None, f"the audit rows cannot be read ({reason})")
        try:
            with quiet_sqlcipher():
                head = self.compare_head()
        except READ_ERRORS as exc:
            reason = getattr(exc, "orig", None) or exc
            head = HeadComparison(False, f"the database's head cannot be read ({reason})")
        return TrailCheck(chain, storage, head)

    def compare_head(self) -> HeadComparison:
        """This database's head against the one recorded outside it (a missing tail, an older
        copy, a rewritten history, a forged or deleted head record)."""
        self.head_record.flush()
        recorded = read_head(self.db.path)
        head = self.chain_head()
        hash_at: dict[int, str] = {}
        if isinstance(recorded, tuple):
            with self.db.engine.connect() as conn:
                row = conn.execute(
                    select(audit_events.c.hash).where(audit_events.c.idx == recorded[0])
                ).first()
            if row is not None:
                hash_at[recorded[0]] = row.hash
        # a record is due once this profile has a head key and its trail has events
        expected = self.head_record.key is not None and head[0] >= 0
        return compare(recorded, head, hash_at, expected=expected)

    def verify(self) -> VerifyResult:
        """Walk the chain; name the first index whose row was changed, removed, moved or added."""
        expected_index, prev = 0, GENESIS_HASH
        key, keyed_from = self.chain_key.key, self.chain_key.keyed_from
        with self.db.engine.connect() as conn:
            rows = conn.execute(select(audit_events).order_by(audit_events.c.idx))
            for row in rows:
                if row.idx != expected_index:
                    return VerifyResult(
                        False,
                        expected_index,
                        expected_index,
                        f"expected index {expected_index}, found {row.idx} "
                        "(an event was deleted or inserted)",
                    )
                try:
                    event = _row_to_event(row)
                except (KeyError, ValueError) as exc:
                    return VerifyResult(False, expected_index, row.idx, f"unreadable row: {exc}")
                if row.prev_hash != prev:
                    return VerifyResult(
                        False,
                        expected_index,
                        row.idx,
                        "prev_hash does not match the previous event's hash",
                    )
                keyed = row.idx >= keyed_from
                if chain_hash(prev, event.content(), key if keyed else b"") != row.hash:
                    return VerifyResult(
                        False,
                        expected_index,
                        row.idx,
                        "content does not match its MAC under the chain key (the row was "
                        "changed, or re-chained without the key)"
                        if keyed
                        else "content does not match its hash (the row was changed)",
                    )
                prev = row.hash
                expected_index += 1
        return VerifyResult(True, expected_index)
