"""Background sync in the workstation: the outbox of the encrypted database goes to the backend,
signed model updates come back, and the status bar says how it stands in plain words.

Everything that touches the network or the database runs in one ``SyncLoop`` QThread, never on
the GUI thread: enrolment with IT's one-time code (first start), the outbox drain, persisting the
time of the last successful sync (the ``properties`` table, so it survives restarts) and, every
``MODEL_CHECK_S`` or on "Sync now", the signed (TUF) update check of the installed models. The
GUI only receives Qt signals (queued) and ``SyncStatus`` snapshots (through the widget's bridge).

A Security Alert (the server's audit anchor says this history was replaced or rewritten) is
audited as the signed-in user in the sync thread, then shown to the user in a dialog.

Wiring (desktop/app.py)::

    sync = install_sync(window, ws, settings)   # None when sync is not configured
    ... after app.exec(): if sync: sync.stop(5.0)
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QCoreApplication, QObject, QThread, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QMessageBox

from core.audit.log import AuditObject
from core.audit.vocabulary import EventType, Outcome
from core.config import Settings
from core.sync.client import check_server_url
from core.sync.engine import BackoffPolicy, SecurityAlert, SyncEngine, SyncReport
from core.sync.errors import SyncConfigError, SyncError
from core.sync.status import SyncStatus
from core.sync.wire import BatchResponse
from desktop.sync_status import SyncStatusWidget

if TYPE_CHECKING:
    from core.app.workstation import Workstation
    from core.store.database import Database
    from core.sync.client import SyncClient
    from core.sync.outbox import Outbox

log = logging.getLogger(__name__)

LAST_SUCCESS_KEY = "sync.last_success"
#: How often the loop asks the update server about the installed models (TUF refresh); a
#: "Sync now" asks at once. Model packages change rarely; results and audit events often.
MODEL_CHECK_S = 900.0
#: Per-request limit of the GUI's sync client: bounds how long ``stop`` can wait for a request.
REQUEST_TIMEOUT_S = 15.0
NOT_CONFIGURED = "Sync not configured"

_RUNNING: set[SyncLoop] = set()  # a loop that outlived stop() must not be garbage-collected


# --- the last successful sync, kept in the encrypted database ------------------------------------

def load_last_success(db: Database) -> datetime | None:
    from sqlalchemy import select

    from core.store.schema import properties

    with db.engine.connect() as conn:
        value = conn.execute(
            select(properties.c.value).where(properties.c.key == LAST_SUCCESS_KEY)
        ).scalar_one_or_none()
    try:
        return datetime.fromisoformat(value) if value else None
    except ValueError:
        return None  # an unreadable value is simply "not known"; the next sync rewrites it


def save_last_success(db: Database, when: datetime) -> None:
    from core.store.database import set_property

    with db.transaction() as conn:
        set_property(conn, LAST_SUCCESS_KEY, when.isoformat())


# --- model updates -------------------------------------------------------------------------------

def check_model_updates(settings: Settings, client: SyncClient) -> list[str]:
    """Install the signed channel's version of each model the centre publishes (and of each
    installed earlier), with the rollout's shadow candidate where this workstation runs one.

    Returns a plain-words line per change; a model without a published channel is skipped;
    another refusal is raised after the other models were tried (ModelUpdateError says why and
    leaves that model unchanged)."""
    from core.sync.model_update import ModelUpdateError
    from core.sync.service import make_updater, models_to_update

    updater = make_updater(settings, client)
    try:
        done: list[str] = []
        refused: list[ModelUpdateError] = []
        for model_id in models_to_update(client, updater):
            try:
                result = updater.update(model_id)
            except ModelUpdateError as exc:
                if exc.reason != "not_published":
                    refused.append(exc)
                continue
            if result.action == "installed":
                done.append(result.message)
        if refused:
            raise refused[0]
        return done
    finally:
        updater.close()


# --- the thread ----------------------------------------------------------------------------------

class SyncLoop(QThread):
    """``engine.sync_once()`` every ``interval_s`` (or at once after ``sync_now``); never raises."""

    alert = Signal(object)  # SecurityAlert
    models_changed = Signal(str)  # plain-words note about model updates ("" when all is well)
    pass_finished = Signal(object)  # SyncReport

    def __init__(
        self,
        engine: SyncEngine,
        interval_s: float,
        *,
        prepare: Callable[[], bool] | None = None,
        after_pass: Callable[[SyncReport], None] | None = None,
        model_check: Callable[[], list[str]] | None = None,
        model_check_s: float = MODEL_CHECK_S,
    ) -> None:
        super().__init__()
        self.engine, self.interval_s = engine, interval_s
        self.prepare, self.after_pass = prepare, after_pass
        self.model_check, self.model_check_s = model_check, model_check_s
        self._wake = threading.Event()
        self._models_due = True
        self.passes = 0
        previous = engine.on_alert

        def on_alert(a: SecurityAlert) -> None:
            if previous is not None:
                previous(a)
            self.alert.emit(a)

        engine.on_alert = on_alert

    def run(self) -> None:
        stop = self.engine.stop_event
        prepared = self.prepare is None
        last_models = float("-inf")
        while not stop.is_set():
            if not prepared:  # retried each pass: enrolment may need the server to be up
                prepared = bool(self._guard("preparing sync", self.prepare))  # type: ignore[arg-type]
                if stop.is_set():
                    break
            report = self._guard("sync", self.engine.sync_once)
            if isinstance(report, SyncReport):
                after = self.after_pass
                if after is not None:
                    self._guard("recording the sync", functools.partial(after, report))
                self.pass_finished.emit(report)
            now = time.monotonic()
            due = self._models_due or now - last_models >= self.model_check_s
            if self.model_check is not None and due and not stop.is_set():
                self._models_due, last_models = False, now
                self._check_models()
            self.passes += 1
            self._wake.wait(self.interval_s)
            self._wake.clear()

    def _guard(self, what: str, call: Callable[[], Any]) -> Any:
        try:
            return call()
        except Exception as exc:  # noqa: BLE001 - shown in the status bar, the loop goes on
            log.warning("%s failed: %s", what, exc)
            self.engine.status.update(state="error", last_error=f"{what} failed: {exc}")
            return None

    def _check_models(self) -> None:
        assert self.model_check is not None
        try:
            done = self.model_check()
        except SyncConfigError as exc:
            self.models_changed.emit(f"Model updates off: {exc}")
        except SyncError as exc:
            self.models_changed.emit(f"Model update refused or not possible: {exc}")
        except Exception as exc:  # an update bug must not stop result sync
            log.exception("model update check failed")
            self.models_changed.emit(f"Model update check failed: {exc}")
        else:
            self.models_changed.emit("; ".join(done) if done else "")

    def sync_now(self) -> None:
        self._models_due = True
        self._wake.set()

    def request_stop(self) -> None:
        self.engine.stop()  # also cuts a backoff wait short
        self._wake.set()


# --- the controller the window keeps -------------------------------------------------------------

class _DeferredClient:
    """The engine's sender, built on first use in the sync thread: creating the TLS context
    (reading the CA bundles) and the HTTP client is I/O the GUI thread must not do."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._client: SyncClient | None = None
        self._lock = threading.Lock()
        self.closed = False

    def get(self) -> SyncClient:
        with self._lock:
            if self.closed:
                raise SyncError("sync is stopping")
            if self._client is None:
                from core.sync.service import make_client

                self._client = make_client(self.settings, timeout=REQUEST_TIMEOUT_S)
            return self._client

    def post_batch(self, endpoint: str, body: bytes, key: str) -> BatchResponse:
        return self.get().post_batch(endpoint, body, key)

    def close(self) -> None:
        with self._lock:
            self.closed = True
            if self._client is not None:
                self._client.close()


