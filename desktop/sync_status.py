"""The sync status in the status bar: online/offline, items waiting, last success, errors.

The engine and its ``SyncStatus`` live in core (no Qt); the passes that drive them run as jobs
(``desktop.sync_worker``). ``SyncStatusWidget`` subscribes to ``SyncStatus.changed`` through a
Qt signal, so updates made on a worker thread are painted on the GUI thread.
"""

from __future__ import annotations

import logging
from datetime import datetime

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QWidget

from core.sync.status import SyncSnapshot, SyncStatus

log = logging.getLogger(__name__)

_COLOURS = {
    "online": "#3fb950",
    "syncing": "#58a6ff",
    "offline": "#d29922",
    "error": "#f85149",
    "alert": "#f85149",
    "idle": "#8b949e",
    "not_configured": "#8b949e",
}


def describe(snap: SyncSnapshot, now: datetime | None = None) -> tuple[str, str]:
    """(short status-bar text, longer tooltip) in plain words."""
    queued = f"{snap.queue_length} waiting to send" if snap.queue_length else "nothing waiting"
    if snap.last_success is None:
        last = "not synced yet"
    else:
        local = snap.last_success.astimezone()
        today = (now or datetime.now().astimezone()).date() == local.date()
        last = f"last synced {local:%H:%M}" if today else f"last synced {local:%d %b %H:%M}"
    if snap.state == "alert":
        return ("Sync: SECURITY ALERT", f"{snap.alert}\n{queued}")
    if snap.state == "offline":
        return (
            f"Sync: offline - {queued}",
            "The sync server cannot be reached; nothing is lost, everything is sent when it "
            f"is back.\n{last}\nDetail: {snap.last_error or 'no answer'}",
        )
    if snap.state == "error":
        return (f"Sync: problem - {queued}", f"{snap.last_error}\n{last}")
    if snap.state == "not_configured":
        return ("Sync not configured", snap.last_error or "No sync server is configured.")
    if snap.state == "syncing":
        return (f"Sync: sending - {queued}", last)
    if snap.state == "online":
        return (f"Sync: online - {queued} - {last}", last)
    return (f"Sync: {queued}", last)


class _Bridge(QObject):
    changed = Signal(object)


class SyncStatusWidget(QWidget):
    """A coloured dot and one line of text; the tooltip explains and names the last error.

    ``set_note`` adds a line (model updates) to the tooltip; a click emits ``clicked``."""

    clicked = Signal()

    def __init__(self, status: SyncStatus, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.status = status
        self.dot = QLabel("\u25cf")
        self.text = QLabel()
        layout = QHBoxLayout(self)
        layout.setContentsMargins(4, 0, 4, 0)
        layout.addWidget(self.dot)
        layout.addWidget(self.text)
        self.note = ""
        self._bridge = _Bridge(self)
        self._bridge.changed.connect(self.show_snapshot)  # queued when emitted from the sync thread
        status.changed.connect(self._bridge.changed.emit)
        self.show_snapshot(status.snapshot)

    def show_snapshot(self, snap: SyncSnapshot) -> None:
        short, tip = describe(snap)
        colour = _COLOURS.get(snap.state, "#8b949e")
        self.dot.setStyleSheet(f"color: {colour};")
        weight = "bold" if snap.state == "alert" else "normal"
        self.text.setStyleSheet(
            f"font-weight: {weight};" + (f" color: {colour};" if snap.state == "alert" else "")
        )
        self.text.setText(short)
        self.setToolTip(tip + (f"\n{self.note}" if self.note else ""))

    def set_note(self, note: str) -> None:
        self.note = note
        self.show_snapshot(self.status.snapshot)

    def mouseReleaseEvent(self, event) -> None:  # type: ignore[no-untyped-def]
        self.clicked.emit()
        super().mouseReleaseEvent(event)

    def closeEvent(self, event) -> None:  # type: ignore[no-untyped-def]
        self.status.changed.disconnect(self._bridge.changed.emit)
        super().closeEvent(event)
