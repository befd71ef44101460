"""Bring the backend's database to the newest Alembic revision, safely from N processes at once.

Every process runs :func:`upgrade` at start (build_state through ``make_engine``) and
``doctorai-backend migrate`` runs it on demand. Two processes starting together on one database
must not both create the tables: on PostgreSQL the upgrade holds a transaction-scoped advisory
lock (DDL is transactional there, so the second process waits, then finds the head stamped);
on SQLite, a file lock beside the database file does the same.

A database made before migrations existed (``Base.metadata.create_all`` of the baseline's
db.py) has the tables but no ``alembic_version``: it is adopted by stamping the baseline,
keeping every row, and later revisions then run on it as on any other.
"""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import Connection, inspect, text
from sqlalchemy.engine import Engine

MIGRATIONS = Path(__file__).with_name("migrations")
BASELINE = "0001"
#: pg_advisory_xact_lock key shared by every backend process ("DAIMIGR" as an integer)
MIGRATION_LOCK_KEY = 0x4441494D494752


def _config(conn: Connection):  # type: ignore[no-untyped-def]  # alembic.config.Config
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = conn
    return config


def head_revision() -> str:
    """The newest revision in backend/migrations/versions (one head, or an error)."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    heads = ScriptDirectory.from_config(config).get_heads()
    if len(heads) != 1:
        raise RuntimeError(f"backend migrations have {len(heads)} heads {heads}: merge them")
    return str(heads[0])


def current_revision(engine: Engine) -> str | None:
    """The revision the database is stamped with (None: not under Alembic yet)."""
    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        row = conn.execute(text("SELECT version_num FROM alembic_version")).first()
        return str(row[0]) if row else None


@contextlib.contextmanager
def _sqlite_file_lock(engine: Engine) -> Iterator[None]:
    """An exclusive flock on ``<database>.migrate.lock`` (nothing to lock for :memory:)."""
    database = engine.url.database
    if not database or database == ":memory:":
        yield
        return
    lock_path = Path(database + ".migrate.lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _upgrade_on(conn: Connection, target: str) -> None:
    from alembic import command

    config = _config(conn)
    names = set(inspect(conn).get_table_names())
    if "alembic_version" not in names and "devices" in names:
        # made by create_all before migrations existed: its tables are the baseline's
        command.stamp(config, BASELINE)
    command.upgrade(config, target)


def upgrade(engine: Engine, target: str = "head") -> None:
    """Upgrade to ``target`` (idempotent; concurrent callers run it one at a time)."""
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": MIGRATION_LOCK_KEY})
            _upgrade_on(conn, target)
        return
    with _sqlite_file_lock(engine), engine.begin() as conn:
        _upgrade_on(conn, target)
