"""Open the profile's SQLCipher database through SQLAlchemy, migrated to the current schema.

SQLCipher 4 (the ``sqlcipher3`` wheel) encrypts every page with AES-256 and authenticates it
with an HMAC, so a copied disk reveals nothing and a flipped byte is noticed. WAL with
synchronous=FULL makes every committed transaction durable. Each transaction starts with
BEGIN IMMEDIATE so writers (threads or processes) serialise cleanly instead of failing late.
"""

from __future__ import annotations

import re
import secrets
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlcipher3
from sqlalchemy import Connection, Engine, create_engine, event, select, text
from sqlalchemy.exc import DatabaseError as SADatabaseError
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import QueuePool

from core.paths import make_private, profile_dir
from core.store.errors import (
    DatabaseCorruptError,
    DatabaseError,
    WrongKeyError,
    explain_store_error,
)
from core.store.keys import get_or_create_key
from core.store.schema import properties

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def _connect(path: Path, key: str) -> Any:
    """An SQLCipher connection keyed with ``key``, refused when SQLCipher is not what answers.

    A library that carries a plain SQLite (TensorFlow does) and is loaded before the sqlcipher3
    extension takes its place: ``PRAGMA key`` is then silently ignored, a new database would be
    written in clear and an existing one reads as "not a database". The adapters load
    sqlcipher3 first (models.adapters.keras_adapter); this check fails closed for any other
    path (a benchmark importing TensorFlow first showed it)."""
    con = sqlcipher3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=30)
    row = con.execute("PRAGMA cipher_version").fetchone()
    if not row or not row[0]:
        con.close()
        raise DatabaseError(
            path,
            "SQLCipher is not active in this process: a plain SQLite loaded by another library "
            "(e.g. TensorFlow imported before the database module) answers instead, and it "
            "would store the data unencrypted; nothing was opened or written",
        )
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
            raise _first_page_or_key(path, key) from exc
        raise explain_store_error(path, exc) from exc
    finally:
        con.close()


