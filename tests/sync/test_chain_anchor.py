"""An audit database replaced by an older copy is caught on the next sync: a Security Alert.

The database is the workstation's own (SQLCipher, core.store) and the events are chained by
core.audit, as in production; the "older copy" is a copy of the encrypted file."""

from __future__ import annotations

import shutil
from pathlib import Path

from backend.db import SecurityAlert as ServerAlert
from core.sync.engine import BackoffPolicy, SecurityAlert, SyncEngine
from tests.backend.conftest import LiveServer
from tests.sync.conftest import LocalStore, enrolled_client, viewed

FAST = BackoffPolicy(base_s=0.02, cap_s=0.2, max_attempts=5)


def _add_events(store: LocalStore, n: int) -> None:
    for i in range(n):
        store.audit.append(viewed(i))


def test_restored_older_database_raises_security_alert(server: LiveServer, tmp_path: Path) -> None:
    db, backup = tmp_path / "workstation.db", tmp_path / "workstation-backup.db"
    client = enrolled_client(server)
    device_id = client.credentials.require_device().device_id
    alerts: list[SecurityAlert] = []

    store = LocalStore.open(db)
    _add_events(store, 5)
    assert SyncEngine(store.outbox, client, backoff=FAST).sync_once().ok
    store.close()  # the last connection checkpoints the WAL into the file
    assert not db.with_name(db.name + "-wal").exists()
    shutil.copy(db, backup)  # an old copy of the database, taken here

    store = LocalStore.open(db)
    _add_events(store, 5)  # events 5..9 reach the server
    assert SyncEngine(store.outbox, client, backoff=FAST).sync_once().ok
    store.close()

    shutil.copy(backup, db)  # someone puts the old copy back
    store = LocalStore.open(db)
    try:
        assert store.audit.chain_head()[0] == 4
        _add_events(store, 2)  # the restored database goes on from index 5
        engine = SyncEngine(store.outbox, client, backoff=FAST, on_alert=alerts.append)
        report = engine.sync_once()

        assert report.alert is not None
        assert report.alert.code == "audit_chain_fork"
        assert "SECURITY ALERT" in report.alert.message
        assert "older copy" in report.alert.message
        assert [a.code for a in alerts] == ["audit_chain_fork"]
        assert engine.status.snapshot.state == "alert"
        assert store.outbox.count_unsent() == 2  # nothing is marked sent or dropped
        assert report.retries == 0  # a fork is not retried as if the network had failed
        # the same fork on the next pass does not raise a second alert
        assert engine.sync_once().alert is not None
        assert len(alerts) == 1
    finally:
        store.close()
    with server.state.sessions() as s:
        codes = [a.code for a in s.query(ServerAlert).filter_by(device_id=device_id)]
    assert "audit_chain_fork" in codes  # raised on both sides


def test_gap_in_chain_raises_alert(server: LiveServer, store: LocalStore) -> None:
    client = enrolled_client(server)
    store.audit.append(viewed(0), sync=False)  # index 0 is written but never queued
    _add_events(store, 2)
    alerts: list[SecurityAlert] = []
    report = SyncEngine(store.outbox, client, backoff=FAST, on_alert=alerts.append).sync_once()
    assert report.alert is not None
    assert report.alert.code == "audit_chain_gap"
    assert len(alerts) == 1
    assert store.outbox.count_unsent() == 2
