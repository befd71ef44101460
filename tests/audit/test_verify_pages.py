"""``doctorai audit verify`` checks the whole file, not only the audit rows: a page of another
table that fails its HMAC is found by SQLCipher's page HMAC check (and SQLite's integrity
check), named, and fails the command; a clean database passes all three checks.

Real parts: an encrypted profile database made by open_database, audit events appended through
AuditLog, a users table filled beside them, then bytes flipped in the closed file."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

import cli
from core.audit.log import CHAIN_CHECK, HEAD_CHECK, AuditEvent, AuditLog, AuditObject
from core.audit.vocabulary import EventType
from core.store.database import (
    PAGE_HMAC_CHECK,
    READ_ERRORS,
    SQLITE_INTEGRITY_CHECK,
    open_database,
)
from core.store.errors import DatabaseError
from core.store.schema import users

PAGE_SIZE = 4096
REPO = Path(__file__).resolve().parents[2]


def _profile(db_path: Path) -> int:
    """Events first, then a users table of a few hundred pages; returns the file's last page,
    which then belongs to the users table (or its primary-key index), not to the audit rows."""
    db = open_database(db_path)
    log = AuditLog(db)
    for i in range(20):
        log.append(
            AuditEvent(
                EventType.INSTANCES_ACCESSED,
                user="rad",
                role="radiologist",
                objects=[AuditObject("patient", f"PID-{i}", "Doe^Jane")],
            )
        )
    now = datetime.now(UTC).isoformat()
    with db.transaction() as conn:
        conn.execute(
            users.insert(),
            [
                {
                    "username": f"user-{i:05d}",
                    "password_hash": "$argon2id$" + "x" * 300,
                    "role": "radiologist",
                    "created_at": now,
                    "failed_logins": 0,
                    "disabled": 0,
                }
                for i in range(3000)
            ],
        )
    db.close()  # checkpoints the WAL into the file
    size = db_path.stat().st_size
    assert size % PAGE_SIZE == 0
    assert size // PAGE_SIZE > 200
    return size // PAGE_SIZE


def _flip_page(db_path: Path, page: int) -> None:
    data = bytearray(db_path.read_bytes())
    start = (page - 1) * PAGE_SIZE + 512
    data[start : start + 16] = bytes(b ^ 0xFF for b in data[start : start + 16])
    db_path.write_bytes(bytes(data))


def _verify_cli(db_path: Path) -> subprocess.CompletedProcess[str]:
    """The real command in its own process (same file keyring as this test, via the env)."""
    return subprocess.run(
        [sys.executable, "-m", "desktop.launcher", "audit", "verify", "--db", str(db_path)],
        cwd=REPO,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_bad_page_outside_the_audit_rows_fails_verify_naming_the_page_hmac_check(
    db_path: Path,
) -> None:
    last = _profile(db_path)
    _flip_page(db_path, last)

    db = open_database(db_path)
    try:
        log = AuditLog(db)
        assert log.verify().ok  # the chain alone reads no bad page: what verify used to check
        result = log.check()
    finally:
        db.close()
    assert not result.ok
    assert result.chain.ok
    assert result.checked == 20
    hmac, sqlite = result.storage
    assert (hmac.name, sqlite.name) == (PAGE_HMAC_CHECK, SQLITE_INTEGRITY_CHECK)
    assert hmac.failed_pages == (last,)
    assert str(hmac) == f"page HMAC check: 1 page fails (first: page {last})"
    assert not sqlite.ok
    assert "users" in sqlite.summary  # the tree is named by its table
    assert result.failed() == [PAGE_HMAC_CHECK, SQLITE_INTEGRITY_CHECK]

    run = _verify_cli(db_path)
    assert run.returncode == 1, run.stdout + run.stderr
    assert f"page HMAC check: 1 page fails (first: page {last})" in run.stderr
    assert "SQLite integrity check: " in run.stderr
    assert (
        f"FAILED: {PAGE_HMAC_CHECK}, {SQLITE_INTEGRITY_CHECK} ({db_path.resolve()})" in run.stderr
    )
    assert f"{CHAIN_CHECK}: ok (20 events, chain intact)" in run.stdout
    assert "Traceback" not in run.stderr
    assert "ERROR CORE" not in run.stderr  # SQLCipher's own log stays quiet during the check


def test_a_bad_audit_page_is_reported_not_a_traceback(
    db_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = open_database(db_path)
    log = AuditLog(db)
    log.append_many(
        [
            AuditEvent(EventType.QUERY, user="u", details={"n": i, "pad": "x" * 500})
            for i in range(400)
        ],
        sync=False,
    )  # the file's last pages: audit rows
    db.close()
    clean = db_path.read_bytes()
    for page in range(len(clean) // PAGE_SIZE, 1, -1):  # the last page the chain walk reads
        db_path.write_bytes(clean)
        _flip_page(db_path, page)
        try:
            db = open_database(db_path)
        except DatabaseError:
            continue  # a page that opening reads (the schema): not the case here
        try:
            AuditLog(db).verify()
        except READ_ERRORS:
            break
        finally:
            db.close()
    else:
        pytest.fail("no page of the audit rows found")

    assert cli.main(["audit", "verify", "--db", str(db_path)]) == 1
    err = capsys.readouterr().err
    assert f"page HMAC check: 1 page fails (first: page {page})" in err
    assert f"{CHAIN_CHECK}: the audit rows cannot be read" in err
    assert f"FAILED: {CHAIN_CHECK}, {HEAD_CHECK}, {PAGE_HMAC_CHECK}" in err
    assert "Traceback" not in err


def test_a_clean_database_passes_both_checks(
    db_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    last = _profile(db_path)
    db = open_database(db_path)
    try:
        assert [(c.name, c.ok) for c in db.check_storage()] == [
            (PAGE_HMAC_CHECK, True),
            (SQLITE_INTEGRITY_CHECK, True),
        ]
        assert db.integrity_check() == []
    finally:
        db.close()

    assert cli.main(["audit", "verify", "--db", str(db_path)]) == 0
    out, err = capsys.readouterr()
    assert f"{CHAIN_CHECK}: ok (20 events, chain intact)" in out
    assert f"{PAGE_HMAC_CHECK}: ok ({last} pages)" in out
    assert f"{SQLITE_INTEGRITY_CHECK}: ok" in out
    assert err == ""


def test_the_viewers_verify_shows_the_same_checks(qtbot, db_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The audit viewer's Verify runs the same core check and names the failing one."""
    from core.app.workstation import Workstation
    from core.security.users import Role
    from desktop.audit_viewer import AuditViewer
    from desktop.workers import ErrorSink, JobRunner

    ws = Workstation.open(db_path)
    ws.users.create_user("admin", "correct horse battery", Role.ADMIN, by="test")
    ws.users.create_user("aud", "correct horse battery", Role.AUDITOR, by="admin")
    ws.close()
    last = _profile(db_path)
    _flip_page(db_path, last)

    ws = Workstation.open(db_path)
    runner = JobRunner(ErrorSink())
    try:
        ws.session.login("aud", "correct horse battery")
        viewer = AuditViewer(ws, runner)
        qtbot.addWidget(viewer)
        with qtbot.waitSignal(viewer.verified, timeout=60_000) as verified:
            viewer.verify()
        result = verified.args[0]
        assert not result.ok
        assert result.chain.ok
        text = viewer.status.text()
        assert text.startswith(f"Chain OK: {result.checked} event(s) verified")
        assert f"DAMAGED FILE: page HMAC check: 1 page fails (first: page {last})" in text
        assert "SQLite integrity check: " in text
        assert "Keep this database for investigation." in text
    finally:
        assert runner.shutdown(10_000)
        ws.close()
