"""The sync hot path in bulk: a batch of results or audit events in a few set-based statements.

Same outcomes as the ORM path it replaces (``tests/backend/orm_reference.store_results_orm`` /
``store_audit_orm``, kept as the reference the parity tests compare against): the same
``stored``/``duplicates`` lists in item order, the same decision history, the same chain checks.
What changes is the cost: no ORM object, identity-map entry or unit-of-work flush per row.

Per results batch, only when it carries decisions: one SELECT of the decision history held for
those results, one ``INSERT .. ON CONFLICT DO NOTHING RETURNING`` for the new history rows, and
one SELECT of the stored results (their current decision). Then, for every batch: one
``INSERT .. ON CONFLICT DO NOTHING RETURNING`` for the new results (a row the database already
holds is not returned, so it is reported as a duplicate: duplicate detection is the insert
itself), an ``executemany`` UPDATE for changed decisions (when any), and one UPDATE of the
device's last sync. Per audit batch: the head, the held events it overlaps, one multi-row
INSERT, one UPDATE of the head.

The caller holds the per-device lock (``serialize_device``), so the results of one device are
written by one transaction at a time; the ON CONFLICT only makes a lost race harmless.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, TypeAdapter
from sqlalchemy import Table, select, text, update
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


def _fields(table: Table, model: type[BaseModel]) -> tuple[str, ...]:
    """The wire fields that are columns of ``table`` (the same names on both sides)."""
    return tuple(f for f in model.model_fields if f in table.c)


@functools.cache
def _recordset_sql(
    table: Table,
    model: type[BaseModel],
    consts: tuple[str, ...],
    ignore: bool,
    returning: tuple[str, ...],
) -> Any:
    """``INSERT .. SELECT FROM json_to_recordset(:rows)``: the whole batch as one JSON parameter,
    in a statement of constant size. (A multi-row VALUES of 200 rows x 12 columns is 2,400
    placeholders that psycopg parses afresh each time, caching only short queries: that was
    half the CPU of a batch; arrays per column spent a quarter in psycopg's Python array
    dumper. pydantic writes the JSON in Rust.)"""
    pg = postgresql.dialect()  # type: ignore[no-untyped-call]
    fields = _fields(table, model)
    names = ", ".join(f'"{c}"' for c in (*consts, *fields))
    values = ", ".join(
        [f"CAST(:{c} AS {table.c[c].type.compile(dialect=pg)})" for c in consts]
        + [f'r."{f}"' for f in fields]
    )
    shape = ", ".join(f'"{f}" {table.c[f].type.compile(dialect=pg)}' for f in fields)
    sql = (
        f"INSERT INTO {table.name} ({names}) SELECT {values} "
        f"FROM json_to_recordset(CAST(:rows AS json)) AS r({shape})"
    )
    if ignore:
        sql += " ON CONFLICT DO NOTHING"
    if returning:
        sql += " RETURNING " + ", ".join(f'"{c}"' for c in returning)
    return text(sql)


@functools.cache
def _list_adapter(model: type[BaseModel]) -> TypeAdapter[list[Any]]:
    return TypeAdapter(list[model])  # type: ignore[valid-type]


def _insert(
    session: Session,
    table: Table,
    items: Sequence[BaseModel],
    consts: dict[str, Any],
    ignore: bool = False,
    returning: tuple[str, ...] = (),
) -> list[Any]:
    """Insert one row per wire item (its fields that are columns, plus ``consts``) in one
    statement (``ignore``: ON CONFLICT DO NOTHING); the ``returning`` columns of the rows
    inserted. PostgreSQL: json_to_recordset; SQLite: a multi-row VALUES."""
    model = type(items[0])
    if session.get_bind().dialect.name == "postgresql":
        stmt = _recordset_sql(table, model, tuple(consts), ignore, returning)
        rows_json = _list_adapter(model).dump_json(list(items)).decode()
        result = session.execute(stmt, {**consts, "rows": rows_json})
    else:
        fields = _fields(table, model)
        rows = [{**consts, **{f: getattr(i, f) for f in fields}} for i in items]
        ins = sqlite.insert(table)
        if ignore:
            ins = ins.on_conflict_do_nothing()
        # RETURNING makes SQLAlchemy send one multi-row VALUES statement, not one per row
        result = session.execute(ins.returning(*(table.c[c] for c in returning or ("id",))), rows)
    if not returning:
        return []
    return list(result)


def _time_key(dialect: str) -> Any:
    """The identity of a stored time as the database sees it: PostgreSQL compares instants;
    SQLite stores the wall time without its offset (and hands it back naive)."""
    if dialect == "postgresql":
        return lambda dt: aware(dt).astimezone(UTC)
    return lambda dt: dt.replace(tzinfo=None)


class _Decision(BaseModel):
    """A row of the decision history as the insert sends it (``seq``: the workstation's
    ``decision_seq``, ``ingest._decision_seq``)."""

    client_id: str
    decision: str
    decided_at: datetime
    seq: int


def _supersedes(current: datetime | None, new: datetime, rival: int | None, seq: int) -> bool:
    """The rule of ``ingest._supersedes``: later by decision time, and in the same instant
    later in the workstation's sequence than every other decision of that instant."""
    if current is None or aware(current) < aware(new):
        return True
    if aware(current) > aware(new):
        return False
    return rival is None or rival < seq