class SyncController(QObject):
    """Owns the loop, the status widget and the "Sync now" action of one main window."""

    def __init__(
        self,
        window: Any,
        ws: Workstation,
        settings: Settings,
        status: SyncStatus,
        widget: SyncStatusWidget,
        *,
        outbox: Outbox | None = None,
        backoff: BackoffPolicy | None = None,
        model_check_s: float = MODEL_CHECK_S,
    ) -> None:
        super().__init__(window)
        from core.store.outbox import StoreOutbox

        self.window, self.ws, self.settings = window, ws, settings
        self.status, self.widget = status, widget
        self.client = _DeferredClient(settings)
        self.alerts: list[SecurityAlert] = []
        self.alert_box: QMessageBox | None = None
        self.model_note = ""
        self.engine = SyncEngine(outbox or StoreOutbox(ws.db), self.client,
                                 batch_size=settings.sync.batch_size, backoff=backoff,
                                 status=status, on_alert=self._audit_alert)
        self.loop = SyncLoop(
            self.engine,
            settings.sync.interval_s,
            prepare=self._prepare,
            after_pass=self._after_pass,
            model_check=lambda: check_model_updates(settings, self.client.get()),
            model_check_s=model_check_s,
        )
        self.loop.alert.connect(self._show_alert)
        self.loop.models_changed.connect(self._on_models)
        self.action = QAction("Sync now", window)
        self.action.setToolTip("Send queued results and audit events now and check for "
                               "model updates")
        self.action.triggered.connect(self.sync_now)
        app = QCoreApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(self.stop)  # the loop never outlives the application

    def start(self) -> None:
        _RUNNING.add(self.loop)
        self.loop.start()

    # --- in the sync thread -------------------------------------------------------------------
    def _prepare(self) -> bool:
        """Show the persisted last success; build the client; first start: enrol with IT's
        one-time code. A setting that cannot work (CA bundle, proxy) stops the loop, shown."""
        last = load_last_success(self.ws.db)
        if last is not None and self.status.snapshot.last_success is None:
            self.status.update(last_success=last)
        try:
            client = self.client.get()
        except SyncConfigError as exc:
            self.status.update(state="not_configured", last_error=str(exc))
            self.loop.request_stop()
            return False
        code = self.settings.sync.enrolment_code
        if code and client.credentials.device() is None:
            import socket

            client.enrol(code, socket.gethostname())
        return True

    def _after_pass(self, report: SyncReport) -> None:
        when = self.status.snapshot.last_success
        if report.ok and when is not None:
            save_last_success(self.ws.db, when)

    def _audit_alert(self, alert: SecurityAlert) -> None:
        self.ws.record(
            EventType.SECURITY_ALERT,
            [AuditObject("workstation", self.ws.db.workstation_id)],
            Outcome.SERIOUS_FAILURE,
            source="sync",
            code=alert.code,
            message=alert.message,
        )

    # --- on the GUI thread --------------------------------------------------------------------
    def _show_alert(self, alert: SecurityAlert) -> None:
        self.alerts.append(alert)
        self.window.statusBar().showMessage(alert.message, 0)
        box = QMessageBox(QMessageBox.Icon.Critical, "Security Alert", alert.message,
                          QMessageBox.StandardButton.Ok, self.window)
        box.setModal(False)
        box.show()  # not exec(): a warning must not freeze the window behind it
        self.alert_box = box

    def _on_models(self, note: str) -> None:
        self.model_note = note
        self.widget.set_note(note)
        if note and not note.startswith("Model update"):
            self.window.statusBar().showMessage(note, 15_000)

    def sync_now(self) -> None:
        if self.loop.isRunning():
            self.loop.sync_now()

    def stop(self, timeout: float = 10.0) -> bool:
        """Stop the loop; True when it ended within ``timeout`` seconds.

        A request in flight is waited for up to ``timeout``; after that the HTTP client is
        closed under it, which ends the request at once (nothing is lost: unacknowledged rows
        stay queued)."""
        if self.loop.isRunning():
            self.loop.request_stop()
            if not self.loop.wait(max(int(timeout * 1000), 1)):
                self.client.close()
                self.loop.wait(2000)
        stopped = not self.loop.isRunning()
        if stopped:
            _RUNNING.discard(self.loop)
            self.client.close()
        else:
            log.warning("the sync thread did not stop within %.1f s", timeout)
        return stopped


def _add_action(window: Any, action: QAction) -> None:
    """Tools > Sync now when the window has a Tools menu, else a Sync menu of its own."""
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

    Not configured (no ``sync.server_url``, or plain http to another host): the widget says so
    with the reason in its tooltip, nothing runs, and None is returned. A CA bundle or proxy
    setting that cannot work is found by the loop (it reads files) and shown the same way."""
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
    controller = SyncController(window, ws, settings, status, widget, backoff=backoff,
                                model_check_s=model_check_s)
    _add_action(window, controller.action)
    widget.clicked.connect(controller.sync_now)
    window.sync = controller
    controller.start()
    return controller
