"""Background sync in the window: a sync pass (core.app.sync) runs as a job of the window's
``JobRunner``, one at a time, every ``sync.interval_s`` and at once on "Sync now"; the status bar
says how it stands in plain words.

The pass does all the network and database work on a worker thread (enrolment with IT's code on
the first start, the outbox drain, the last success kept in the encrypted store, the signed model
updates every ``MODEL_CHECK_S``, a Security Alert audited); the GUI thread only starts passes
on a timer and shows what they return. Wiring (desktop/app.py)::

    sync = install_sync(window, ws, settings)   # None when sync is not configured
    ... after app.exec(): if sync: sync.stop(5.0)
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QCoreApplication, QEventLoop, QObject, QTimer
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QMainWindow, QMessageBox

from core.app.sync import MODEL_CHECK_S, PassOutcome, SyncSession, load_last_success
from core.config import Settings
from core.sync.client import check_server_url
from core.sync.engine import BackoffPolicy, SecurityAlert
from core.sync.errors import SyncConfigError
from core.sync.status import SyncStatus
from desktop.sync_status import SyncStatusWidget
from desktop.workers import ErrorSink, Job, JobContext, JobRunner

if TYPE_CHECKING:
    from core.app.workstation import Workstation

__all__ = ["SyncController", "install_sync", "load_last_success"]

log = logging.getLogger(__name__)

NOT_CONFIGURED = "Sync not configured"


def pass_job(_ctx: JobContext, session: SyncSession) -> PassOutcome:
    return session.run_pass()


class SyncController(QObject):
    """Starts the passes of one window's ``SyncSession`` and shows their outcome."""

    def __init__(
        self, window: QMainWindow, runner: JobRunner, session: SyncSession, widget: SyncStatusWidget
    ) -> None:
        super().__init__(window)
        self.window, self.runner, self.session, self.widget = window, runner, session, widget
        self.status: SyncStatus = session.status
        self.alerts: list[SecurityAlert] = []
        self.alert_box: QMessageBox | None = None
        self.model_note = ""
        self._job: Job | None = None
        self._again = False  # "Sync now" during a pass: one more pass right after it
        self._timer = QTimer(self)
        self._timer.setInterval(max(1, int(session.settings.sync.interval_s * 1000)))
        self._timer.timeout.connect(self._start_pass)
        self.action = QAction("Sync now", window)
        self.action.setToolTip(
            "Send queued results and audit events now and check for model updates"
        )
        self.action.triggered.connect(self.sync_now)
        app = QCoreApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(self.stop)  # no pass outlives the application

    @property
    def passes(self) -> int:
        return self.session.passes

    def start(self) -> None:
        self._start_pass()
        self._timer.start()

    def _start_pass(self) -> None:
        if self._job is not None:
            return
        if self.session.stopping or self.runner.closed:
            self._timer.stop()
            return
        self._job = self.runner.start(
            "sync", pass_job, self.session, on_result=self._on_pass, on_finished=self._finished
        )

    def _finished(self, _job: Job) -> None:
        self._job = None
        if self._again:
            self._again = False
            self._start_pass()

    def _on_pass(self, outcome: PassOutcome) -> None:
        for alert in self.session.alerts[len(self.alerts) :]:  # audited by the pass already
            self._show_alert(alert)
        if outcome.models_note is not None:
            self._on_models(outcome.models_note)
        if outcome.stopped:
            self._timer.stop()

    def _show_alert(self, alert: SecurityAlert) -> None:
        self.alerts.append(alert)
        self.window.statusBar().showMessage(alert.message, 0)
        box = QMessageBox(
            QMessageBox.Icon.Critical,
            "Security Alert",
            alert.message,
            QMessageBox.StandardButton.Ok,
            self.window,
        )
        box.setModal(False)
        box.show()  # not exec(): a warning must not freeze the window behind it
        self.alert_box = box

    def _on_models(self, note: str) -> None:
        self.model_note = note
        self.widget.set_note(note)
        if note and not note.startswith("Model update"):
            self.window.statusBar().showMessage(note, 15_000)

    def sync_now(self) -> None:
        self.session.models_due()
        if self._job is not None:
            self._again = True
        else:
            self._start_pass()

    def stop(self, timeout: float = 10.0) -> bool:
        """Stop passing; True when no pass runs any more within ``timeout`` seconds.

        A request in flight is waited for up to ``timeout``; after that the HTTP client is
        closed under it, which ends the request at once (nothing is lost: unacknowledged rows
        stay queued)."""
        self._timer.stop()
        self._again = False
        self.session.request_stop()
        if not self._wait(timeout):
            self.session.close()
            self._wait(2.0)
        stopped = self._job is None or self._job.done
        if stopped:
            self.session.close()
        else:
            log.warning("the sync pass did not stop within %.1f s", timeout)
        return stopped

    def _wait(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self._job is not None and not self._job.done:
            if time.monotonic() > deadline:
                return False
            QCoreApplication.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 20)
            time.sleep(0.002)
        return True


def _add_action(window: QMainWindow, action: QAction) -> None:
    """Tools > Sync now in the main window, else a Sync menu of its own."""
    menus = getattr(window, "menus", None)
    if menus is not None:
        menus.tools.addSeparator()
        menus.tools.addAction(action)
        return
    window.menuBar().addMenu("S&ync").addAction(action)


def install_sync(
    window: Any,
    ws: Workstation,
    settings: Settings,
    *,
    backoff: BackoffPolicy | None = None,
    model_check_s: float = MODEL_CHECK_S,
) -> SyncController | None:
    """Put the sync status in the status bar and, when a server is configured, start syncing.

    ``window``: the MainWindow (its runner runs the passes; its ``sync`` and
    ``sync_status_widget`` slots are set), or any QMainWindow (a runner of its own).
    Not configured (no ``sync.server_url``, or plain http to another host): the widget says so
    with the reason in its tooltip, nothing runs, and None is returned. A CA bundle or proxy
    setting that cannot work is found by the first pass (it reads files) and shown the same."""
    status = SyncStatus()
    widget = SyncStatusWidget(status)
    widget.setObjectName("syncStatus")
    window.statusBar().addPermanentWidget(widget)
    window.sync_status_widget = widget
    try:
        check_server_url(settings.sync.server_url)
    except SyncConfigError as exc:
        status.update(state="not_configured", last_error=str(exc))
        window.sync = None
        return None
    runner = getattr(window, "runner", None) or JobRunner(ErrorSink(window), window)
    session = SyncSession(ws, settings, status, backoff=backoff, model_check_s=model_check_s)
    controller = SyncController(window, runner, session, widget)
    _add_action(window, controller.action)
    widget.clicked.connect(controller.sync_now)
    window.sync = controller
    controller.start()
    return controller
