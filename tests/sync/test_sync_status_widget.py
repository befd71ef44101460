"""The status-bar widget's plain words. The passes it shows (core.app.sync, run as window jobs
by desktop.sync_worker) are tested in tests/app/test_sync.py and tests/desktop/test_sync_gui.py
against a live backend."""

from __future__ import annotations

from datetime import UTC, datetime

from core.sync.engine import BackoffPolicy
from core.sync.status import SyncSnapshot
from desktop.sync_status import describe

FAST = BackoffPolicy(base_s=0.02, cap_s=0.1, max_attempts=2)


def test_describe_in_plain_words() -> None:
    now = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)
    text, tip = describe(SyncSnapshot(state="offline", queue_length=12, last_error="refused"), now)
    assert text == "Sync: offline - 12 waiting to send"
    assert "nothing is lost" in tip
    assert "refused" in tip
    text, _ = describe(SyncSnapshot(state="online", last_success=now), now)
    assert text.startswith("Sync: online - nothing waiting - last synced")
