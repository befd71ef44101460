"""The sync outbox: rows written in the same transaction as the event or result they carry."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError
from sqlalchemy import Connection, func, literal_column, select, update

from core.store.schema import outbox
from core.sync.wire import AuditEventItem, ResultItem

if TYPE_CHECKING:
    from core.store.database import Database


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


#: What each kind of item must be on the wire: checked when it is queued, so a malformed item
#: fails the action that made it (and rolls back with it), not a sync pass hours later.
_SCHEMAS: dict[str, type[BaseModel]] = {"result": ResultItem, "audit": AuditEventItem}


class OutboxItemError(ValueError):
    """An item that the backend would refuse: its kind and the first problem."""


def check_item(kind: str, payload: dict[str, Any]) -> None:
    schema = _SCHEMAS.get(kind)
    if schema is None:
        raise OutboxItemError(f"unknown outbox item kind '{kind}' (result or audit)")
    try:
        schema.model_validate(payload)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "item"
        raise OutboxItemError(
            f"{kind} item not valid for the backend: '{where}': {first['msg']}"
        ) from None


def enqueue(
    conn: Connection, kind: str, payload: dict[str, Any], *, item_id: str | None = None
) -> str:
    """Queue one item inside the caller's transaction; its id is the idempotency key.
    Raises OutboxItemError for an item the wire schema refuses."""
    check_item(kind, payload)
    row_id = item_id or str(uuid.uuid4())
    conn.execute(
        outbox.insert().values(
            id=row_id, kind=kind, payload=json.dumps(payload), created_at=_now(), attempts=0
        )
    )
    return row_id


OUTBOX_INSERT_SQL = (
    "INSERT INTO outbox (id, kind, payload, created_at, attempts) VALUES (?, ?, ?, ?, 0)"
)


def outbox_rows(kind: str, items: Sequence[tuple[str, dict[str, Any]]]) -> list[tuple[str, ...]]:
    """Parameters of OUTBOX_INSERT_SQL for (id, payload) items (for DB-API executemany); each
    payload is checked against the wire schema first."""
    for _item_id, payload in items:
        check_item(kind, payload)
    now = _now()
    return [(item_id, kind, json.dumps(payload), now) for item_id, payload in items]


def enqueue_many(conn: Connection, kind: str, items: Sequence[tuple[str, dict[str, Any]]]) -> None:
    """Queue (id, payload) items in one executemany inside the caller's transaction."""
    if items:
        conn.exec_driver_sql(OUTBOX_INSERT_SQL, outbox_rows(kind, items))


@dataclass(frozen=True)
class OutboxItem:
    id: str
    kind: str
    payload: dict[str, Any]


class StoreOutbox:
    """The core.sync Outbox protocol over the encrypted database."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def fetch_unsent(self, limit: int) -> Sequence[OutboxItem]:
        """Oldest first, in insertion order: one group commit queues many events at the same
        created_at, and the backend takes audit events only in chain order."""
        with self.db.engine.connect() as conn:
            rows = conn.execute(
                select(outbox.c.id, outbox.c.kind, outbox.c.payload)
                .where(outbox.c.sent_at.is_(None))
                .order_by(outbox.c.created_at, literal_column("outbox.rowid"))
                .limit(limit)
            ).fetchall()
        return [OutboxItem(r.id, r.kind, json.loads(r.payload)) for r in rows]

    def mark_sent(self, ids: Sequence[str]) -> None:
        if ids:
            with self.db.transaction() as conn:
                conn.execute(
                    update(outbox).where(outbox.c.id.in_(list(ids))).values(sent_at=_now())
                )

    def mark_failed(self, ids: Sequence[str], error: str) -> None:
        """Count a failed attempt; the rows stay unsent and come back on the next pass."""
        if ids:
            with self.db.transaction() as conn:
                conn.execute(
                    update(outbox)
                    .where(outbox.c.id.in_(list(ids)))
                    .values(attempts=outbox.c.attempts + 1, last_error=error[:2000])
                )

    def count_unsent(self) -> int:
        with self.db.engine.connect() as conn:
            return int(
                conn.execute(
                    select(func.count()).select_from(outbox).where(outbox.c.sent_at.is_(None))
                ).scalar_one()
            )
