"""SQLite's stand-in for a row lock, written once: the backend's locking code calls it beside
its PostgreSQL lock (advisory or ``SELECT ... FOR UPDATE``)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import false, inspect, update
from sqlalchemy.orm import Session


def sqlite_write_lock(session: Session, model: Any) -> None:
    """On SQLite, take the database's write lock now, held until the transaction ends.

    SQLite has no row locks; a write statement that matches no row still takes the write lock,
    which other processes' writers wait for (busy timeout), so the reads that follow it in this
    transaction see the last committed state and nobody writes in between. Call it before the
    transaction's first read. Does nothing on other databases."""
    if session.get_bind().dialect.name != "sqlite":
        return
    key = inspect(model).primary_key[0]
    session.execute(update(model).where(false()).values({key.key: key}))
