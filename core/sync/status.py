"""Sync status as a plain object with one event: the GUI, CLI and tests all read the same thing.

The engine updates it from its own thread; a Qt view must re-emit ``changed`` through a queued
signal before touching widgets (desktop/sync_status.py does).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Literal

from psygnal import Signal

State = Literal["not_configured", "idle", "syncing", "online", "offline", "alert", "error"]


@dataclass(frozen=True)
class SyncSnapshot:
    state: State = "idle"
    queue_length: int = 0
    last_success: datetime | None = None
    last_error: str | None = None
    alert: str | None = None
    sent_this_run: int = 0

    @property
    def online(self) -> bool:
        return self.state in ("online", "syncing")


class SyncStatus:
    """Thread-safe holder of the latest ``SyncSnapshot``; ``changed`` carries each new one."""

    changed = Signal(object)  # SyncSnapshot

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._snap = SyncSnapshot()

    @property
    def snapshot(self) -> SyncSnapshot:
        with self._lock:
            return self._snap

    def update(self, **changes: Any) -> SyncSnapshot:
        with self._lock:
            self._snap = replace(self._snap, **changes)
            snap = self._snap
        self.changed.emit(snap)
        return snap
