"""Audits what the user does with patient data in the window (HIPAA 164.312(b)).

Hooks the viewer's signals instead of editing the controller: showing a series is "DICOM
Instances Accessed" (once per series opened, not per slice; local files count as accessed, not
imported), saving the current view as an image is "Export". AI runs and decisions are audited by
the results store behind the AI panel's sink (core.security.workstation.ResultsDecisionSink).
Appends run on one writer thread, in order, so an fsync never stalls the GUI; a failed append
is shown to the user, never swallowed. The status bar shows the chain head (what sync anchors).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QFileDialog, QLabel, QMenu

from core.audit.log import AuditEvent, AuditObject
from core.audit.vocabulary import EventType, Outcome
from core.imaging.model import Series
from core.security.users import Permission
from core.security.workstation import Workstation
from desktop.audit_viewer import AuditViewer
from desktop.menus import find_menu

if TYPE_CHECKING:
    from desktop.main_window import MainWindow


class AuditHooks(QObject):
    audit_failed = Signal(str)  # from the writer thread; shown in the status bar
    audited = Signal()  # an append finished (the chain head moved)

    def __init__(self, window: MainWindow, ws: Workstation, menu: QMenu | None = None) -> None:
        super().__init__(window)
        self.window = window
        self.ws = ws
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="audit-writer")
        self._last_series: str | None = None
        self.head_label = QLabel("")
        self.head_label.setObjectName("chainHead")
        window.statusBar().addPermanentWidget(self.head_label)
        self.viewer = AuditViewer(ws, window.runner)
        self.viewer.audited.connect(self.refresh_head)
        self.audit_dock = window.add_panel(self.viewer, Qt.DockWidgetArea.BottomDockWidgetArea,
                                           "Audit trail")
        self.audit_dock.hide()
        self._build_actions(menu or window.menuBar().addMenu("&Audit"))
        window.state.series_changed.connect(self._on_series_changed)
        self.audit_failed.connect(self._show_failure)
        self.audited.connect(self.refresh_head)
        # login, lock and AI events are appended by core.security / core.results directly
        self._head_timer = QTimer(self, interval=3_000)
        self._head_timer.timeout.connect(self.refresh_head)
        self._head_timer.start()
        self.record(EventType.APPLICATION_ACTIVITY, [], action="start")
        self.refresh_head()

    def _build_actions(self, menu: QMenu) -> None:
        user = self.ws.session.user
        menu.addSeparator()
        self.audit_action = QAction("Audit trail…", self.window)
        self.audit_action.triggered.connect(self.show_audit)
        self.audit_action.setEnabled(bool(user and user.can(Permission.READ_AUDIT)))
        if not self.audit_action.isEnabled():
            self.audit_action.setToolTip("Only the admin and auditor roles read the audit trail")
        menu.addAction(self.audit_action)
        self.export_action = QAction("Export view as PNG…", self.window)
        self.export_action.triggered.connect(self.export_view_dialog)
        self.window.addAction(self.export_action)
        file_menu = find_menu(self.window, "File")
        if file_menu is not None:  # above "Quit", which ends the menu
            quit_action = next((a for a in file_menu.actions() if a.text() == "Quit"), None)
            if quit_action is not None:
                file_menu.insertAction(quit_action, self.export_action)
            else:
                file_menu.addAction(self.export_action)
        else:
            menu.addAction(self.export_action)

    # --- recording -------------------------------------------------------------------------
    def record(self, event_type: EventType, objects: list[AuditObject],
               outcome: Outcome = Outcome.SUCCESS, **details: Any) -> None:
        """Append on the writer thread, in the name of whoever is signed in now."""
        event = AuditEvent(event_type, user=self.ws.user_name, role=self.ws.role_name,
                           outcome=outcome, objects=objects, details=details)

        def write() -> None:
            try:
                self.ws.audit.append(event)
            except Exception as exc:  # noqa: BLE001 - any failure must reach the user
                self.audit_failed.emit(f"{event_type.meaning}: {exc}")
            else:
                self.audited.emit()

        self._writer.submit(write)

    def flush(self) -> None:
        """Wait until the queued appends are durable (tests, shutdown)."""
        self._writer.submit(lambda: None).result()

    def context_objects(self) -> list[AuditObject]:
        """Patient (id + name), study and series of what is on screen."""
        state = self.window.state
        objects: list[AuditObject] = []
        ctx = state.context()
        if ctx is not None:
            patient, study = ctx
            objects += [AuditObject("patient", patient.patient_id, patient.name),
                        AuditObject("study", study.study_instance_uid)]
        if state.series is not None:
            objects.append(AuditObject("series", state.series.series_instance_uid))
        return objects

    def _on_series_changed(self, series: Series | None) -> None:
        """A new series on screen; refreshes of the same series are not new access.

        Recorded when its first image shows (a folder may still be indexed behind a provisional
        first image, so no instance count: the series UID names what was accessed)."""
        if series is None or series.series_instance_uid == self._last_series:
            return
        self._last_series = series.series_instance_uid
        self.record(EventType.INSTANCES_ACCESSED, self.context_objects(), action="view",
                    modality=series.modality)

    # --- export ----------------------------------------------------------------------------
    def export_view_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self.window, "Export the view as PNG",
                                              "view.png", "PNG image (*.png)")
        if path:
            self.export_view(Path(path))

    def export_view(self, path: Path) -> bool:
        """Save what the viewport shows (overlay included) and audit it as Export."""
        ref = self.window.state.current_slice()
        if ref is None:
            self.window.statusBar().showMessage("Nothing to export: open a series first", 8000)
            return False
        objects = [*self.context_objects(), AuditObject("instance", ref.instance.sop_instance_uid),
                   AuditObject("file", str(path))]
        saved = bool(self.window.viewport.grab().save(str(path), "PNG"))
        outcome = Outcome.SUCCESS if saved else Outcome.MINOR_FAILURE
        self.record(EventType.EXPORT, objects, outcome, action="export-view", format="png")
        self.window.statusBar().showMessage(
            f"View exported to '{path}'" if saved else f"Cannot write '{path}'", 8000)
        return saved

    # --- status and the viewer -------------------------------------------------------------
    def refresh_head(self) -> None:
        try:
            index, head = self.ws.audit.chain_head()
        except Exception as exc:  # noqa: BLE001 - the status bar says it, the app goes on
            self.head_label.setText("audit: unreadable")
            self.head_label.setToolTip(str(exc))
            return
        self.head_label.setText(f"audit #{index} {head[:8]}")
        self.head_label.setToolTip(f"Audit chain head: event #{index}, hash {head}")

    def _show_failure(self, text: str) -> None:
        self.window.statusBar().showMessage(f"Audit trail write failed - {text}", 30_000)

    def show_audit(self) -> None:
        self.audit_dock.show()
        self.audit_dock.raise_()
        self.viewer.open_trail()

    def shutdown(self) -> None:
        self._head_timer.stop()
        if self.ws.session.user is not None:
            self.record(EventType.APPLICATION_ACTIVITY, [], action="stop")
        self._writer.shutdown(wait=True)
