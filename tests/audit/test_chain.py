"""The hash chain: every change, deletion, reordering or insertion is found at its index."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import subprocess
import sys
import threading
from pathlib import Path

import keyring
import pytest
from sqlalchemy import text

from core.audit.chain import GENESIS_HASH, chain_hash
from core.audit.log import AuditEvent, AuditLog, AuditObject
from core.audit.vocabulary import EventType, Outcome
from core.store.database import Database
from core.store.keys import SERVICE, chain_key_entry
from core.store.outbox import StoreOutbox

REPO = Path(__file__).resolve().parents[2]


def _fill(log: AuditLog, n: int = 10) -> None:
    for i in range(n):
        log.append(
            AuditEvent(
                EventType.INSTANCES_ACCESSED,
                user=f"user{i % 3}",
                role="radiologist",
                objects=[
                    AuditObject("patient", f"P{i}", f"Name^{i}"),
                    AuditObject("study", f"1.2.3.{i}"),
                ],
                details={"i": i},
            )
        )


def _keyed_link(key: bytes, prev: str, content: dict[str, object]) -> str:
    """The link as the chain's definition says: HMAC-SHA-256(key, prev + canonical JSON)."""
    text = prev + json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()


def test_chain_links_and_head(db: Database) -> None:
    log = AuditLog(db)
    assert log.chain_head() == (-1, GENESIS_HASH)
    _fill(log, 5)
    events = list(log.iter_events())
    assert [e.index for e in events] == [0, 1, 2, 3, 4]
    assert events[0].prev_hash == GENESIS_HASH
    stored = keyring.get_password(SERVICE, chain_key_entry(db.path))
    assert stored is not None
    assert stored.startswith("1:0:")  # keyed from the first event on
    key = bytes.fromhex(stored.split(":")[2])
    assert key.hex() not in db.path.read_bytes().hex()  # not in the database file
    for prev, cur in itertools.pairwise([None, *events]):
        prev_hash = prev.hash if prev else GENESIS_HASH
        assert cur.prev_hash == prev_hash
        assert _keyed_link(key, prev_hash, cur.content()) == cur.hash  # recomputed apart
        assert chain_hash(prev_hash, cur.content()) != cur.hash  # not the unkeyed SHA-256
    assert log.chain_head() == (4, events[-1].hash)
    assert log.verify().ok


def test_api_has_no_update_or_delete() -> None:
    public = {name for name in dir(AuditLog) if not name.startswith("_")}
    assert not {n for n in public if any(w in n for w in ("update", "delete", "remove", "edit"))}


@pytest.mark.parametrize(
    ("tamper", "bad_index"),
    [
        ("UPDATE audit_events SET user = 'mallory' WHERE idx = 6", 6),
        ("UPDATE audit_events SET outcome = 12 WHERE idx = 3", 3),
        ("DELETE FROM audit_events WHERE idx = 4", 4),
        ("DELETE FROM audit_events WHERE idx = 0", 0),
        # reorder: swap the contents of events 2 and 7, keeping their positions
        (
            "UPDATE audit_events SET idx = -1 WHERE idx = 2;"
            "UPDATE audit_events SET idx = 2 WHERE idx = 7;"
            "UPDATE audit_events SET idx = 7 WHERE idx = -1",
            2,
        ),
        # insert: shift 5.. up by one and put a forged event at 5
        (
            "UPDATE audit_events SET idx = idx + 1000 WHERE idx >= 5;"
            "UPDATE audit_events SET idx = idx - 999 WHERE idx >= 1000;"
            "INSERT INTO audit_events SELECT 5, 'forged', created_at, user, role, workstation,"
            " event_type, outcome, objects, details, prev_hash, hash FROM audit_events WHERE idx = 4",
            5,
        ),
    ],
)
def test_tampering_is_found_at_its_index(db: Database, tamper: str, bad_index: int) -> None:
    log = AuditLog(db)
    _fill(log, 10)
    with db.engine.begin() as conn:
        for statement in tamper.split(";"):
            conn.execute(text(statement))
    result = log.verify()
    assert not result.ok
    assert result.first_bad_index == bad_index, result


