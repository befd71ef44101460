"""What a radiologist reviews after an AI run over a series: the findings (slices over
threshold, sorted by slice, with an out-of-distribution mark), the run's warnings in an amber
banner, the reject reasons, and the decision history (this run's and earlier runs' of the same
model version on the same images, with author and time)."""

from __future__ import annotations

from datetime import datetime

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor, QKeyEvent
from PySide6.QtWidgets import QComboBox, QLabel, QListWidget, QListWidgetItem, QWidget

from core.results.findings import Finding
from core.results.reasons import REJECT_REASONS, reason_label
from core.results.store import DecisionRecord

AMBER_STYLE = "background:#5c4300;color:#ffe9a8;padding:4px;border-radius:3px;"
OOD_BRUSH = QColor("#ffb300")


def guard_banner() -> QLabel:
    label = QLabel("")
    label.setObjectName("guardBanner")
    label.setStyleSheet(AMBER_STYLE)
    label.setWordWrap(True)
    label.hide()
    return label


def reason_box() -> QComboBox:
    """The reject reasons; the first entry (no code) rejects without one."""
    box = QComboBox()
    box.setObjectName("rejectReason")
    box.addItem("Reason (optional)…", "")
    for code, text in REJECT_REASONS.items():
        box.addItem(text, code)
    box.setToolTip("Why the result is wrong; say more in the comment field")
    return box


class FindingsList(QListWidget):
    """One row per finding: "Slice 12 · tumour 0.998", OOD-flagged rows marked in amber.
    ``jump(slice index)`` on click, double-click or Enter."""

    jump = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("aiFindings")
        self.setMaximumHeight(130)
        self.itemClicked.connect(self._activate)
        self.itemActivated.connect(self._activate)

    def show_findings(self, found: list[tuple[int, Finding]]) -> None:
        """``found``: (slice index in the viewport, finding), any order; listed by slice."""
        self.clear()
        for slice_index, f in sorted(found, key=lambda x: x[0]):
            text = f"Slice {slice_index + 1} · {f.label} {f.score:.3f} (≥ {f.threshold:.3f})"
            if f.ood:
                text += " · ⚠ out of distribution"
            item = QListWidgetItem(text)
            item.setData(Qt.ItemDataRole.UserRole, slice_index)
            if f.ood:
                item.setForeground(OOD_BRUSH)
                item.setToolTip(f.ood)
            self.addItem(item)

    def slices(self) -> list[int]:
        return [int(self.item(i).data(Qt.ItemDataRole.UserRole)) for i in range(self.count())]

    def _activate(self, item: QListWidgetItem) -> None:
        self.jump.emit(int(item.data(Qt.ItemDataRole.UserRole)))

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and self.currentItem():
            self._activate(self.currentItem())
            event.accept()
            return
        super().keyPressEvent(event)


def when(stamp: str) -> str:
    """An ISO time as the local "YYYY-MM-DD HH:MM"."""
    try:
        return datetime.fromisoformat(stamp).astimezone().strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return stamp


def describe(record: DecisionRecord, result_id: str) -> str:
    """One history line: time, who, what, the reason and text; an earlier run says so."""
    what = record.decision
    if record.reason:
        what += f": {reason_label(record.reason)}"
    if record.comment:
        what += f" — “{record.comment}”"
    earlier = "" if record.result_id in ("", result_id) else " (earlier run, same images)"
    return f"{when(record.created_at)} · {record.user} · {what}{earlier}"


def verdict_text(history: list[DecisionRecord], result_id: str) -> str:
    """The verdict line: the latest accept/reject (this run's or an earlier run's)."""
    final = [d for d in history if d.decision != "comment"]
    if not final:
        return "Not reviewed yet"
    last = final[-1]
    who = f"{last.user}, {when(last.created_at)}"
    reason = f" ({reason_label(last.reason)})" if last.reason else ""
    if last.result_id not in ("", result_id):
        return f"Earlier decision on the same images: {last.decision}{reason} by {who}"
    return f"Decision: {last.decision}{reason} by {who}"


class HistoryList(QListWidget):
    """Decisions and comments under the result, oldest first."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("aiHistory")
        self.setMaximumHeight(100)
        self.setWordWrap(True)

    def show_history(self, history: list[DecisionRecord], result_id: str) -> None:
        self.clear()
        for record in history:
            self.addItem(describe(record, result_id))
        self.setVisible(bool(history))

    def lines(self) -> list[str]:
        return [self.item(i).text() for i in range(self.count())]
