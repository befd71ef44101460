"""An audit database replaced by an older copy is caught on the next sync: a Security Alert."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path

from backend.db import SecurityAlert as ServerAlert
from core.sync.engine import BackoffPolicy, SecurityAlert, SyncEngine
from core.sync.outbox import SqliteOutbox
from tests.backend.conftest import LiveServer
from tests.sync.conftest import Chain, enrolled_client

FAST = BackoffPolicy(base_s=0.02, cap_s=0.2, max_attempts=5)


def _add_events(outbox: SqliteOutbox, chain: Chain, n: int) -> None:
    for i in range(n):
        outbox.add("audit", chain.next("viewed", n=i))


def test_restored_older_database_raises_security_alert(server: LiveServer, tmp_path: Path) -> None:
    db, backup = tmp_path / "audit.sqlite3", tmp_path / "audit-backup.sqlite3"
    client = enrolled_client(server)
    device_id = client.credentials.require_device().device_id
    alerts: list[SecurityAlert] = []

    outbox, chain = SqliteOutbox(db), Chain()
    _add_events(outbox, chain, 5)
    assert SyncEngine(outbox, client, backoff=FAST).sync_once().ok
    outbox.close()
    shutil.copy(db, backup)  # an old copy of the database, taken here
    old_chain = copy.deepcopy(chain)

    outbox = SqliteOutbox(db)
    _add_events(outbox, chain, 5)  # events 5..9 reach the server
    assert SyncEngine(outbox, client, backoff=FAST).sync_once().ok
    outbox.close()

    shutil.copy(backup, db)  # someone puts the old copy back
    outbox = SqliteOutbox(db)
    _add_events(outbox, old_chain, 2)  # the restored database goes on from index 5
    engine = SyncEngine(outbox, client, backoff=FAST, on_alert=alerts.append)
    report = engine.sync_once()

    assert report.alert is not None
    assert report.alert.code == "audit_chain_fork"
    assert "SECURITY ALERT" in report.alert.message
    assert "older copy" in report.alert.message
    assert [a.code for a in alerts] == ["audit_chain_fork"]
    assert engine.status.snapshot.state == "alert"
    assert outbox.count_unsent() == 2  # nothing is marked sent or dropped
    assert report.retries == 0  # a fork is not retried as if the network had failed
    # the same fork on the next pass does not raise a second alert
    assert engine.sync_once().alert is not None
    assert len(alerts) == 1
    with server.state.sessions() as s:
        codes = [a.code for a in s.query(ServerAlert).filter_by(device_id=device_id)]
    assert "audit_chain_fork" in codes  # raised on both sides


def test_gap_in_chain_raises_alert(server: LiveServer, tmp_path: Path) -> None:
    client = enrolled_client(server)
    outbox, chain = SqliteOutbox(tmp_path / "a.sqlite3"), Chain()
    chain.next()  # index 0 was lost locally and never queued
    _add_events(outbox, chain, 2)
    alerts: list[SecurityAlert] = []
    report = SyncEngine(outbox, client, backoff=FAST, on_alert=alerts.append).sync_once()
    assert report.alert is not None
    assert report.alert.code == "audit_chain_gap"
    assert len(alerts) == 1
    assert outbox.count_unsent() == 2
