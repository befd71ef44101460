"""The model manager view: installed models, version, framework, device, loaded or not, memory,
last health check; per-model device choice, health checks and unloading.

Health checks run as background jobs. The manager announces changes with a psygnal signal from
whatever thread loaded or evicted a model; ``ManagerEvents`` re-emits them as a Qt signal so the
table refreshes on the GUI thread.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from core.inference.manager import ModelManager, ModelStatus
from core.inference.model_store import POINTER
from desktop.workers import JobContext, JobRunner

COLUMNS = [
    "Model",
    "Version",
    "Framework",
    "Device",
    "Running on",
    "Loaded",
    "Memory",
    "Last health check",
]
DEVICE_CHOICES = ["default", "auto", "cpu", "gpu"]


class ManagerEvents(QObject):
    """Thread hop: psygnal ``ModelManager.changed`` (any thread) -> Qt signal (GUI thread)."""

    changed = Signal(str)

    def __init__(self, manager: ModelManager, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.manager = manager
        manager.changed.connect(self._forward)

    def _forward(self, model_id: str) -> None:
        self.changed.emit(model_id)  # queued to the GUI thread when called from a worker

    def disconnect_manager(self) -> None:
        self.manager.changed.disconnect(self._forward)


def health_job(ctx: JobContext, manager: ModelManager, model_ids: list[str]) -> list[str]:
    """Run each model's self-test sample (worker thread); returns the failures."""
    failures = []
    for model_id in model_ids:
        if ctx.cancelled:
            break
        record = manager.health_check(model_id)
        if not record.ok:
            failures.append(f"{model_id}: {record.message}")
    return failures


def _refused_version(path: Path) -> str:
    """The version a refused package claims: its folder in the store of signed updates
    (``<model id>/<version>``, beside the ``current`` pointer), else its manifest's field."""
    if (path.parent / POINTER).is_file():
        return path.name
    try:
        return str(json.loads((path / "manifest.json").read_text(encoding="utf-8"))["version"])
    except (OSError, ValueError, KeyError, TypeError):
        return "of unknown version"


def refusal_warnings(manager: ModelManager) -> list[str]:
    """One line per refused package: the model, the version refused and why, and what runs
    instead (for a blocked signed update: nothing, and the remedy is said). A signed update that
    fails verification must never be replaced silently by the shipped version (issue 15): this
    is said in the model manager and in the AI panel."""
    lines = []
    for error in manager.package_errors:
        signed = (error.path.parent / POINTER).is_file()
        model_id = error.path.parent.name if signed else error.path.name
        version = _refused_version(error.path)
        what = "signed update" if signed else "copy"
        refused = manager.refusal(model_id)
        if refused is not None:  # blocked: the shipped copy does not run in its place
            instead = f"{refused.reason}. {refused.remedy}" if refused.remedy else refused.reason
        else:
            try:
                package = manager.package(model_id)
            except KeyError:
                instead = "the model is not available"
            else:
                instead = f"running version {package.version} from '{package.path}' instead"
        lines.append(
            f"Model '{model_id}': {what} version {version} REFUSED ({error.where}: "
            f"{error.reason}); {instead}"
        )
    return lines


def _health_text(row: ModelStatus) -> str:
    h = row.health
    if h is None:
        return "never"
    when = time.strftime("%H:%M:%S", time.localtime(h.checked_at))
    return f"{'passed' if h.ok else 'FAILED'} {when} ({h.duration_ms:.0f} ms)"


