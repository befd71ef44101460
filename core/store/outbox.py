"""The sync outbox: rows written in the same transaction as the event or result they carry."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, func, literal_column, select, update

from core.store.schema import outbox

if TYPE_CHECKING:
    from core.store.database import Database


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def enqueue(
    conn: Connection, kind: str, payload: dict[str, Any], *, item_id: str | None = None
) -> str:
    """Queue one item inside the caller's transaction; its id is the idempotency key."""
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
    """Parameters of OUTBOX_INSERT_SQL for (id, payload) items (for DB-API executemany)."""
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
