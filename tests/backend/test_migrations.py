"""Alembic migrations of the backend (defect 10): a fresh database upgraded to head equals
db.py's metadata, a database made by the old create_all is adopted with its rows, and two
processes starting at once on one PostgreSQL both come up."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect, select, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from backend import migrate
from backend.db import Base, Device, EnrolCode, make_engine
from tests.backend import pg

REPO = Path(__file__).resolve().parents[2]
_pg_reason = pg.unavailable_reason()
needs_pg = pytest.mark.skipif(_pg_reason is not None, reason=_pg_reason or "")


def fresh_pg_db(server_url: str) -> str:
    """A new empty database on the throwaway server; its URL."""
    name = "m_" + uuid.uuid4().hex[:12]
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return server_url.rsplit("/", 1)[0] + "/" + name


def schema_diff(engine: Engine) -> list[object]:
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        return list(compare_metadata(ctx, Base.metadata))


def _seed(engine: Engine) -> None:
    """Rows in the baseline's columns only (db.py's models may have grown since)."""
    now = datetime.now(UTC)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO devices (device_id, secret_hash, label, enrolled_at, revoked) "
                "VALUES ('dev-old', :h, 'before migrations', :now, FALSE)"
            ),
            {"h": "0" * 64, "now": now},
        )
        conn.execute(
            text(
                "INSERT INTO enrol_codes (code_hash, created_at, expires_at) "
                "VALUES (:c, :now, :exp)"
            ),
            {"c": "c" * 64, "now": now, "exp": now + timedelta(days=1)},
        )


def _check_seed(engine: Engine) -> None:
    with Session(engine) as s:
        dev = s.scalars(select(Device)).one()
        assert (dev.device_id, dev.label) == ("dev-old", "before migrations")
        assert s.get(EnrolCode, "c" * 64) is not None


def test_fresh_sqlite_upgraded_to_head_equals_models(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'b.sqlite3'}")
    assert migrate.current_revision(engine) == migrate.head_revision()
    assert schema_diff(engine) == []
    engine.dispose()


@needs_pg
def test_fresh_postgres_upgraded_to_head_equals_models(pg_url: str) -> None:
    engine = make_engine(fresh_pg_db(pg_url))
    assert migrate.current_revision(engine) == migrate.head_revision()
    assert schema_diff(engine) == []
    engine.dispose()


def test_baseline_alone_equals_create_all(tmp_path: Path) -> None:
    """The baseline revision makes what the old create_all made, table by table."""
    by_migration = create_engine(f"sqlite:///{tmp_path / 'a.sqlite3'}")
    migrate.upgrade(by_migration, migrate.BASELINE)
    by_create_all = create_engine(f"sqlite:///{tmp_path / 'b.sqlite3'}")
    Base.metadata.create_all(by_create_all)
    with by_migration.connect() as a, by_create_all.connect() as b:
        ia, ib = inspect(a), inspect(b)
        baseline_tables = set(ia.get_table_names()) - {"alembic_version"}
        assert baseline_tables <= set(ib.get_table_names())
        for table in sorted(baseline_tables):
            cols_a = [(c["name"], str(c["type"]), c["nullable"]) for c in ia.get_columns(table)]
            cols_b = [(c["name"], str(c["type"]), c["nullable"]) for c in ib.get_columns(table)]
            # later revisions may add columns to db.py; the baseline's come first, unchanged
            assert cols_b[: len(cols_a)] == cols_a, table


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_create_all_database_is_adopted_without_data_loss(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if backend == "postgresql":
        if _pg_reason is not None:
            pytest.skip(_pg_reason)
        url = fresh_pg_db(request.getfixturevalue("pg_url"))
    else:
        url = f"sqlite:///{tmp_path / 'old.sqlite3'}"
    old = create_engine(url)
    # what the previous code left: the baseline's tables (test_baseline_alone_equals_create_all
    # shows they are create_all's) and no alembic_version table
    migrate.upgrade(old, migrate.BASELINE)
    with old.begin() as conn:
        conn.execute(text("DROP TABLE alembic_version"))
    assert migrate.current_revision(old) is None
    _seed(old)
    old.dispose()

    engine = make_engine(url)  # what a server does at start
    assert migrate.current_revision(engine) == migrate.head_revision()
    _check_seed(engine)
    assert schema_diff(engine) == []
    engine.dispose()


@needs_pg
def test_two_processes_starting_at_once_on_postgres(pg_url: str) -> None:
    """Both processes upgrade the same new database at the same moment: one waits for the
    other's advisory lock, neither fails on a table the other just created."""
    url = fresh_pg_db(pg_url)
    code = (
        "import sys, time; from backend.db import make_engine; "
        "t = float(sys.argv[2]); time.sleep(max(0.0, t - time.time())); "
        "make_engine(sys.argv[1]).dispose(); print('ok')"
    )
    start = f"{__import__('time').time() + 2.0:.3f}"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, url, start],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=os.environ.copy(),
        )
        for _ in range(3)
    ]
    outs = [p.communicate(timeout=60) for p in procs]
    for p, (out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err[-2000:]
        assert out.strip() == "ok"
    engine = create_engine(url)
    assert migrate.current_revision(engine) == migrate.head_revision()
    assert schema_diff(engine) == []
    engine.dispose()


def test_two_processes_starting_at_once_on_sqlite(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'race.sqlite3'}"
    code = (
        "import sys, time; from backend.db import make_engine; "
        "t = float(sys.argv[2]); time.sleep(max(0.0, t - time.time())); "
        "make_engine(sys.argv[1]).dispose(); print('ok')"
    )
    start = f"{__import__('time').time() + 2.0:.3f}"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, url, start],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    for p in procs:
        _out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err[-2000:]
    engine = create_engine(url)
    assert migrate.current_revision(engine) == migrate.head_revision()
    engine.dispose()


def test_migrate_command(tmp_path: Path) -> None:
    env = {**os.environ, "DOCTORAI_BACKEND_JWT_SECRET": "migrate-test-secret-0123456789"}
    run = subprocess.run(
        [sys.executable, "-m", "backend", "migrate", "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=60,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == (f"backend database: revision none -> {migrate.head_revision()}")
    again = subprocess.run(
        [sys.executable, "-m", "backend", "migrate", "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=60,
        check=False,
    )
    head = migrate.head_revision()
    assert again.stdout.strip() == f"backend database: revision {head} -> {head}"
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "backend",
            "migrate",
            "--db-url",
            "postgresql+psycopg://x@127.0.0.1:1/none",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=60,
        check=False,
    )
    assert bad.returncode == 2
    assert "doctorai-backend: error:" in bad.stderr
    assert "Traceback" not in bad.stderr


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_every_revision_downgrades_and_upgrades_again(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """One chain (a single head), and each revision's downgrade undoes its upgrade."""
    from alembic import command

    if backend == "postgresql":
        if _pg_reason is not None:
            pytest.skip(_pg_reason)
        url = fresh_pg_db(request.getfixturevalue("pg_url"))
    else:
        url = f"sqlite:///{tmp_path / 'down.sqlite3'}"
    engine = make_engine(url)
    with engine.begin() as conn:
        command.downgrade(migrate._config(conn), "base")
    with engine.connect() as conn:
        assert set(inspect(conn).get_table_names()) <= {"alembic_version"}
    migrate.upgrade(engine)
    assert migrate.current_revision(engine) == migrate.head_revision()
    assert schema_diff(engine) == []
    engine.dispose()
