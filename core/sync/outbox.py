"""What the sync engine needs from the outbox, and a plain-sqlite3 outbox for tests and tools.

The workstation's real outbox is a table in the encrypted audit database (``core.store``),
written in the same transaction as the result or audit event it carries. The engine only
knows this small protocol, so it runs unchanged against either implementation, and all sync
state lives in that table: a restarted workstation resumes from what is still unsent.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

Kind = Literal["audit", "result"]


class OutboxRow(Protocol):
    """One queued item: ``id`` is a uuid (the item's idempotency key); ``payload`` the wire item.

    ``payload`` is a JSON object (a dict, or its JSON text): a ``ResultItem`` for kind
    'result', an ``AuditEventItem`` for kind 'audit'.
    """

    @property
    def id(self) -> str: ...

    @property
    def kind(self) -> str: ...

    @property
    def payload(self) -> Mapping[str, Any] | str: ...


class Outbox(Protocol):
    """Rows come back oldest first, so audit events arrive in chain order."""

    def fetch_unsent(self, limit: int) -> Sequence[OutboxRow]: ...

    def mark_sent(self, ids: Sequence[str]) -> None: ...

    def mark_failed(self, ids: Sequence[str], error: str) -> None: ...

    def count_unsent(self) -> int: ...


def payload_dict(row: OutboxRow) -> dict[str, Any]:
    """The row's payload as a dict, whichever form the outbox stores it in."""
    raw = row.payload
    data = json.loads(raw) if isinstance(raw, str | bytes) else dict(raw)
    if not isinstance(data, dict):
        raise TypeError(f"outbox row {row.id!r}: payload is not a JSON object")
    return data


@dataclass(frozen=True)
class Row:
    id: str
    kind: str
    payload: dict[str, Any]


class SqliteOutbox:
    """An outbox table in a plain SQLite file (no encryption): tests, benchmarks, tools.

    Deliberately tiny: the production outbox lives in core.store's SQLCipher database.
    """

    def __init__(self, path: Path | str) -> None:
        self.path = str(path)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS outbox ("
            " seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE NOT NULL,"
            " kind TEXT NOT NULL, payload TEXT NOT NULL, sent INTEGER NOT NULL DEFAULT 0,"
            " attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT)"
        )

    def add(self, kind: Kind, payload: Mapping[str, Any], row_id: str | None = None) -> str:
        row_id = row_id or str(uuid.uuid4())
        self.add_many([(kind, payload, row_id)])
        return row_id

    def add_many(self, items: Sequence[tuple[Kind, Mapping[str, Any], str]]) -> None:
        with self._lock:
            self._db.execute("BEGIN")
            self._db.executemany(
                "INSERT INTO outbox (id, kind, payload) VALUES (?, ?, ?)",
                [(rid, kind, json.dumps(dict(p), sort_keys=True)) for kind, p, rid in items],
            )
            self._db.execute("COMMIT")

    def fetch_unsent(self, limit: int) -> list[Row]:
        with self._lock:
            cur = self._db.execute(
                "SELECT id, kind, payload FROM outbox WHERE sent = 0 ORDER BY seq LIMIT ?",
                (limit,),
            )
            return [Row(i, k, json.loads(p)) for i, k, p in cur.fetchall()]

    def mark_sent(self, ids: Sequence[str]) -> None:
        with self._lock:
            self._db.execute("BEGIN")
            self._db.executemany("UPDATE outbox SET sent = 1 WHERE id = ?", [(i,) for i in ids])
            self._db.execute("COMMIT")

    def mark_failed(self, ids: Sequence[str], error: str) -> None:
        with self._lock:
            self._db.execute("BEGIN")
            self._db.executemany(
                "UPDATE outbox SET attempts = attempts + 1, last_error = ? WHERE id = ?",
                [(error, i) for i in ids],
            )
            self._db.execute("COMMIT")

    def count_unsent(self) -> int:
        with self._lock:
            (n,) = self._db.execute("SELECT COUNT(*) FROM outbox WHERE sent = 0").fetchone()
            return int(n)

    def last_error(self, row_id: str) -> str | None:
        with self._lock:
            got = self._db.execute(
                "SELECT last_error FROM outbox WHERE id = ?", (row_id,)
            ).fetchone()
        return None if got is None else got[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()
