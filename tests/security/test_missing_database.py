"""The attack: delete (or truncate) the profile's database while its key stays in the keyring.
Before, the next start made a new empty trail ('ok: 0 events, chain intact', 'no accounts yet')
and whoever came next made himself the first admin. Now every way in refuses, naming why."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from core.app.workstation import Workstation
from core.audit.vocabulary import EventType
from core.security.users import Role
from core.store.database import open_database
from core.store.errors import DatabaseMissingError

REPO = Path(__file__).resolve().parents[2]
PASSWORD = "correct horse battery"


def _profile(home: Path) -> Path:
    home.mkdir(parents=True)
    ws = Workstation.open(home / "doctorai.db")
    ws.users.create_user("admin", PASSWORD, Role.ADMIN, by="test")
    ws.record(EventType.APPLICATION_ACTIVITY, action="start")
    ws.close()
    return home / "doctorai.db"


def _cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    import os

    env = {**os.environ, "DOCTORAI_HOME": str(home)}
    return subprocess.run(
        [sys.executable, "-m", "desktop.launcher", *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("how", ["deleted", "truncated"])
def test_a_vanished_database_is_refused_not_recreated(tmp_path: Path, how: str) -> None:
    home = tmp_path / "profile"
    db = _profile(home)
    for f in home.glob("doctorai.db*"):
        if how == "deleted" or f != db:
            f.unlink()
    if how == "truncated":
        db.write_bytes(b"")
    with pytest.raises(DatabaseMissingError, match="does not create a new empty one"):
        open_database(db)
    verify = _cli(home, "audit", "verify")
    assert verify.returncode != 0
    assert "missing" in verify.stderr or "empty" in verify.stderr
    assert "chain intact" not in verify.stdout
    listed = _cli(home, "users", "list")
    assert listed.returncode != 0
    assert "no accounts yet" not in listed.stdout
    # nothing was created in its place
    assert (not db.exists()) if how == "deleted" else db.stat().st_size == 0
