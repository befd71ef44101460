"""The attacks the hash chain alone cannot see (issue 15, hole 2): the last rows deleted, an
older copy of the database restored, history rewritten and re-chained, the head record forged
or deleted. The head recorded beside the database (HMAC under a key in the keyring) names each;
before it, every one of these passed ``audit verify``."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import sqlcipher3

import cli
from core.audit.chain import chain_hash
from core.audit.chain_key import read_chain_key
from core.audit.events import SYSTEM, event
from core.audit.head_record import head_path
from core.audit.log import AuditLog, StoredEvent
from core.audit.vocabulary import EventType
from core.store.database import open_database
from core.store.keys import get_or_create_key


def _trail(db_path: Path, n: int) -> None:
    db = open_database(db_path)
    log = AuditLog(db)
    for i in range(n):
        log.append(event(EventType.APPLICATION_ACTIVITY, SYSTEM, action=f"e{i}"))
    assert log.head_record.flush()
    db.close()


def _raw(db_path: Path) -> sqlcipher3.Connection:
    con = sqlcipher3.connect(str(db_path), isolation_level=None)
    con.execute(f"PRAGMA key = \"x'{get_or_create_key(db_path)}'\"")
    return con


def _verify(db_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = cli.main(["audit", "verify", "--db", str(db_path)])
    return code, capsys.readouterr().err


def test_a_clean_trail_matches_its_recorded_head(
    db_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _trail(db_path, 12)
    code, _err = _verify(db_path, capsys)
    assert code == 0
    assert head_path(db_path).read_text().startswith("11:")


def test_deleted_last_rows_are_named(db_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _trail(db_path, 12)
    con = _raw(db_path)
    con.execute("DELETE FROM audit_events WHERE idx >= 9")
    con.close()
    code, err = _verify(db_path, capsys)
    assert code == 1
    assert "events 9..11 missing" in err


def test_an_older_copy_of_the_whole_file_is_named(
    db_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _trail(db_path, 5)
    con = _raw(db_path)
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    old = tmp_path / "old.db"
    shutil.copy(db_path, old)
    _trail(db_path, 10)  # the day goes on: events 5..14
    for f in db_path.parent.glob(db_path.name + "-*"):
        f.unlink()
    shutil.copy(old, db_path)  # "restored from yesterday's copy"
    code, err = _verify(db_path, capsys)
    assert code == 1
    assert "older than the last recorded head" in err
    assert "events 5..14 missing" in err


def test_history_rewritten_and_rechained_is_named(
    db_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _trail(db_path, 8)
    db = open_database(db_path)
    events: list[StoredEvent] = list(AuditLog(db).iter_events())
    db.close()
    con = _raw(db_path)
    prev = events[2].hash
    # an insider who holds the chain key as well (it is in the same keyring as the database
    # key): "event 3 never happened as written": rewrite it and re-chain with the key
    stolen = read_chain_key(db_path)
    assert stolen is not None
    key = stolen.key
    for e in events[3:]:
        content = e.content()
        if e.index == 3:
            content["details"] = {"action": "nothing to see"}
        new = chain_hash(prev, content, key)
        con.execute(
            "UPDATE audit_events SET details = ?, prev_hash = ?, hash = ? WHERE idx = ?",
            (_json(content["details"]), prev, new, e.index),
        )
        prev = new
    con.close()
    code, err = _verify(db_path, capsys)
    assert code == 1
    assert "FAILED: recorded head" in err  # the re-chained trail is consistent on its own...
    assert "hash chain" not in err
    assert "event #7 is not the one recorded as the head" in err  # ...but not the recorded one


def test_a_forged_or_deleted_head_record_is_named(
    db_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _trail(db_path, 6)
    head_path(db_path).write_text("99:" + "0" * 64 + ":" + "f" * 64 + "\n")
    code, err = _verify(db_path, capsys)
    assert code == 1
    assert "does not carry a valid HMAC" in err
    head_path(db_path).unlink()
    code, err = _verify(db_path, capsys)
    assert code == 1
    assert "head record beside the database is missing" in err


def _json(value: object) -> str:
    import json

    return json.dumps(value)
