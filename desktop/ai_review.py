"""What a radiologist reviews after an AI run over a series: the findings (slices over
threshold, sorted by slice, with an out-of-distribution mark), the run's warnings in an amber
banner, the reject reasons, and the decision history (this run's and earlier runs' of the same
model version on the same images, with author and time)."""

from __future__ import annotations

import logging
import re
from datetime import datetime
from typing import Any

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QColor, QKeyEvent
from PySide6.QtWidgets import (
    QComboBox,
    QGroupBox,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QVBoxLayout,
    QWidget,
)

from core.app.results import ReadingResults
from core.results.findings import Finding, ood_images, positive_findings, run_warnings
from core.results.reasons import REJECT_REASONS, reason_label
from core.results.store import DecisionRecord
from desktop.slider_marks import FINDING_COLOUR, OOD_COLOUR
from desktop.workers import JobContext, JobRunner

log = logging.getLogger(__name__)

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


class FindingsBox(QGroupBox):
    """The findings of the shown series run: a count line and the list; ``jump(slice)``."""

    jump = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Findings", parent)
        self.setObjectName("aiFindingsBox")
        self.label = QLabel("")
        self.label.setWordWrap(True)
        self.list = FindingsList()
        layout = QVBoxLayout(self)
        layout.addWidget(self.label)
        layout.addWidget(self.list)
        self.list.jump.connect(self.jump)
        self.ood: dict[int, str] = {}  # image index -> OOD message, of the result shown
        self.hide()

    def show_run(self, result: dict[str, Any] | None, at: list[int | None]) -> dict[int, QColor]:
        """Fill from a result's JSON; ``at``: the viewport slice of each input (None: not in
        this series). Returns the slider marks (``slider_marks``; none for a single image)."""
        self.ood = ood_images(result) if result is not None else {}
        if result is None:
            self.list.clear()
            self.hide()
            return {}
        listed = [(i, f) for f in positive_findings(result) if (i := at[f.index]) is not None]
        self.list.show_findings(listed)
        n = len(result.get("decisions") or [])
        hint = " — click or press Enter to go to one" if listed else ""
        self.label.setText(
            f"{len(listed)} of {n} {'slice' if n == 1 else 'slices'} over threshold{hint}"
        )
        self.setVisible(n > 1)  # one image: its result says it all, no list, no marks
        if n <= 1:
            return {}
        return slider_marks(listed, self.ood, at)


def slider_marks(
    listed: list[tuple[int, Finding]], ood: dict[int, str], at: list[int | None]
) -> dict[int, QColor]:
    """Slice -> mark colour: red for a finding, amber for an image the OOD guard flagged,
    finding or not (doubt wins: a red mark on an image unlike the training data would claim
    more than the model can say)."""
    marks = {i: FINDING_COLOUR for i, _f in listed}
    marks.update({i: OOD_COLOUR for k in ood if k < len(at) and (i := at[k]) is not None})
    return marks


_IMAGE_N = re.compile(r"\bimage (\d+)\b")
_N_OF_M_IMAGES = re.compile(r"\b(\d+) of (\d+) images\b")


def guard_lines(result: dict[str, Any], at: list[int | None]) -> list[str]:
    """The run's guard messages (``run_warnings``) worded as the viewer counts: in a run over
    several images, "image 3" (the guard's count of the run's inputs) becomes the slice number
    the slider and the findings list show, and "N of M images" becomes "N of M slices"."""
    lines = run_warnings(result)
    if len(result.get("decisions") or []) <= 1:
        return lines

    def slice_of(match: re.Match[str]) -> str:
        k = int(match.group(1)) - 1
        i = at[k] if 0 <= k < len(at) else None
        return f"slice {i + 1}" if i is not None else match.group(0)

    return [_N_OF_M_IMAGES.sub(r"\1 of \2 slices", _IMAGE_N.sub(slice_of, line)) for line in lines]


def history_job(_ctx: JobContext, results: ReadingResults, result_id: str) -> list[DecisionRecord]:
    """The decisions on a result and on earlier runs on the same images (a database read)."""
    return results.history(result_id)


class HistoryReader(QObject):
    """Decision histories read in jobs, one read in flight per result; a read started before
    the latest decision is dropped when it arrives. ``notes``: the last word on a decision
    (failed / saved) that stays under the verdict."""

    read = Signal(str)  # the history of this result id was read and stored

    def __init__(self, runner: JobRunner, results: ReadingResults, parent: QObject | None = None):
        super().__init__(parent)
        self.runner, self.results = runner, results
        self.histories: dict[str, list[DecisionRecord]] = {}
        self.notes: dict[str, str] = {}
        self._gen: dict[str, int] = {}  # result id -> decisions recorded since the first read
        self._reading: set[str] = set()

    def get(self, result_id: str) -> list[DecisionRecord] | None:
        """The history when read; else None, and a read is started."""
        found = self.histories.get(result_id)
        if found is None:
            self._start(result_id)
        return found

    def changed(self, result_id: str, note: str = "") -> None:
        """A decision was recorded: read again (a read in flight is stale now)."""
        self.histories.pop(result_id, None)
        self._gen[result_id] = self._gen.get(result_id, 0) + 1
        self._reading.discard(result_id)
        self.note(result_id, note)

    def note(self, result_id: str, note: str) -> None:
        if note:
            self.notes[result_id] = note
        else:
            self.notes.pop(result_id, None)

    def _start(self, result_id: str) -> None:
        if result_id in self._reading:
            return
        self._reading.add(result_id)
        gen = self._gen.get(result_id, 0)

        def done(history: list[DecisionRecord] | None) -> None:
            if self._gen.get(result_id, 0) != gen:
                return  # stale: a decision came in since; its own read follows
            self._reading.discard(result_id)
            if history is not None:
                self.histories[result_id] = history
                self.read.emit(result_id)

        def failed(exc: BaseException) -> None:
            log.warning("decision history of '%s': %s", result_id, exc)
            done(None)

        self.runner.start(
            "reading AI decisions",
            history_job,
            self.results,
            result_id,
            on_result=done,
            on_error=failed,
        )


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