def _first_page_or_key(path: Path, key: str) -> DatabaseError:
    """The key does not open the file: a wrong key fails every page's HMAC, a damaged first
    page (the header and schema) only that one. Told apart by SQLCipher's own page check."""
    con = _connect(path, key)
    try:
        with quiet_sqlcipher():
            failed = {
                int(m.group(1))
                for (row,) in con.execute("PRAGMA cipher_integrity_check")
                if (m := _FAILED_PAGE.search(str(row)))
            }
        pages = max(1, path.stat().st_size // 4096)
    except (sqlcipher3.DatabaseError, OSError):
        failed, pages = set(), 0
    finally:
        con.close()
    if failed and len(failed) < pages:
        return DatabaseCorruptError(
            path,
            f"its first page (the header and table list) is damaged: {len(failed)} of {pages} "
            f"pages fail their HMAC (first: page {min(failed)}), the others open with the "
            "keyring's key, so the key is right",
        )
    return WrongKeyError(path, "the key in the OS keyring does not decrypt it")


#: What reading a damaged page raises: SQLAlchemy wraps only the sqlite3 module's errors (the
#: "sqlite://" dialect's DB-API), so sqlcipher3's own escape some statements unwrapped.
READ_ERRORS: tuple[type[Exception], ...] = (SADatabaseError, sqlcipher3.DatabaseError)
#: What any use of the database may raise (a failed write too), wrapped or not by SQLAlchemy.
STORE_ERRORS: tuple[type[Exception], ...] = (SQLAlchemyError, sqlcipher3.DatabaseError)

PAGE_HMAC_CHECK = "page HMAC check"
SQLITE_INTEGRITY_CHECK = "SQLite integrity check"
_FAILED_PAGE = re.compile(r"HMAC verification failed for page (\d+)")
_TREE = re.compile(r"^Tree (\d+) ")
_MAX_PROBLEM_CHARS = 200  # one problem as quoted in a summary line
_SQLITE_MAX_ERRORS = 100  # PRAGMA integrity_check stops after this many


@dataclass(frozen=True)
class StorageCheck:
    """What one of the file's own checks found: SQLCipher's page HMAC check (every page of
    the file still carries the HMAC it was written with) or SQLite's integrity check (the
    B-trees, indexes and free list are consistent). Independent of the audit hash chain: a
    damaged page that holds no audit row fails here while the chain still verifies."""

    name: str  # PAGE_HMAC_CHECK | SQLITE_INTEGRITY_CHECK
    problems: tuple[str, ...] = ()
    summary: str = "ok"  # e.g. "3 pages fail (first: page 12)"
    failed_pages: tuple[int, ...] = ()  # page HMAC check: the pages whose HMAC fails

    @property
    def ok(self) -> bool:
        return not self.problems

    def __str__(self) -> str:
        return f"{self.name}: {self.summary}"


def _short(problem: str) -> str:
    problem = " ".join(problem.split())
    return problem if len(problem) <= _MAX_PROBLEM_CHARS else problem[:_MAX_PROBLEM_CHARS] + "…"


def _page_hmac_check(conn: Connection) -> StorageCheck:
    try:
        rows = [str(r[0]) for r in conn.exec_driver_sql("PRAGMA cipher_integrity_check")]
        pages = conn.exec_driver_sql("PRAGMA page_count").scalar()
    except READ_ERRORS as exc:
        problem = f"the check could not run ({getattr(exc, 'orig', None) or exc})"
        return StorageCheck(PAGE_HMAC_CHECK, (problem,), problem)
    if not rows:
        return StorageCheck(PAGE_HMAC_CHECK, summary=f"ok ({pages} pages)")
    failed = tuple(int(m.group(1)) for r in rows if (m := _FAILED_PAGE.search(r)))
    others = [r for r in rows if not _FAILED_PAGE.search(r)]
    parts = []
    if failed:
        noun = "page fails" if len(failed) == 1 else "pages fail"
        parts.append(f"{len(failed)} {noun} (first: page {failed[0]})")
    if others:
        parts.append(
            f"{_short(others[0])}" + (f" (and {len(others) - 1} more)" if len(others) > 1 else "")
        )
    return StorageCheck(PAGE_HMAC_CHECK, tuple(rows), "; ".join(parts), failed)


def _sqlite_integrity_check(conn: Connection) -> StorageCheck:
    try:  # read before the check: a page failing its HMAC can poison later reads
        tables = {
            int(root): f"{kind} {name}"
            for kind, name, root in conn.exec_driver_sql(
                "SELECT type, name, rootpage FROM sqlite_master WHERE rootpage > 0"
            )
        }
    except READ_ERRORS:
        tables = {}
    try:
        rows = [str(r[0]) for r in conn.exec_driver_sql("PRAGMA integrity_check")]
    except READ_ERRORS as exc:
        problem = f"the check could not run ({getattr(exc, 'orig', None) or exc})"
        return StorageCheck(SQLITE_INTEGRITY_CHECK, (problem,), problem)
    problems = [
        line.strip()
        for row in rows
        for line in row.splitlines()
        if line.strip() and line.strip() != "ok" and not line.startswith("***")
    ]
    if not problems:
        return StorageCheck(SQLITE_INTEGRITY_CHECK)

    def named(problem: str) -> str:  # "Tree 3 page 9: ..." -> "Tree 3 (table users) page 9: ..."
        m = _TREE.match(problem)
        where = tables.get(int(m.group(1))) if m else None
        return f"Tree {m.group(1)} ({where}) {problem[m.end() :]}" if m and where else problem

    noun = "problem" if len(problems) == 1 else "problems"
    count = f"at least {len(problems)}" if len(problems) >= _SQLITE_MAX_ERRORS else len(problems)
    summary = f"{count} {noun} (first: {_short(named(problems[0]))})"
    return StorageCheck(SQLITE_INTEGRITY_CHECK, tuple(problems), summary)


def commit_notes(conn: Connection) -> dict[str, Any]:
    """What a ``Database.transaction`` hands its ``after_commit`` hooks once it committed
    (e.g. the audit head it moved); dropped when it rolls back."""
    notes: dict[str, Any] = conn.info.setdefault("doctorai.commit_notes", {})
    return notes


class Database:
    """The open database: an SQLAlchemy engine plus the profile's workstation id."""

    def __init__(self, path: Path, engine: Engine) -> None:
        self.path = path
        self.engine = engine
        #: called with ``conn.info`` after each ``transaction()`` committed (the audit trail
        #: records the chain head a transaction moved, core.audit.head_record)
        self.after_commit: list[Callable[[dict[Any, Any]], None]] = []
        #: called by ``close`` first (the audit trail writes its last head record)
        self.before_close: list[Callable[[], None]] = []
        self.workstation_id = self._workstation_id()

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """One durable write transaction (BEGIN IMMEDIATE ... COMMIT)."""
        with self.engine.begin() as conn:
            notes = commit_notes(conn)
            notes.clear()
            try:
                yield conn
            finally:  # taken or dropped: never left on the pooled connection for the next one
                taken = dict(notes)
                notes.clear()
        for hook in self.after_commit:  # only after a commit: a rollback raised above
            hook(taken)

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

    def check_storage(self) -> list[StorageCheck]:
        """Run SQLCipher's page HMAC check and SQLite's integrity check over the whole file
        (every table, not only the audit trail); read-only. Pages still in the WAL are read
        by the integrity check; the page HMAC check reads the main file."""
        with quiet_sqlcipher(), self.engine.connect() as conn:
            checks = [_page_hmac_check(conn), _sqlite_integrity_check(conn)]
            if not all(c.ok for c in checks):
                conn.invalidate()  # a connection that met a bad page is not reused
        return checks

    def integrity_check(self) -> list[str]:
        """Problems found by SQLite's integrity_check and SQLCipher's page HMAC check."""
        return [f"{c.name}: {p}" for c in self.check_storage() for p in c.problems]

    def close(self) -> None:
        for hook in self.before_close:
            hook()
        self.engine.dispose()


@contextmanager
def quiet_sqlcipher() -> Iterator[None]:
    """Keep SQLCipher from logging each bad page to stderr while a check reports them
    (cipher_log_level is process-wide: restored afterwards)."""
    con = sqlcipher3.connect(":memory:")
    try:
        previous = str(con.execute("PRAGMA cipher_log_level").fetchone()[0])
        con.execute("PRAGMA cipher_log_level = NONE")
        try:
            yield
        finally:
            if previous.isalpha():
                con.execute(f"PRAGMA cipher_log_level = {previous}")
    finally:
        con.close()


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


_last_opened: Path | None = None


def last_opened() -> Path | None:
    """The database this process opened last (to name it in an error raised later)."""
    return _last_opened


#: Files SQLite and the audit trail keep beside the database.
SIDE_SUFFIXES = ("-wal", "-shm", ".head")


def private_files(db_path: Path, *, new: bool = False) -> None:
    """The database and the files beside it readable by their owner only (POSIX 0600); a
    looser one is tightened with a log line unless the database is ``new``."""
    for path in (db_path, *(db_path.with_name(db_path.name + s) for s in SIDE_SUFFIXES)):
        make_private(path, 0o600, new=new)


def open_database(path: Path | None = None) -> Database:
    """Open (creating on first run) the encrypted database; never falls back to plaintext."""
    global _last_opened
    db_path = (path or profile_dir() / "doctorai.db").resolve()
    _last_opened = db_path
    new = not db_path.exists()
    key = get_or_create_key(db_path)
    _check_key(db_path, key)
    private_files(db_path, new=new)  # before the first write: -wal/-shm get the db's mode
    engine = build_engine(lambda: _connect(db_path, key))
    try:
        migrate(engine)
        return Database(db_path, engine)
    except SADatabaseError as exc:
        engine.dispose()
        raise explain_store_error(db_path, exc) from exc


def sqlcipher_selftest() -> str:
    """Write and read back one row in an encrypted scratch file (installers' ``--selftest``):
    SQLCipher's version, or RuntimeError naming what is wrong."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="doctorai-selftest-") as tmp:
        path = Path(tmp) / "selftest.db"
        con = _connect(path, secrets.token_hex(32))
        try:
            con.execute("CREATE TABLE t (v TEXT)")
            con.execute("INSERT INTO t VALUES ('ok')")
            value = con.execute("SELECT v FROM t").fetchone()[0]
            version = con.execute("PRAGMA cipher_version").fetchone()[0]
        finally:
            con.close()
        if path.read_bytes()[:16] == b"SQLite format 3\x00":
            raise RuntimeError("the scratch database was written unencrypted")
    if value != "ok":
        raise RuntimeError(f"read back {value!r} instead of 'ok'")
    return str(version)


def set_property(conn: Connection, key: str, value: str) -> None:
    conn.execute(
        text("INSERT OR REPLACE INTO properties (key, value) VALUES (:k, :v)"),
        {"k": key, "v": value},
    )
