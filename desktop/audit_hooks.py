"""Audits what the user does with patient data in the window (HIPAA 164.312(b)).

Hooks the viewer's signals instead of editing the controller: showing a series is "DICOM
Instances Accessed" (core.app.access; once per series opened, not per slice), saving the current
view as an image is "Export" (core.app.exports: audited first, written only once recorded). AI
runs and decisions are recorded by the AI panel's jobs (core.app.results). The use cases run as
jobs, one at a time and in order (``SerialJobs``), so an fsync never stalls the GUI; a failed
append is shown to the user, never swallowed. The status bar shows the chain head.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QCoreApplication, QEventLoop, QObject, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QImage
from PySide6.QtWidgets import QFileDialog, QLabel, QMenu

from core.app.access import series_participants, series_viewed
from core.app.exports import export_file
from core.app.workstation import Workstation
from core.audit.events import Participants
from core.audit.vocabulary import EventType, Outcome
from core.imaging.model import Series
from core.security.users import Permission
from desktop.audit_viewer import AuditViewer
from desktop.permissions import gate_action
from desktop.workers import Job, JobContext, SerialJobs

if TYPE_CHECKING:
    from desktop.main_window import MainWindow


def _chain_head(_ctx: JobContext, ws: Workstation) -> tuple[int, str]:
    return ws.audit.chain_head()


class AuditHooks(QObject):
    audit_failed = Signal(str)  # from the writer thread; shown in the status bar
    audited = Signal()  # an append finished (the chain head moved)

    def __init__(self, window: MainWindow, ws: Workstation, menu: QMenu | None = None) -> None:
        super().__init__(window)
        self.window = window
        self.ws = ws
        self._serial = SerialJobs(window.runner, self)
        self._head_job: Job | None = None
        self._last_series: str | None = None
        self.head_label = QLabel("")
        self.head_label.setObjectName("chainHead")
        window.statusBar().addPermanentWidget(self.head_label)
        self.viewer = AuditViewer(ws, window.runner)
        self.viewer.audited.connect(self.refresh_head)
        self.audit_dock = window.add_panel(
            self.viewer, Qt.DockWidgetArea.BottomDockWidgetArea, "Audit trail"
        )
        self.audit_dock.hide()
        self._build_actions(menu or window.menuBar().addMenu("&Audit"))
        window.state.series_changed.connect(self._on_series_changed)
        self.audit_failed.connect(self._show_failure)
        self.audited.connect(self.refresh_head)
        # login, lock and AI events are appended by core.security / core.results directly
        self._head_timer = QTimer(self, interval=3_000)
        self._head_timer.timeout.connect(self.refresh_head)
        self._head_timer.start()
        self.record(EventType.APPLICATION_ACTIVITY, action="start")
        self.refresh_head()

    def _build_actions(self, menu: QMenu) -> None:
        user = self.ws.session.user
        menu.addSeparator()
        self.audit_action = QAction("Audit trail…", self.window)
        self.audit_action.triggered.connect(self.show_audit)
        gate_action(self.audit_action, user, Permission.READ_AUDIT)  # the reason in its text
        menu.addAction(self.audit_action)
        self.export_action = QAction("Export view as PNG…", self.window)
        self.export_action.triggered.connect(self.export_view_dialog)
        gate_action(self.export_action, user, Permission.VIEW)  # core.app.exports checks VIEW
        self.window.addAction(self.export_action)
        if self.window.menus is not None:
            self.window.menus.add_to_file(self.export_action)
        else:
            menu.addAction(self.export_action)

    # --- recording -------------------------------------------------------------------------
    def run(
        self,
        what: str,
        use_case: Callable[..., Any],
        *args: Any,
        on_done: Callable[[Any], None] | None = None,
        **kwargs: Any,
    ) -> None:
        """Run an audited use case as the next serial job; failures reach the status bar."""

        def job(_ctx: JobContext) -> Any:
            return use_case(*args, **kwargs)

        def done(value: Any) -> None:
            self.audited.emit()
            if on_done is not None:
                on_done(value)

        self._serial.submit(
            what, job, on_result=done, on_error=lambda exc: self.audit_failed.emit(f"{what}: {exc}")
        )

    def record(self, event_type: EventType, **details: Any) -> None:
        """An application event (start, stop) in the name of whoever is signed in now."""
        self.run(event_type.meaning, self.ws.record, event_type, **details)

    def record_failure(self, job_name: str, error: str) -> None:
        """A background job failed (the window's one error sink): an Application Activity
        with a minor-failure outcome, naming the job and the error."""
        self.run(
            "Application Activity",
            self.ws.record,
            EventType.APPLICATION_ACTIVITY,
            (),
            Outcome.MINOR_FAILURE,
            action="job-failed",
            job=job_name,
            error=error[:500],
        )

    def flush(self, timeout_s: float = 30.0) -> None:
        """Process events until the queued use cases are done (tests, shutdown)."""
        deadline = time.monotonic() + timeout_s
        while self._serial.pending and time.monotonic() < deadline:
            QCoreApplication.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 20)
            time.sleep(0.002)

    def _on_series_changed(self, series: Series | None) -> None:
        """A new series on screen; refreshes of the same series are not new access.

        Recorded when its first image shows (a folder may still be indexed behind a provisional
        first image, so no instance count: the series UID names what was accessed)."""
        if series is None or series.series_instance_uid == self._last_series:
            return
        self._last_series = series.series_instance_uid
        ctx = self.window.state.context()
        patient, study = ctx if ctx is not None else (None, None)
        self.run("Instances Accessed", series_viewed, self.ws, patient, study, series)

    # --- export ----------------------------------------------------------------------------
    def export_view_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(
            self.window, "Export the view as PNG", "view.png", "PNG image (*.png)"
        )
        if path:
            self.export_view(Path(path))

    def export_view(self, path: Path) -> bool:
        """Save what the viewport shows (overlay included): audited first, written in a job."""
        state = self.window.state
        ref = state.current_slice()
        if ref is None or state.series is None:
            self.window.statusBar().showMessage("Nothing to export: open a series first", 8000)
            return False
        ctx = state.context()
        patient, study = ctx if ctx is not None else (None, None)
        participants: Participants = series_participants(patient, study, state.series)
        participants.instances([ref.instance])
        image: QImage = self.window.viewport.grab().toImage()  # pixels copied on this thread

        def write(target: Path) -> None:
            # PySide6 takes the format as str at run time; its stubs say bytes
            if not image.save(str(target), "PNG"):  # type: ignore[call-overload]
                raise OSError(f"Qt could not write a PNG to '{target}'")

        bar = self.window.statusBar()
        self.run(
            "Export",
            export_file,
            self.ws,
            participants,
            path,
            write,
            action="export-view",
            format="png",
            on_done=lambda _: bar.showMessage(f"View exported to '{path}'", 8000),
        )
        return True

    # --- status and the viewer -------------------------------------------------------------
    def refresh_head(self) -> None:
        """Show the chain head in the status bar (read in a job, one at a time)."""
        if self._head_job is not None and not self._head_job.done:
            return
        self._head_job = self.window.runner.start(
            "reading the audit head",
            _chain_head,
            self.ws,
            on_result=self._show_head,
            on_error=self._head_unreadable,
        )

    def _show_head(self, found: tuple[int, str]) -> None:
        index, head = found
        self.head_label.setText(f"audit #{index} {head[:8]}")
        self.head_label.setToolTip(f"Audit chain head: event #{index}, hash {head}")

    def _head_unreadable(self, exc: BaseException) -> None:  # the status bar says it
        self.head_label.setText("audit: unreadable")
        self.head_label.setToolTip(str(exc))

    def _show_failure(self, text: str) -> None:
        self.window.statusBar().showMessage(f"Audit trail write failed - {text}", 30_000)

    def show_audit(self) -> None:
        self.audit_dock.show()
        self.audit_dock.raise_()
        self.viewer.open_trail()

    def shutdown(self) -> None:
        """Record the stop and wait for every queued event (before the runner shuts down)."""
        self._head_timer.stop()
        if self.ws.session.user is not None:
            self.record(EventType.APPLICATION_ACTIVITY, action="stop")
        self.flush()