def test_concurrent_appends_keep_one_chain(db: Database) -> None:
    log = AuditLog(db)
    threads = [threading.Thread(target=_fill, args=(log, 25)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert log.chain_head()[0] == 99
    assert log.verify().ok


def test_outbox_row_commits_or_rolls_back_with_its_event(db: Database) -> None:
    log = AuditLog(db)
    outbox = StoreOutbox(db)
    log.append(AuditEvent(EventType.EXPORT, user="u"))
    assert outbox.count_unsent() == 1
    with pytest.raises(RuntimeError), db.transaction() as conn:  # noqa: PT012 - the rollback is the point
        log.append(AuditEvent(EventType.EXPORT, user="u"), conn=conn)
        raise RuntimeError("crash after the insert, before commit")
    assert outbox.count_unsent() == 1
    assert log.chain_head()[0] == 0
    rows = outbox.fetch_unsent(10)
    payload = rows[0].payload
    assert payload["index"] == 0
    assert payload["prev_hash"] == GENESIS_HASH
    assert "Name" not in json.dumps(payload)  # no patient data goes upstream
    outbox.mark_failed([rows[0].id], "offline")
    assert outbox.count_unsent() == 1
    outbox.mark_sent([rows[0].id])
    assert outbox.count_unsent() == 0


def _cli(*args: str, db_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "desktop.launcher", "audit", "--db", str(db_path), *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )


def test_cli_verify_export_and_export_is_audited(
    db: Database, db_path: Path, tmp_path: Path
) -> None:
    log = AuditLog(db)
    _fill(log, 4)
    log.append(AuditEvent(EventType.SECURITY_ALERT, user="system", outcome=Outcome.SERIOUS_FAILURE))
    db.close()
    ok = _cli("verify", db_path=db_path)
    assert ok.returncode == 0, ok.stderr
    assert "5 events" in ok.stdout
    out = tmp_path / "audit.xml"
    exported = _cli("export", "--format", "dicom-xml", "--out", str(out), db_path=db_path)
    assert exported.returncode == 0, exported.stderr
    import xml.etree.ElementTree as ET

    root = ET.parse(out).getroot()
    messages = root.findall("AuditMessage")
    assert len(messages) == 5
    first = messages[0]
    assert first.find("EventIdentification/EventID").get("csd-code") == "110103"
    assert first.find("ParticipantObjectIdentification").get("ParticipantObjectID") == "P0"
    assert messages[4].find("EventIdentification").get("EventOutcomeIndicator") == "8"
    csv_out = _cli("export", "--format", "csv", db_path=db_path)
    assert csv_out.stdout.splitlines()[0].startswith("index,created_at")
    assert len(csv_out.stdout.splitlines()) == 7  # header + 5 events + the first export's event
    head = _cli("head", db_path=db_path)
    assert head.stdout.split()[0] == "6"
    # tamper, then verify fails naming the index
    from core.store.database import open_database

    again = open_database(db_path)
    with again.engine.begin() as conn:
        conn.execute(text("UPDATE audit_events SET user = 'x' WHERE idx = 2"))
    again.close()
    bad = _cli("verify", db_path=db_path)
    assert bad.returncode == 1
    assert "index 2" in bad.stderr


def test_cli_refuses_a_missing_database_and_a_bad_date(
    db: Database, db_path: Path, tmp_path: Path
) -> None:
    _fill(AuditLog(db), 2)
    db.close()
    missing = tmp_path / "typo.db"
    res = _cli("verify", db_path=missing)
    assert res.returncode == 2
    assert f"'{missing}' does not exist" in res.stderr
    assert not missing.exists()  # not created as an empty, "intact" trail
    for bad in ("yesterday", "2026-13-01"):
        res = _cli("export", "--since", bad, db_path=db_path)
        assert res.returncode == 2
        assert f"--since '{bad}' is not an ISO date" in res.stderr
    future = _cli("export", "--since", "2999-01-01", db_path=db_path)
    assert future.returncode == 0
    assert json.loads(future.stdout) == []
    past = _cli("export", "--since", "2000-01-01", db_path=db_path)
    assert len(json.loads(past.stdout)) == 3  # the 2 events + the first export, audited
