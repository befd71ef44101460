"""The status-bar widget and the background sync thread, against a live backend (offscreen),
draining the workstation's encrypted outbox (core.store)."""

from __future__ import annotations

import socket
from datetime import UTC, datetime

from core.store.outbox import enqueue
from core.sync.client import SyncClient
from core.sync.credentials import CredentialStore
from core.sync.engine import BackoffPolicy, SyncEngine
from core.sync.status import SyncSnapshot, SyncStatus
from desktop.sync_status import SyncStatusWidget, describe
from desktop.sync_worker import SyncLoop
from tests.backend.conftest import LiveServer
from tests.sync.conftest import LocalStore, enrolled_client, queue, result_payload, viewed

FAST = BackoffPolicy(base_s=0.02, cap_s=0.1, max_attempts=2)


def test_describe_in_plain_words() -> None:
    now = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)
    text, tip = describe(SyncSnapshot(state="offline", queue_length=12, last_error="refused"), now)
    assert text == "Sync: offline - 12 waiting to send"
    assert "nothing is lost" in tip
    assert "refused" in tip
    text, _ = describe(SyncSnapshot(state="online", last_success=now), now)
    assert text.startswith("Sync: online - nothing waiting - last synced")


def test_thread_drains_and_widget_follows(qtbot, server: LiveServer, store: LocalStore) -> None:  # type: ignore[no-untyped-def]
    outbox = store.outbox
    queue(store, 20, 20)
    status = SyncStatus()
    engine = SyncEngine(outbox, enrolled_client(server), status=status, backoff=FAST)
    widget = SyncStatusWidget(status)
    qtbot.addWidget(widget)
    assert "40 waiting" not in widget.text.text()
    thread = SyncLoop(engine, interval_s=0.2)
    thread.start()
    try:
        qtbot.waitUntil(
            lambda: widget.text.text().startswith("Sync: online - nothing"), timeout=15000
        )
        assert outbox.count_unsent() == 0
        with store.db.transaction() as conn:
            enqueue(conn, "result", {**result_payload(), "client_id": "late-1"})
        thread.sync_now()
        qtbot.waitUntil(lambda: outbox.count_unsent() == 0, timeout=10000)
    finally:
        thread.request_stop()
        thread.wait(15000)
    assert thread.isFinished()


def test_offline_is_shown_and_nothing_lost(qtbot, server: LiveServer, store: LocalStore) -> None:  # type: ignore[no-untyped-def]
    with socket.socket() as s:  # a port nobody listens on: the server is "down"
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    outbox = store.outbox
    queue(store, 3, 0)
    status = SyncStatus()
    client = SyncClient(dead, CredentialStore(dead), timeout=2)
    client.credentials.save_device(enrolled_client(server).credentials.require_device())
    engine = SyncEngine(outbox, client, status=status, backoff=FAST)
    widget = SyncStatusWidget(status)
    qtbot.addWidget(widget)
    thread = SyncLoop(engine, interval_s=5)
    thread.start()
    try:
        qtbot.waitUntil(
            lambda: widget.text.text() == "Sync: offline - 3 waiting to send", timeout=15000
        )
        assert "cannot connect" in widget.toolTip()
    finally:
        thread.request_stop()
        thread.wait(15000)
    assert outbox.count_unsent() == 3


def test_security_alert_reaches_the_gui(qtbot, server: LiveServer, store: LocalStore) -> None:  # type: ignore[no-untyped-def]
    outbox = store.outbox
    store.audit.append(viewed(0), sync=False)  # index 0 never queued: the server sees a gap
    store.audit.append(viewed(1))
    status = SyncStatus()
    engine = SyncEngine(outbox, enrolled_client(server), status=status, backoff=FAST)
    widget = SyncStatusWidget(status)
    qtbot.addWidget(widget)
    thread = SyncLoop(engine, interval_s=5)
    try:
        with qtbot.waitSignal(thread.alert, timeout=15000) as got:
            thread.start()
        assert got.args[0].code == "audit_chain_gap"
        qtbot.waitUntil(lambda: widget.text.text() == "Sync: SECURITY ALERT", timeout=5000)
        assert "inform IT security" in widget.toolTip()
    finally:
        thread.request_stop()
        thread.wait(15000)
    assert outbox.count_unsent() == 1