class ModelManagerView(QWidget):
    def __init__(self, runner: JobRunner, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("modelManager")
        self.setWindowTitle("Model manager")
        self.runner = runner
        self.manager: ModelManager | None = None
        self.warnings: list[str] = []  # refused signed updates of the current manager
        self.events: ManagerEvents | None = None
        self.summary = QLabel("Looking for installed models…")
        self.summary.setWordWrap(True)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.refused = QLabel("")
        self.refused.setObjectName("warning")
        self.refused.setWordWrap(True)
        self.refused.hide()
        self.check_button = QPushButton("Health check all")
        self.check_button.clicked.connect(self.check_all)
        self.unload_button = QPushButton("Unload selected")
        self.unload_button.clicked.connect(self.unload_selected)
        buttons = QHBoxLayout()
        buttons.addWidget(self.check_button)
        buttons.addWidget(self.unload_button)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addWidget(self.summary)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.refused)
        layout.addLayout(buttons)
        self.health_running = False

    def set_manager(self, manager: ModelManager) -> None:
        self.manager = manager
        self.events = ManagerEvents(manager, self)
        self.events.changed.connect(lambda _id: self.refresh())
        self.warnings = refusal_warnings(manager)  # the AI panel shows the same lines
        self.refused.setText("\n".join(self.warnings))
        self.refused.setVisible(bool(self.warnings))
        self.refresh()

    def refresh(self) -> None:
        """Redraw from ``manager.status()`` (cheap: no model is touched)."""
        if self.manager is None:
            return
        rows = self.manager.status()
        loaded = [r for r in rows if r.loaded]
        used = sum(r.memory_bytes for r in loaded) / 2**20
        self.summary.setText(
            f"{len(rows)} installed, {len(loaded)} loaded ({used:.1f} MB of "
            f"{self.manager.budget_bytes / 2**20:.0f} MB budget); global device "
            f"'{self.manager.device}'"
        )
        self.table.setRowCount(len(rows))
        for i, r in enumerate(rows):
            cells = [
                r.model_id + ("  [demo]" if r.demo_notice else ""),
                r.version,
                r.framework,
                None,  # device choice combo
                r.device or "-",
                "yes" if r.loaded else "no",
                f"{r.memory_bytes / 2**20:.1f} MB" if r.loaded else "-",
                _health_text(r),
            ]
            for col, text in enumerate(cells):
                if text is None:
                    continue
                item = QTableWidgetItem(text)
                item.setData(Qt.ItemDataRole.UserRole, r.model_id)
                if col == 0:
                    item.setToolTip(f"{r.name}\n{r.path}")
                if col == 7 and r.health is not None:
                    item.setToolTip(r.health.message)
                self.table.setItem(i, col, item)
            self._device_combo(i, r)

    def _device_combo(self, row: int, status: ModelStatus) -> None:
        assert self.manager is not None
        combo = self.table.cellWidget(row, 3)
        if not isinstance(combo, QComboBox):
            combo = QComboBox()
            combo.addItems(DEVICE_CHOICES)
            combo.setToolTip("default = the global device setting (--device / settings)")
            combo.currentTextChanged.connect(
                lambda text, c=combo: self.set_device(str(c.property("model_id")), text)
            )
            self.table.setCellWidget(row, 3, combo)
        combo.blockSignals(True)
        combo.setProperty("model_id", status.model_id)
        combo.setCurrentText(self.manager.device_override(status.model_id) or "default")
        combo.blockSignals(False)

    def set_device(self, model_id: str, choice: str) -> None:
        if self.manager is not None:
            self.manager.set_device_override(model_id, None if choice == "default" else choice)

    def selected_ids(self) -> list[str]:
        ids = []
        for index in self.table.selectionModel().selectedRows():
            item = self.table.item(index.row(), 0)
            if item is not None:
                ids.append(str(item.data(Qt.ItemDataRole.UserRole)))
        return ids

    def unload_selected(self) -> None:
        if self.manager is None:
            return
        for model_id in self.selected_ids():
            self.manager.unload(model_id)

    def check_all(self) -> None:
        """Health-check every model in the background; the table fills in as each finishes."""
        if self.manager is None or self.health_running:
            return
        self.health_running = True
        self.check_button.setEnabled(False)

        def done(failures: list[str]) -> None:
            self.summary.setText(
                "All health checks passed" if not failures else "FAILED: " + "; ".join(failures)
            )

        def finished(_job: object) -> None:
            self.health_running = False
            self.check_button.setEnabled(True)

        ids = [p.id for p in self.manager.packages()]
        self.runner.start(
            "model health checks",
            health_job,
            self.manager,
            ids,
            on_result=done,
            on_finished=finished,
        )
