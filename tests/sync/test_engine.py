"""The sync engine against a live backend, draining the workstation's encrypted outbox
(SQLCipher, core.store): exactly-once through faults, restarts, Retry-After."""

from __future__ import annotations

import json
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select

from backend.db import AuditEvent, Device, Result
from core.store.schema import outbox as outbox_table
from core.sync.engine import BackoffPolicy, SyncEngine, idempotency_key
from tests.backend.conftest import LiveServer, base_settings
from tests.sync.conftest import LocalStore, enrolled_client, queue
from tests.sync.faultproxy import FaultProxy

FAST = BackoffPolicy(base_s=0.02, cap_s=0.3, max_attempts=40)


def _server_counts(server: LiveServer, device_id: str) -> tuple[int, int, int, int | None]:
    with server.state.sessions() as s:
        results = s.scalar(
            select(func.count()).select_from(Result).where(Result.device_id == device_id)
        )
        distinct = s.scalar(
            select(func.count(func.distinct(Result.client_id))).where(Result.device_id == device_id)
        )
        events = s.scalar(
            select(func.count()).select_from(AuditEvent).where(AuditEvent.device_id == device_id)
        )
        device = s.get(Device, device_id)
        head = None if device is None else device.head_index
    return int(results or 0), int(distinct or 0), int(events or 0), head


def test_idempotency_key_is_stable_and_distinct() -> None:
    assert idempotency_key("result", ["a", "b"]) == idempotency_key("result", ["a", "b"])
    assert idempotency_key("result", ["a", "b"]) != idempotency_key("audit", ["a", "b"])
    assert idempotency_key("result", ["a", "b"]) != idempotency_key("result", ["a"])
    assert len(idempotency_key("audit", [str(i) for i in range(1000)])) <= 128


def test_drain_marks_sent_and_resumes_after_restart(server: LiveServer, tmp_path: Path) -> None:
    path = tmp_path / "workstation.db"
    store = LocalStore.open(path)
    queue(store, 30, 30)
    client = enrolled_client(server)
    report = SyncEngine(store.outbox, client, batch_size=16, backoff=FAST).sync_once()
    assert report.ok, report.error
    assert store.outbox.count_unsent() == 0
    assert report.sent == 60
    # "restart": the database opened again from its file, a new client (credentials from the
    # keyring); the audit chain goes on from the stored head
    store.close()
    store = LocalStore.open(path)
    try:
        queue(store, 5, 5)
        client2 = type(client)(server.url, client.credentials)
        engine = SyncEngine(store.outbox, client2, batch_size=16, backoff=FAST)
        assert engine.sync_once().sent == 10
    finally:
        store.close()
    device_id = client.credentials.require_device().device_id
    assert _server_counts(server, device_id) == (35, 35, 35, 34)
    assert engine.status.snapshot.state == "online"
    assert engine.status.snapshot.last_success is not None


def test_retry_after_is_honoured(server: LiveServer, proxy: FaultProxy, store: LocalStore) -> None:
    outbox = store.outbox
    queue(store, 3, 0)
    client = enrolled_client(server, proxy.url)
    proxy.retry_after_s = 2
    proxy.script(["503", "429"], match=lambda m, p: ":batch" in p)
    start = time.monotonic()
    report = SyncEngine(outbox, client, backoff=FAST).sync_once()
    elapsed = time.monotonic() - start
    assert report.ok
    assert report.retries == 2
    assert elapsed >= 4.0  # two Retry-After: 2 waits, although the jitter cap is 0.3 s
    assert outbox.count_unsent() == 0


def test_refused_batch_is_kept_with_reason(server: LiveServer, store: LocalStore) -> None:
    # A row already in the database that the wire schema refuses (as one queued by an older
    # version would be): written as a row, since queueing it through the store is the path
    # that is meant to refuse it.
    bad = str(uuid.uuid4())
    with store.db.transaction() as conn:
        conn.execute(
            outbox_table.insert().values(
                id=bad,
                kind="result",
                payload=json.dumps({"client_id": "has spaces!", "model_id": "m"}),
                created_at=datetime.now(UTC).isoformat(),
                attempts=0,
            )
        )
    client = enrolled_client(server)
    report = SyncEngine(store.outbox, client, backoff=FAST).sync_once()
    assert not report.ok
    assert bad in (report.error or "")
    assert "not a valid wire item" in (store.last_error(bad) or "")
    assert store.outbox.count_unsent() == 1  # never dropped


def test_expired_access_token_is_renewed(server: LiveServer, store: LocalStore) -> None:
    queue(store, 2, 2)
    client = enrolled_client(server)
    client._access = "not-a-valid-token"  # as after the 15-minute access lifetime
    assert SyncEngine(store.outbox, client, backoff=FAST).sync_once().ok
    assert store.outbox.count_unsent() == 0


@pytest.mark.slow
def test_10000_items_through_faults_and_a_restart_exactly_once(tmp_path: Path) -> None:
    settings = base_settings(tmp_path / "backend")
    live = {"server": LiveServer(settings).start()}
    proxy = FaultProxy(live["server"].url, hold_s=3.5, retry_after_s=1)
    restarted = threading.Event()
    stores: list[LocalStore] = []

    def restart() -> None:  # the server goes down mid-batch and comes back on another port
        live["server"].stop()
        time.sleep(0.5)
        live["server"] = LiveServer(settings).start()
        proxy.upstream = live["server"].url
        restarted.set()

    def on_request(n: int, _method: str, path: str) -> None:
        if ":batch" in path and n == 24 and not restarted.is_set():
            threading.Thread(target=restart, daemon=True).start()

    try:
        client = enrolled_client(live["server"], proxy.url, timeout=3.0)
        device_id = client.credentials.require_device().device_id
        store = LocalStore.open(tmp_path / "workstation.db")
        stores.append(store)
        outbox = store.outbox
        queue(store, 5000, 5000)  # queued while offline
        assert outbox.count_unsent() == 10_000
        faults = [
            "reset_before",
            "pass",
            "503",
            "reset_after",
            "truncated",
            "500",
            "pass",
            "timeout",
            "429",
            "reset_after",
            "pass",
            "truncated",
            "reset_before",
            "500",
            "reset_after",
            "pass",
            "503",
            "truncated",
        ]
        proxy.script(faults, match=lambda m, p: ":batch" in p)
        proxy.on_request = on_request
        engine = SyncEngine(outbox, client, batch_size=500, backoff=FAST)
        start = time.monotonic()
        for _ in range(20):
            report = engine.sync_once()
            if outbox.count_unsent() == 0:
                break
        elapsed = time.monotonic() - start
        assert restarted.wait(10), "the server restart was never triggered"
        assert outbox.count_unsent() == 0
        results, distinct, events, head = _server_counts(live["server"], device_id)
        assert (results, distinct, events, head) == (5000, 5000, 5000, 4999)
        with live["server"].state.sessions() as s:
            device = s.get(Device, device_id)
            assert device is not None
            assert device.head_hash == store.audit.chain_head()[1]  # the chain core.audit made
        for fault in set(faults):
            assert proxy.counts[fault] >= 1, fault
        assert proxy.counts["upstream_down"] + proxy.counts["reset_before"] >= 1
        assert report.ok
        assert elapsed < 60, f"took {elapsed:.1f} s"
    finally:
        for store in stores:
            store.close()
        proxy.close()
        live["server"].stop()