def store_results(session: Session, device_id: str, batch: ResultsBatch) -> BatchResponse:
    """New results are stored; a decision on a known result (same client id, a ``decided_at``)
    is kept in the history and replaces the current one when it was made later. A replay of
    what is stored already is a duplicate. (The rules of ``orm_reference.store_results_orm``.)"""
    from backend.ingest import _decision_seq, serialize_device

    serialize_device(session, device_id)
    key = _time_key(session.get_bind().dialect.name)
    now = utcnow()
    consts = {"device_id": device_id, "received_at": now}
    decided = [(i, _decision_seq(i)) for i in batch.items if i.decided_at is not None]
    fresh: dict[tuple[str, Any, int], int] = {}  # decisions new to the history (a count)
    history: dict[tuple[str, Any], set[int]] = {}  # (client id, instant) -> sequences held
    known: dict[str, datetime | None] = {}  # stored result -> its current decision time
    if decided:
        ids = list({i.client_id for i, _ in decided})
        for c, t, q in session.execute(
            select(DECISIONS.c.client_id, DECISIONS.c.decided_at, DECISIONS.c.seq).where(
                DECISIONS.c.device_id == device_id, DECISIONS.c.client_id.in_(ids)
            )
        ):
            history.setdefault((c, key(t)), set()).add(q)
        rows = [
            _Decision.model_construct(
                client_id=i.client_id, decision=i.decision, decided_at=i.decided_at, seq=q
            )
            for i, q in decided
        ]
        returning = ("client_id", "decided_at", "seq")
        for c, t, q in _insert(session, DECISIONS, rows, consts, True, returning):
            fresh[(c, key(t), q)] = fresh.get((c, key(t), q), 0) + 1
        known = {
            c: t
            for c, t in session.execute(
                select(RESULTS.c.client_id, RESULTS.c.decided_at).where(
                    RESULTS.c.device_id == device_id, RESULTS.c.client_id.in_(ids)
                )
            )
        }
    pending: dict[str, ResultItem] = {}  # new in this batch, in item order
    changed: dict[str, tuple[str, datetime]] = {}  # stored results whose decision changes
    outcome: list[tuple[str, bool | None]] = []  # True stored, False duplicate, None: insert says
    for item in batch.items:
        cid, at = item.client_id, item.decided_at
        if at is not None and fresh.get(dk := (cid, key(at), _decision_seq(item)), 0) > 0:
            fresh[dk] -= 1
            seqs = history.setdefault((cid, key(at)), set())
            seqs.add(dk[2])
            rival = max((q for q in seqs if q != dk[2]), default=None)
            outcome.append((cid, True))
            if cid in pending:
                row = pending[cid]
                if _supersedes(row.decided_at, at, rival, dk[2]):
                    later = {"decision": item.decision, "decided_at": at}
                    pending[cid] = row.model_copy(update=later)
            elif cid in known:
                current = changed[cid][1] if cid in changed else known[cid]
                if _supersedes(current, at, rival, dk[2]):
                    changed[cid] = (item.decision, at)
            else:
                pending[cid] = item
        elif at is not None or cid in pending or cid in known:  # a replay
            outcome.append((cid, False))
        else:
            outcome.append((cid, None))
            pending[cid] = item
    inserted: set[str] = set()
    if pending:
        got = _insert(session, RESULTS, list(pending.values()), consts, True, ("client_id",))
        inserted = {c for (c,) in got}
    if changed:
        session.execute(
            update(RESULTS)
            .where(RESULTS.c.device_id == device_id, RESULTS.c.client_id == bindparam("cid"))
            .values(decision=bindparam("dec"), decided_at=bindparam("at")),
            [{"cid": c, "dec": d, "at": t} for c, (d, t) in changed.items()],
        )
    # a results-only sync is a sync too (IT's fleet view shows the last one)
    session.execute(
        update(DEVICES).where(DEVICES.c.device_id == device_id).values(last_sync_at=now)
    )
    stored = [c for c, ok in outcome if ok or (ok is None and c in inserted)]
    dups = [c for c, ok in outcome if ok is False or (ok is None and c not in inserted)]
    return BatchResponse(stored=stored, duplicates=dups)


def store_audit(session: Session, device_id: str, batch: AuditBatch) -> BatchResponse:
    """Accept events that extend the head; events already held must match hash for hash.
    (The rules of ``orm_reference.store_audit_orm``, raising the same ``ChainError``s.)"""
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
        rows.append(ev)
        stored.append(ev.event_id)
        head_index, head_hash = ev.index, ev.hash
    if rows:
        _insert(session, EVENTS, rows, {"device_id": device_id, "received_at": now})
    session.execute(
        update(DEVICES)
        .where(DEVICES.c.device_id == device_id)
        .values(head_index=head_index, head_hash=head_hash, last_sync_at=now)
    )
    return BatchResponse(
        stored=stored, duplicates=dups, head=ChainHead(index=head_index, hash=head_hash)
    )
