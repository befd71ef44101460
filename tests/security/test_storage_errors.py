"""Bad luck on the disk (issue 15, hole 5): a damaged first page, a database another process
holds locked past the wait, a full disk. Each gives a message naming the file and the cause and
exit code 3 - never a traceback, never the wrong diagnosis ("the key does not decrypt it")."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import sqlcipher3

from core.app.workstation import Workstation
from core.audit.vocabulary import EventType
from core.store.keys import get_or_create_key

REPO = Path(__file__).resolve().parents[2]
CR = REPO / "resources" / "sample" / "chest_cr" / "RG1_J2KI.dcm"


def _profile(home: Path, events: int = 300) -> Path:
    home.mkdir(parents=True, exist_ok=True)
    db = home / "doctorai.db"
    ws = Workstation.open(db)
    for i in range(events):
        ws.record(EventType.APPLICATION_ACTIVITY, action=f"event-{i}")
    ws.close()
    con = _raw(db)
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    return db


def _raw(db: Path) -> sqlcipher3.Connection:
    con = sqlcipher3.connect(str(db), isolation_level=None, timeout=1)
    con.execute(f"PRAGMA key = \"x'{get_or_create_key(db)}'\"")
    return con


def _cli(home: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DOCTORAI_HOME": str(home)}
    return subprocess.run(
        [sys.executable, "-m", "desktop.launcher", *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_a_damaged_first_page_is_named_not_blamed_on_the_key(tmp_path: Path) -> None:
    home = tmp_path / "p"
    db = _profile(home)
    data = bytearray(db.read_bytes())
    for offset in (100, 1000, 3000):  # inside page 1, past its 16-byte salt
        data[offset] ^= 0xFF
    db.write_bytes(bytes(data))
    res = _cli(home, "audit", "verify")
    assert res.returncode == 3, res.stderr
    assert str(db) in res.stderr
    assert "first page" in res.stderr
    assert "key is right" in res.stderr
    assert "does not decrypt" not in res.stderr
    assert "Traceback" not in res.stderr


def test_a_database_locked_past_the_wait_is_said_and_nothing_is_written(tmp_path: Path) -> None:
    home = tmp_path / "p"
    db = _profile(home, events=3)
    holder = _raw(db)
    holder.execute("BEGIN IMMEDIATE")  # another process writing, for longer than 30 s
    holder.execute("INSERT INTO properties (key, value) VALUES ('held', '1')")
    out = tmp_path / "r.png"
    try:
        res = _cli(home, "render", str(CR), "--out", str(out), timeout=180)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert res.returncode == 3, res.stderr
    assert str(db) in res.stderr
    assert "locked" in res.stderr
    assert "Traceback" not in res.stderr
    assert not out.exists()  # its Export event could not be written: no file either


def test_a_full_disk_is_said_and_nothing_is_written(tmp_path: Path) -> None:
    mount = tmp_path / "small-disk"
    mount.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("needs root to mount a 4 MiB tmpfs as a full disk")
    made = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4M", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if made.returncode != 0:
        pytest.skip(f"this machine does not allow mounting a tmpfs: {made.stderr.strip()}")
    try:
        home = mount / "p"
        db = _profile(home, events=3)
        filler = mount / "filler"
        with filler.open("wb", buffering=0) as f:  # fill the disk to the last byte
            try:
                while True:
                    f.write(bytes(65536))
            except OSError:
                pass
        out = tmp_path / "r.png"
        res = _cli(home, "render", str(CR), "--out", str(out))
        assert res.returncode == 3, res.stderr
        assert str(db) in res.stderr
        assert "full" in res.stderr
        assert "Traceback" not in res.stderr
        assert not out.exists()
    finally:
        subprocess.run(["umount", str(mount)], check=False)
