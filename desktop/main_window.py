"""The main window: composes the panels; behaviour lives in the controller and the state.

Other features add themselves as dock panels with ``add_panel(widget, area, title)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QEvent, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QCloseEvent, QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import (
    QDockWidget,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QMenu,
    QProgressBar,
    QPushButton,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from core.app.results import StoredResults
from core.imaging.model import LoadError
from core.studies.priors import RemotePriorsCache
from core.viewer.layout import Layout
from core.viewer.state import ViewerState
from desktop.actions import build_actions
from desktop.ai_panel import install_ai
from desktop.auto_hang import AutoHang
from desktop.browser import StudyBrowser
from desktop.cine import CinePlayer
from desktop.controller import ViewerController
from desktop.menus import WindowMenus
from desktop.panels import LoadErrorsPanel, TagBrowser
from desktop.viewport_grid import ViewportGrid, install_layout_menu
from desktop.viewport_widget import Tool, ViewportWidget
from desktop.workers import ErrorSink, Job, JobRunner

if TYPE_CHECKING:  # pydicom loads on first use, not at start-up
    from core.app.workstation import Workstation
    from core.viewer.tags import TagRow
    from desktop.actions import FollowActive
    from desktop.audit_hooks import AuditHooks
    from desktop.pacs_panel import PacsGui
    from desktop.report_gui import ReportsGui
    from desktop.seg_overlay import ResultsObjectsPanel
    from desktop.session_lock import InactivityLock
    from desktop.study_list import StudyListPanel
    from desktop.sync_status import SyncStatusWidget
    from desktop.sync_worker import SyncController

Area = Qt.DockWidgetArea
_POINTER = (QEvent.Type.MouseMove, QEvent.Type.MouseButtonPress, QEvent.Type.Wheel)


def _viewer_settings() -> tuple[bool, float]:
    """(hang_on_open, priors_cache_s) from the settings in force; the defaults when they
    cannot be read (the app says why at start-up)."""
    from core.config import ConfigError, ViewerSettings, load_settings

    try:
        viewer = load_settings().viewer
    except ConfigError:
        viewer = ViewerSettings()
    return viewer.hang_on_open, viewer.priors_cache_s


class MainWindow(QMainWindow):
    #: a file dialog ended in this folder (the study list keeps it per user, desktop.study_list)
    dialog_folder_chosen = Signal(str)

    def __init__(
        self,
        state: ViewerState | None = None,
        load_workers: int | None = None,
        ai_device: str | None = None,
        workstation: Workstation | None = None,
        lock_check_ms: int = 5_000,
        hang_on_open: bool | None = None,
    ) -> None:
        """``workstation``: the signed-in encrypted profile (login, lock, audit); without it
        (tests, the offscreen screenshot) the window is a bare viewer that records nothing.
        ``hang_on_open``: hang each study opened by its protocol (desktop.auto_hang); None:
        the machine setting ``[viewer] hang_on_open`` with a profile, off without one."""
        super().__init__()
        self.workstation = workstation
        self.session_lock: InactivityLock | None = None
        self.audit_hooks: AuditHooks | None = None
        self.signed_out = False  # the user signed out (the app returns to the login dialog)
        self.setWindowTitle("DoctorAI Workstation")
        self.setAcceptDrops(True)
        self.resize(1440, 900)
        self.state = state or ViewerState()
        self.sink = ErrorSink(self)
        self.runner = JobRunner(self.sink, self)
        self.controller = ViewerController(self.state, self.runner, self, load_workers)
        self.cine = CinePlayer(self.state, self)
        self._cines: dict[int, CinePlayer] = {id(self.state): self.cine}  # per viewport state
        self.follow_active: FollowActive | None = None  # set by build_actions
        self.actions_by_name: dict[str, QAction] = {}
        self.preset_menu: QMenu | None = None
        self.menus: WindowMenus | None = None  # set by build_actions
        # what the feature modules add (desktop.ai_panel, pacs_panel, seg_overlay, sync_worker)
        self.ai_dock: QDockWidget | None = None
        self.models_dock: QDockWidget | None = None
        self.pacs: PacsGui | None = None
        self.seg_panel: ResultsObjectsPanel | None = None
        self.sync: SyncController | None = None
        self.sync_status_widget: SyncStatusWidget | None = None
        self.study_list: StudyListPanel | None = None  # with a profile (desktop.study_list)
        self.reports: ReportsGui | None = None  # the report and key-image docks, with a profile
        self.prior_retrievals: dict[str, Job] = {}  # study uid -> its retrieve (one at a time)
        self.dialog_folder = ""  # where the next file dialog starts

        self.viewport = ViewportWidget(self.state)
        # the reading room: self.state and self.viewport are viewport 1 of the grid
        self.reading = Layout(first=self.state)
        self.grid = ViewportGrid(self.reading, self.viewport, self.runner, self.controller)
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setObjectName("sliceSlider")
        self.slice_label = QLabel("")
        central = QWidget()
        col = QVBoxLayout(central)
        col.setContentsMargins(0, 0, 0, 0)
        col.setSpacing(0)
        col.addWidget(self.grid, 1)
        row = QHBoxLayout()
        row.setContentsMargins(8, 4, 8, 4)
        row.addWidget(self.slider, 1)
        row.addWidget(self.slice_label)
        col.addLayout(row)
        self.setCentralWidget(central)

        self.browser = StudyBrowser(self.state)
        self.tags = TagBrowser()
        self.errors = LoadErrorsPanel()
        build_actions(self)
        if self.menus is not None:
            install_layout_menu(self, self.menus.view, self.grid)
        self.browser_dock = self.add_panel(self.browser, Area.LeftDockWidgetArea, "Studies")
        self.tags_dock = self.add_panel(self.tags, Area.RightDockWidgetArea, "DICOM tags")
        self.errors_dock = self.add_panel(self.errors, Area.BottomDockWidgetArea, "Load errors")
        self.errors_dock.hide()
        results = StoredResults(workstation) if workstation is not None else None
        self.ai = install_ai(self, device=ai_device, results=results)  # AI panel + model manager
        self.resizeDocks([self.browser_dock, self.tags_dock], [300, 400], Qt.Orientation.Horizontal)
        self.resizeDocks([self.errors_dock], [130], Qt.Orientation.Vertical)
        self._progress_timer = QTimer(self, singleShot=True, interval=100)
        self._progress_timer.timeout.connect(self._show_load_progress)
        self._build_status_bar()
        self._connect()
        hang_setting, priors_ttl = _viewer_settings()
        self.priors_cache = RemotePriorsCache(priors_ttl)  # PACS answers about priors
        if hang_on_open is None:
            hang_on_open = hang_setting and workstation is not None
        self.auto_hang = AutoHang(self, workstation, hang_on_open, self.priors_cache)
        self._install_reading_tools()
        if workstation is not None:
            self._attach_workstation(workstation, lock_check_ms)

    def _install_reading_tools(self) -> None:
        """Drag and drop of series into viewports, the annotation tools (on the profile, or for
        the session only without one) and the 3D view; each module installs its own parts."""
        from desktop.annotation_layer import install_annotations
        from desktop.series_drop import install_series_drop
        from desktop.volume_view import install_volume_menu

        self.series_drop = install_series_drop(self)
        self.annotations = install_annotations(self)
        if self.menus is not None:
            install_volume_menu(self, self.menus.view, self.grid)

    # --- composition -----------------------------------------------------------------------
    def add_panel(
        self, widget: QWidget, area: Area = Area.RightDockWidgetArea, title: str = ""
    ) -> QDockWidget:
        """Add a feature panel as a dock widget (listed under View > Panels)."""
        dock = QDockWidget(title or widget.windowTitle(), self)
        dock.setObjectName(f"dock_{widget.objectName() or title}")
        dock.setWidget(widget)
        dock.setFeatures(
            QDockWidget.DockWidgetFeature.DockWidgetMovable
            | QDockWidget.DockWidgetFeature.DockWidgetClosable
            | QDockWidget.DockWidgetFeature.DockWidgetFloatable
        )
        self.addDockWidget(area, dock)
        if self.menus is not None:
            self.menus.panels.addAction(dock.toggleViewAction())
        return dock

    def _attach_workstation(self, ws: Workstation, lock_check_ms: int) -> None:
        """Session menu, inactivity lock, audit hooks and viewer, AI permissions."""
        from core.security.users import Permission
        from desktop.audit_hooks import AuditHooks
        from desktop.permissions import gate_action
        from desktop.session_lock import InactivityLock

        self.session_lock = InactivityLock(self, ws, check_ms=lock_check_ms)
        self.session_lock.signed_out.connect(self._on_signed_out)
        self.audit_hooks = AuditHooks(self, ws, menu=self.session_lock.menu)
        from desktop.study_list import install_study_list

        self.study_list = install_study_list(self, ws)  # the local study database, priors
        from desktop.report_gui import install_reports

        self.reports = install_reports(self)  # the report and key-image docks, Tools > Report
        self.study_list.follow_reports(self.reports)  # its Report column follows saves, signing
        user = ws.session.user
        for name in ("Open files…", "Open folder…", "Open zip…"):  # disabled, saying who may
            gate_action(self.actions_by_name[name], user, Permission.LOAD)
        if user is None or not user.can(Permission.RUN_AI):
            role = user.role.value if user else "signed-out"
            self.ai.block_runs(f"The {role} role may not run AI models.")

    def _on_signed_out(self) -> None:
        self.signed_out = True
        self.close()

    def _build_status_bar(self) -> None:
        bar = self.statusBar()
        self.pixel_label = QLabel("")
        self.errors_button = QPushButton("")
        self.errors_button.setFlat(True)
        self.errors_button.setObjectName("warning")
        self.errors_button.hide()
        self.errors_button.clicked.connect(self.errors_dock.show)
        self.progress = QProgressBar()
        self.progress.setMaximumWidth(220)
        self.progress.setFormat("%v/%m slices")
        self.progress.hide()
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.hide()
        self.cancel_button.clicked.connect(self.cancel_loading)
        bar.addPermanentWidget(self.pixel_label)
        bar.addPermanentWidget(self.errors_button)
        bar.addPermanentWidget(self.progress)
        bar.addPermanentWidget(self.cancel_button)

    def _connect(self) -> None:
        st, ctl = self.state, self.controller
        self.browser.series_activated.connect(self.grid.open_series)  # the active viewport
        ctl.thumbnail_ready.connect(self.browser.set_thumbnail)
        ctl.status.connect(lambda text: self.statusBar().showMessage(text, 8000))
        ctl.tags_loaded.connect(self._on_tags)
        self.sink.message.connect(self._on_job_error)
        st.errors_added.connect(self._on_load_errors)
        st.series_changed.connect(self._on_series_changed)
        st.load_progress.connect(
            lambda _n, _t: self._progress_timer.isActive() or self._progress_timer.start()
        )
        st.hide_phi_changed.connect(lambda _h: self._update_title())
        st.hide_phi_changed.connect(self.reading.set_hide_phi)  # every viewport hides it
        self._slider_state: ViewerState | None = None  # the viewport the slider scrolls
        self.slider.valueChanged.connect(lambda i: self.slider_state.set_slice(i))
        reading = self.reading
        reading.active_changed.connect(lambda _i: self._bind_slider())
        reading.grid_changed.connect(lambda *_: self._bind_slider())
        reading.cell_changed.connect(lambda _i: self._bind_slider(force=True))
        self._bind_slider()
        self.viewport.installEventFilter(self)

    def eventFilter(self, obj: object, event: object) -> bool:
        """The pixel value and position under the mouse, from whichever viewport it is over
        (read once the viewport has handled the event, so it is this move's, not the last)."""
        if (
            isinstance(obj, ViewportWidget)
            and isinstance(event, QEvent)
            and event.type() in _POINTER
        ):
            QTimer.singleShot(0, self, lambda w=obj: self._show_pixel(w))
        return False

    def _show_pixel(self, widget: ViewportWidget) -> None:
        if widget.status_text:
            self.pixel_label.setText(widget.status_text)

    # --- reactions to the state ------------------------------------------------------------
    @property
    def slider_state(self) -> ViewerState:
        return self._slider_state or self.state

    def _bind_slider(self, force: bool = False) -> None:
        """The slider and its label follow the active viewport's acquired slices; over a
        reformat (scrolled with the wheel and keys in its own plane) the slider is disabled."""
        QTimer.singleShot(0, self._watch_viewports)  # after a hanging has built its cells
        state = self.reading.active_state
        old = self._slider_state
        if state is not old:
            if old is not None:
                old.viewport.events.slice_index.disconnect(self._on_slice)
                old.series_changed.disconnect(self._sync_slider)
            state.viewport.events.slice_index.connect(self._on_slice)
            state.series_changed.connect(self._sync_slider)
            self._slider_state = state
        elif not force:
            return
        reformat = self.grid.reformat_of(self.reading.active) is not None
        self.slider.setEnabled(not reformat)
        self.slider.setToolTip(
            "This viewport shows a reformat: scroll it with the wheel or the arrow keys"
            if reformat
            else "Slice of the active viewport"
        )
        self._sync_slider()

    def _watch_viewports(self) -> None:
        """Every viewport's pixel readout reaches the status bar (installing twice is once)."""
        for widget in self.grid.widgets:
            widget.installEventFilter(self)

    def _sync_slider(self, _series: object = None) -> None:
        st = self.slider_state
        self.slider.blockSignals(True)
        self.slider.setRange(0, max(st.slice_count - 1, 0))
        self.slider.setValue(st.viewport.slice_index)
        self.slider.blockSignals(False)
        self._on_slice(st.viewport.slice_index)

    def _on_series_changed(self, _series: object) -> None:
        n = self.state.slice_count
        # QProgressBar.setValue repaints at once, and with it the whole window (the viewport
        # with no image yet): a few ms while the new series' first slice should be painting
        self.progress.setUpdatesEnabled(False)
        self.progress.setRange(0, max(n, 1))
        self.progress.setValue(0)
        self.progress.setUpdatesEnabled(True)
        self.progress.setVisible(n > 0)
        self.cancel_button.setVisible(n > 0)
        self.tags.show_message("Reading header…")
        self._update_title()

    def _on_slice(self, index: int) -> None:
        self.slider.blockSignals(True)
        self.slider.setValue(index)
        self.slider.blockSignals(False)
        self.slice_label.setText(f"{index + 1} / {self.slider_state.slice_count}")

    def _show_load_progress(self) -> None:
        """Throttled (10 Hz): a progress-bar repaint per arriving slice would stall the GUI."""
        loaded, total = self.state.loaded_count, self.state.slice_count
        self.viewport.update()  # the overlay's "Loading n/N" line
        self.progress.setValue(loaded)
        done = self.state.settled_count >= total
        self.progress.setVisible(not done)
        self.cancel_button.setVisible(not done)

    def _on_tags(self, rows: list[TagRow] | BaseException) -> None:
        ref = self.state.current_slice()
        if isinstance(rows, BaseException):
            self.tags.show_message(f"Cannot show tags: {rows}")
            return
        name = Path(ref.instance.path.split("::")[-1]).name if ref else ""
        if self.state.hide_phi:  # file names often carry the patient's name
            name = f"image {self.state.viewport.slice_index + 1}"
        self.tags.set_rows(rows, f"{name}  ({len(rows)} elements)")

    def _on_load_errors(self, errors: list[LoadError]) -> None:
        self.errors.add_errors(errors)
        n = self.errors.table.rowCount()
        self.errors_button.setText(f"⚠ {n} load error(s)")
        self.errors_button.show()
        self.errors_dock.show()

    def _on_job_error(self, job_name: str, text: str) -> None:
        """Every background job's unhandled error: shown (errors panel, status bar) and, with a
        profile open, audited as a failed application activity."""
        self._on_load_errors([LoadError(job_name, text)])
        self.statusBar().showMessage(f"{job_name} failed: {text}", 10000)
        if self.audit_hooks is not None:
            self.audit_hooks.record_failure(job_name, text)

    def _update_title(self) -> None:
        ctx = self.state.context()
        if ctx is None or self.state.hide_phi:
            self.setWindowTitle("DoctorAI Workstation")
        else:
            name = ctx[0].name.replace("^", " ").strip() or ctx[0].patient_id
            self.setWindowTitle(f"{name} - DoctorAI Workstation")

    # --- commands ---------------------------------------------------------------------------
    def open_paths(self, paths: Sequence[str | Path]) -> None:
        if self._may_load():
            self.controller.open_paths([str(p) for p in paths])

    def _may_load(self) -> bool:
        """Signed in with a workstation: only roles with the LOAD permission open studies (an
        auditor reads the trail, not images)."""
        if self.workstation is None:
            return True
        from core.security.users import Permission, PermissionDenied

        try:
            self.workstation.session.require(Permission.LOAD)
        except PermissionDenied as exc:
            self.statusBar().showMessage(f"Cannot open studies: {exc}", 10_000)
            return False
        return True

    def set_tool(self, tool: Tool) -> None:
        self.viewport.tool = tool
        self.grid.set_tool(tool)

    def apply_preset(self, name: str) -> None:
        """A window preset on the active viewport (its link group follows when linked)."""
        try:
            self.reading.active_state.apply_preset(name)
        except ValueError as exc:
            self.statusBar().showMessage(str(exc), 5000)

    def play_cine(self, on: bool) -> None:
        """Play or stop cine in the active viewport (each viewport has its own player)."""
        state = self.reading.active_state
        key = id(state)
        if key not in self._cines:
            self._cines[key] = CinePlayer(state, self)
        state.viewport.cine_playing = on

    def cancel_loading(self) -> None:
        """Esc: every viewport's load, the indexing and the hanging's prior lookups stop."""
        self.controller.cancel_series_load()
        for ctl in list(self.grid.controllers.values()):
            ctl.cancel_series_load()
        for job in [*self.controller.index_jobs, *self.auto_hang.jobs]:
            job.cancel()
        self.progress.hide()
        self.cancel_button.hide()

    def _dialog_ended(self, folder: str) -> None:
        if folder:
            self.dialog_folder = folder
            self.dialog_folder_chosen.emit(folder)

    def open_files_dialog(self) -> None:
        files, _ = QFileDialog.getOpenFileNames(
            self, "Open DICOM or image files", self.dialog_folder
        )
        if files:
            self._dialog_ended(str(Path(files[0]).parent))
        self.open_paths(files)

    def open_folder_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(
            self, "Open a folder (searched recursively)", self.dialog_folder
        )
        if folder:
            self._dialog_ended(str(Path(folder).parent))
            self.open_paths([folder])

    def open_zip_dialog(self) -> None:
        files, _ = QFileDialog.getOpenFileNames(
            self, "Open zip archives", self.dialog_folder, "Zip (*.zip)"
        )
        if files:
            self._dialog_ended(str(Path(files[0]).parent))
        self.open_paths(files)

    # --- drag and drop, shutdown ------------------------------------------------------------
    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        paths = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        if paths:
            self.open_paths(paths)
            event.acceptProposedAction()

    def shutdown(self, timeout_ms: int = 10_000) -> bool:
        """Stop cine, cancel and await every background job (also run by closeEvent)."""
        for cell in self.reading.cells:
            cell.state.viewport.cine_playing = False
        self.controller.stop()
        if self.audit_hooks is not None:  # its queued events are written before jobs stop
            self.audit_hooks.shutdown()
            self.audit_hooks = None  # shutdown runs again from closeEvent
        stopped = self.runner.shutdown(timeout_ms)
        self.ai.shutdown()
        if self.session_lock is not None:
            self.session_lock.stop()
        return stopped

    def closeEvent(self, event: QCloseEvent) -> None:
        self.shutdown()
        super().closeEvent(event)
