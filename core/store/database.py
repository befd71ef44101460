"""Open the profile's SQLCipher database through SQLAlchemy, migrated to the current schema.

SQLCipher 4 (the ``sqlcipher3`` wheel) encrypts every page with AES-256 and authenticates it
with an HMAC, so a copied disk reveals nothing and a flipped byte is noticed. WAL with
synchronous=FULL makes every committed transaction durable. Each transaction starts with
BEGIN IMMEDIATE so writers (threads or processes) serialise cleanly instead of failing late.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlcipher3
from sqlalchemy import Connection, Engine, create_engine, event, select, text
from sqlalchemy.exc import DatabaseError as SADatabaseError
from sqlalchemy.pool import QueuePool

from core.paths import profile_dir
from core.store.errors import DatabaseCorruptError, WrongKeyError
from core.store.keys import get_or_create_key
from core.store.schema import properties

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def _connect(path: Path, key: str) -> Any:
    con = sqlcipher3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=30)
    con.execute(f"PRAGMA key = \"x'{key}'\"")
    return con


def _check_key(path: Path, key: str) -> None:
    """Read the schema with the key before anything writes to the file."""
    existed = path.exists()
    con = _connect(path, key)
    try:
        con.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlcipher3.DatabaseError as exc:
        if existed and "not a database" in str(exc):
            raise WrongKeyError(path, "the key in the OS keyring does not decrypt it") from exc
        raise DatabaseCorruptError(path, str(exc)) from exc
    finally:
        con.close()


class Database:
    """The open database: an SQLAlchemy engine plus the profile's workstation id."""

    def __init__(self, path: Path, engine: Engine) -> None:
        self.path = path
        self.engine = engine
        self.workstation_id = self._workstation_id()

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """One durable write transaction (BEGIN IMMEDIATE ... COMMIT)."""
        with self.engine.begin() as conn:
            yield conn

    def _workstation_id(self) -> str:
        with self.transaction() as conn:
            row = conn.execute(
                select(properties.c.value).where(properties.c.key == "workstation_id")
            )
            value = row.scalar_one_or_none()
            if value is None:
                value = f"ws-{uuid.uuid4()}"
                conn.execute(properties.insert().values(key="workstation_id", value=value))
            return str(value)

    def integrity_check(self) -> list[str]:
        """Problems found by SQLite's integrity_check and SQLCipher's page HMAC check."""
        problems: list[str] = []
        with self.engine.connect() as conn:
            for pragma in ("integrity_check", "cipher_integrity_check"):
                try:
                    rows = [str(r[0]) for r in conn.exec_driver_sql(f"PRAGMA {pragma}")]
                except (SADatabaseError, sqlcipher3.DatabaseError) as exc:
                    problems.append(f"{pragma}: {exc}")  # a page failing its HMAC aborts it
                    continue
                problems += [f"{pragma}: {r}" for r in rows if r != "ok"]
        return problems

    def close(self) -> None:
        self.engine.dispose()


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest Alembic revision (idempotent)."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "head")


#: WAL pages after which a commit also checkpoints (SQLite's default, stated so it is kept):
#: measured in benchmarks/bench_audit.py, the occasional checkpoint is not an append stall.
WAL_AUTOCHECKPOINT_PAGES = 1000


def build_engine(creator: Callable[[], Any]) -> Engine:
    """A pooled engine whose connections run in WAL with synchronous=FULL and whose
    transactions start with BEGIN IMMEDIATE. ``creator`` makes one DB-API connection (opened
    with isolation_level=None); the benchmark gives plain sqlite3 here for its baseline."""
    engine = create_engine(
        "sqlite://", creator=creator, poolclass=QueuePool, pool_size=4, max_overflow=4
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_con: Any, _record: Any) -> None:
        dbapi_con.execute("PRAGMA journal_mode = WAL")
        dbapi_con.execute("PRAGMA synchronous = FULL")  # every COMMIT waits for the disk
        dbapi_con.execute(f"PRAGMA wal_autocheckpoint = {WAL_AUTOCHECKPOINT_PAGES}")
        dbapi_con.execute("PRAGMA foreign_keys = ON")

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def open_database(path: Path | None = None) -> Database:
    """Open (creating on first run) the encrypted database; never falls back to plaintext."""
    db_path = (path or profile_dir() / "doctorai.db").resolve()
    key = get_or_create_key(db_path)
    _check_key(db_path, key)
    engine = build_engine(lambda: _connect(db_path, key))
    try:
        migrate(engine)
        return Database(db_path, engine)
    except SADatabaseError as exc:
        engine.dispose()
        raise DatabaseCorruptError(db_path, str(exc.orig)) from exc


def set_property(conn: Connection, key: str, value: str) -> None:
    conn.execute(
        text("INSERT OR REPLACE INTO properties (key, value) VALUES (:k, :v)"),
        {"k": key, "v": value},
    )
