"""The AI panel: models that apply to the current series, Run, the visible queue, per-class
scores, the heatmap overlay (toggle, opacity, colour bar) and accept / reject / comment.

Everything slow runs as a job (finding packages, loading a model, predicting, health checks);
the panel only reacts to signals, so the GUI thread never waits on a model. A result's heatmaps
are drawn in every viewport of the reading room's grid that shows its series, at the slices of
the instances the model saw (``follow_grid``); the toggle and the opacity act on all of them, and
a viewport switched to another series drops them (ViewportWidget clears on a series change).
The models, Run and the result shown are those of the grid's active viewport.
A series run lists its findings (slices over threshold, desktop.ai_review) and marks them on the
window's slice slider; its guard flags show in an amber banner. The decision history (this run's
and earlier runs' of the same model version on the same images) is read in a job.
Verdicts go to a
``ReadingResults`` (core.app.results: the workstation's encrypted, audited store, or the
session's memory in a window without a profile); runs are recorded and decisions stored in
worker jobs, never on the GUI thread.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import shiboken6
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QDoubleSpinBox,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QScrollArea,
    QSlider,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from core.app.results import ReadingResults, SessionResults, StoredResults
from core.inference.cache import PredictionCache
from core.inference.heatmap import DEFAULT_FLOOR, MAX_AREA, MAX_FLOOR, map_cut
from core.inference.manager import ModelManager
from core.inference.result import InferenceResult
from core.inference.shadow import ShadowModels
from core.results.store import Decision, DecisionRecord
from core.viewer.state import ViewerState
from desktop.ai_panel_fit import MAX_QUEUE_ROWS, compact_rows, fit_list, fit_table
from desktop.ai_review import (
    FindingsBox,
    HistoryList,
    HistoryReader,
    guard_banner,
    guard_lines,
    reason_box,
    verdict_text,
)
from desktop.grid_cells import GridCells, tie
from desktop.heatmap_bar import CAPTION, HeatmapBar
from desktop.inference_jobs import InferenceQueue, QueueRow, shadow_job
from desktop.model_manager_view import ModelManagerView
from desktop.slider_marks import SliderMarks
from desktop.viewport_widget import ViewportWidget
from desktop.workers import JobContext, JobRunner

if TYPE_CHECKING:
    from core.app.workstation import Workstation
    from desktop.main_window import MainWindow
    from desktop.viewport_grid import ViewportGrid

log = logging.getLogger(__name__)

DEMO_STYLE = "background:#7a2e00;color:#fff3e0;font-weight:bold;padding:4px;border-radius:3px;"


def build_manager_job(_ctx: JobContext, device: str | None) -> ModelManager:
    """Find and hash-check the packages (worker thread)."""
    from core.inference.manager import manager_from_settings

    return manager_from_settings(device=device)


def record_updates_job(_ctx: JobContext, ws: Workstation, manager: ModelManager) -> int:
    """The refused signed updates' Security Alerts, in the trail (worker thread)."""
    from core.app.model_runs import record_refused_updates

    return record_refused_updates(ws, manager)


def preload_job(_ctx: JobContext, manager: ModelManager) -> list[str]:
    """Load the models IT listed in ``inference.preload`` (worker thread); the problems."""
    from core.config import load_settings

    return manager.preload(list(load_settings().inference.preload))


def build_shadow_job(_ctx: JobContext, device: str | None) -> ShadowModels:
    """The rollout candidates this workstation runs in shadow mode (hash-checked). Never
    fails: without them the workstation simply runs no shadow model."""
    from core.config import ConfigError, load_settings

    try:
        return ShadowModels.from_profile(device=device or load_settings().inference.device)
    except (ConfigError, OSError) as exc:
        log.warning("no shadow models: %s", exc)
        return ShadowModels([])


def decide_job(
    _ctx: JobContext,
    results: ReadingResults,
    result_id: str,
    decision: Decision,
    comment: str,
    reason: str = "",
) -> DecisionRecord:
    return results.decide(result_id, decision, comment, reason)


def initial_floor() -> float:
    """The heatmap floor IT or the user set (``inference.heatmap_floor``), else the default."""
    from core.config import ConfigError, load_settings

    try:
        value = getattr(load_settings().inference, "heatmap_floor", DEFAULT_FLOOR)
    except ConfigError:
        return DEFAULT_FLOOR
    return min(max(float(value), 0.0), MAX_FLOOR)


class AIPanel(QWidget):
    #: The shown result or its verdict changed (hooks such as PACS export follow it).
    result_changed = Signal()
    #: A shadow candidate's result item was recorded (dict) — never shown, only reported.
    shadow_recorded = Signal(object)
    #: A decision (result id, decision) was recorded.
    decided = Signal(str, str)
    #: The decision history of a result (id) was read and is shown if it is the current one.
    history_shown = Signal(str)

    def __init__(
        self,
        state: ViewerState,
        viewport: ViewportWidget,
        runner: JobRunner,
        results: ReadingResults | None = None,
        manager: ModelManager | None = None,
        device: str | None = None,
        parent: QWidget | None = None,
        shadow: ShadowModels | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("aiPanel")
        self.setWindowTitle("AI")
        self.state = state
        self.viewport = viewport
        self.runner = runner
        self.results: ReadingResults = results if results is not None else SessionResults()
        self.verdicts: dict[str, Decision] = {}  # result id -> latest accept/reject recorded
        self.device = device
        self.manager: ModelManager | None = None
        self.shadow: ShadowModels | None = shadow
        self.cache: PredictionCache[InferenceResult] = PredictionCache(256)
        self.queue = InferenceQueue(runner, self.results, self.cache, parent=self)
        self.manager_view = ModelManagerView(runner)
        # (SOP instance UID, frame) -> (queue row, image index within its result). Keyed by
        # instance, not slice index: a series' slice order can change under a finished result
        # (the provisional first image is re-sorted when indexing ends).
        self.by_ref: dict[tuple[str, int], tuple[QueueRow, int]] = {}
        self.run_blocked = ""  # why the signed-in user may not run models ("" = may)
        self.cells: GridCells | None = None  # the grid's viewports, once follow_grid is called
        self.grid: ViewportGrid | None = None
        self._watched: list[ViewportWidget] = []  # viewports whose series changes are followed
        self.histories = HistoryReader(runner, self.results, parent=self)
        self.slider_marks: SliderMarks | None = None  # the window's slice slider (install_ai)
        self._findings_of: tuple[str, int] | None = None  # (result id, state) the list shows
        self._alerts_recorded = False  # the refused signed updates' Security Alerts (once)
        self._build()
        self._connect()
        self._watch_viewport(viewport)
        if manager is not None:
            self.set_manager(manager)
        else:
            self.runner.start(
                "finding AI models",
                build_manager_job,
                device,
                on_result=self._manager_found,
                on_error=self._manager_failed,
            )
            self.runner.start(
                "finding shadow models", build_shadow_job, device, on_result=self.set_shadow
            )

    # --- layout --------------------------------------------------------------------------
    def _build(self) -> None:
        self.models_label = QLabel("Models: open a series")
        self.models = QListWidget()
        fit_list(self.models)
        self.demo_banner = QLabel("")
        self.demo_banner.setObjectName("demoBanner")
        self.demo_banner.setStyleSheet(DEMO_STYLE)
        self.demo_banner.setWordWrap(True)
        self.demo_banner.hide()
        # a signed model update refused at start-up: said here, not only in a log (issue 15)
        self.update_warning = QLabel("")
        self.update_warning.setObjectName("updateRefused")
        self.update_warning.setStyleSheet(DEMO_STYLE)
        self.update_warning.setWordWrap(True)
        self.update_warning.hide()
        self.intended_use = QLabel("")
        self.intended_use.setWordWrap(True)
        self.run_image_button = QPushButton("Run on current image")
        self.run_series_button = QPushButton("Run on whole series")
        run_row = QHBoxLayout()
        run_row.addWidget(self.run_image_button)
        run_row.addWidget(self.run_series_button)
        self.run_blocked_label = QLabel("")  # why the Run buttons are off for this role
        self.run_blocked_label.setObjectName("permissionNote")
        self.run_blocked_label.setWordWrap(True)
        self.run_blocked_label.hide()
        # the runs in progress, under Run: the queue sits below the result and may be scrolled
        # out of view while a run goes on
        self.run_status = QLabel("")
        self.run_status.setObjectName("runStatus")
        self.run_status.setWordWrap(True)
        self.run_status.hide()

        self.queue_table = QTableWidget(0, 4)
        self.queue_table.setHorizontalHeaderLabels(["Model", "On", "Status", "Progress"])
        self.queue_table.verticalHeader().setVisible(False)
        self.queue_table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.queue_table.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
        # the model and the progress always whole; scope and status share the rest (elided,
        # whole in their tooltips)
        header = self.queue_table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        for col in (1, 2):
            header.setSectionResizeMode(col, QHeaderView.ResizeMode.Stretch)
        self.queue_table.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        compact_rows(self.queue_table)
        fit_table(self.queue_table, MAX_QUEUE_ROWS)
        self.cancel_button = QPushButton("Cancel selected")
        self.cancel_all_button = QPushButton("Cancel all")
        self.clear_button = QPushButton("Clear finished")
        queue_buttons = QHBoxLayout()
        for b in (self.cancel_button, self.cancel_all_button, self.clear_button):
            queue_buttons.addWidget(b)
        queue_box = QGroupBox("Queue")
        qv = QVBoxLayout(queue_box)
        qv.addWidget(self.queue_table)
        qv.addLayout(queue_buttons)

        self.result_title = QLabel("No result for this image")
        self.result_title.setWordWrap(True)
        self.guard_banner = guard_banner()  # population / OOD / self-test warnings of the run
        self.findings_box = FindingsBox()
        self.findings, self.findings_label = self.findings_box.list, self.findings_box.label
        self.result_demo = QLabel("")
        self.result_demo.setStyleSheet(DEMO_STYLE)
        self.result_demo.hide()
        self.scores = QTableWidget(0, 3)
        self.scores.setHorizontalHeaderLabels(["Class", "Score", "Threshold"])
        self.scores.verticalHeader().setVisible(False)
        self.scores.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.scores.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.scores.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.scores.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        compact_rows(self.scores)
        fit_table(self.scores)
        self.provenance = QLabel("")
        self.provenance.setWordWrap(True)
        self.provenance.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.warnings = QLabel("")
        self.warnings.setObjectName("warning")
        self.warnings.setWordWrap(True)
        self.warnings.hide()

        self.heat_toggle = QCheckBox("Show heatmap")
        self.heat_toggle.setChecked(True)
        self.opacity = QSlider(Qt.Orientation.Horizontal)
        self.opacity.setRange(0, 100)
        self.opacity.setValue(50)
        self.opacity.setToolTip("Heatmap opacity")
        self.floor = QDoubleSpinBox()
        self.floor.setObjectName("heatmapFloor")
        self.floor.setRange(0.0, MAX_FLOOR)
        self.floor.setSingleStep(0.05)
        self.floor.setDecimals(2)
        self.floor.setSpecialValueText("off")  # 0: the whole map, no floor
        self.floor.setValue(initial_floor())
        self.floor.setToolTip(
            "Heat below this share of the map's peak is not coloured, and at most the hottest "
            f"{MAX_AREA:.0%} of the image is; 'off' shows the whole map"
        )
        self.colour_bar = HeatmapBar()
        self.colour_bar.set_floor(self.floor.value())
        self.heat_caption = QLabel(CAPTION)
        self.heat_caption.setObjectName("heatmapCaption")
        self.heat_caption.setWordWrap(True)
        self.heat_caption.setStyleSheet("color:#9aa0a6;")
        heat_row = QHBoxLayout()
        heat_row.addWidget(self.heat_toggle)
        heat_row.addWidget(QLabel("Opacity"))
        heat_row.addWidget(self.opacity, 1)
        heat_row.addWidget(QLabel("Floor"))
        heat_row.addWidget(self.floor)
        bar_row = QHBoxLayout()
        bar_row.addWidget(self.colour_bar, 1)

        self.accept_button = QPushButton("Accept")
        self.reject_button = QPushButton("Reject")
        self.reject_reason = reason_box()
        self.comment = QLineEdit(placeholderText="Comment, or why you reject")
        self.comment_button = QPushButton("Comment")
        self.verdict = QLabel("")
        self.verdict.setWordWrap(True)
        self.history = HistoryList()
        self.history.hide()
        decide_row = QHBoxLayout()
        decide_row.addWidget(self.accept_button)
        decide_row.addWidget(self.reject_button)
        decide_row.addWidget(self.reject_reason, 1)
        comment_row = QHBoxLayout()
        comment_row.addWidget(self.comment, 1)
        comment_row.addWidget(self.comment_button)
        # what a reader needs first comes first (title, doubts, scores, the decision), so that
        # it fits a 1280x860 window unscrolled; the rest of a result shows only with one
        self.result_box = result_box = QGroupBox("Result")
        rv = QVBoxLayout(result_box)
        rv.addWidget(self.result_title)
        rv.addWidget(self.guard_banner)
        self.result_body = QWidget()
        body = QVBoxLayout(self.result_body)
        body.setContentsMargins(0, 0, 0, 0)
        for w in (self.result_demo, self.scores, self.warnings):
            body.addWidget(w)
        body.addLayout(decide_row)
        body.addLayout(comment_row)
        body.addWidget(self.verdict)
        body.addWidget(self.history)
        body.addLayout(heat_row)
        body.addLayout(bar_row)
        body.addWidget(self.heat_caption)
        body.addWidget(self.provenance)
        rv.addWidget(self.result_body)

        self.manager_button = QPushButton("Model manager…")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addWidget(self.update_warning)
        layout.addWidget(self.models_label)
        layout.addWidget(self.models)
        layout.addWidget(self.demo_banner)
        layout.addWidget(self.intended_use)
        layout.addLayout(run_row)
        layout.addWidget(self.run_blocked_label)
        layout.addWidget(self.run_status)
        layout.addWidget(result_box)
        layout.addWidget(self.findings_box)
        layout.addWidget(queue_box)
        layout.addStretch(1)
        layout.addWidget(self.manager_button)
        self._set_run_enabled()
        self._show_result(None)

    def _connect(self) -> None:
        self.models.currentItemChanged.connect(lambda *_: self._on_model_selected())
        self.run_image_button.clicked.connect(self.run_current_image)
        self.run_series_button.clicked.connect(self.run_series)
        self.cancel_button.clicked.connect(self._cancel_selected)
        self.cancel_all_button.clicked.connect(self.queue.cancel_all)
        self.clear_button.clicked.connect(self.queue.clear_finished)
        self.queue.changed.connect(self._refresh_queue)
        self.queue.result_ready.connect(self._on_result)
        self.queue.failed.connect(self._on_failed)
        self.heat_toggle.toggled.connect(self._set_heatmap_visible)
        self.opacity.valueChanged.connect(self._set_heatmap_opacity)
        self.floor.valueChanged.connect(self._set_heatmap_floor)
        self.findings_box.jump.connect(self.jump_to)
        self.histories.read.connect(self._history_read)
        self.accept_button.clicked.connect(lambda: self.decide("accepted"))
        self.reject_button.clicked.connect(
            lambda: self.decide("rejected", str(self.reject_reason.currentData() or ""))
        )
        self.comment_button.clicked.connect(lambda: self.decide("comment"))
        self.comment.returnPressed.connect(lambda: self.decide("comment"))
        self.manager_button.clicked.connect(self.show_manager)
        self.state.series_changed.connect(self._on_series_changed)
        self.state.viewport.events.slice_index.connect(self._on_slice)

    # --- models --------------------------------------------------------------------------
    def set_manager(self, manager: ModelManager) -> None:
        self.manager = manager
        self.manager_view.set_manager(manager)
        refused = self.manager_view.warnings
        self.update_warning.setText("\n".join(refused))
        self.update_warning.setVisible(bool(refused))
        self._fill_models()

    def _manager_found(self, manager: ModelManager) -> None:
        self.set_manager(manager)
        self._record_refused_updates()
        self.runner.start("preloading AI models", preload_job, manager, on_result=self._preloaded)

    def _record_refused_updates(self) -> None:
        """A Security Alert per refused signed update, once per start-up: when the models are
        found with a profile open, else when a profile's results arrive (``set_results``)."""
        manager, results = self.manager, self.results
        if self._alerts_recorded or manager is None or not isinstance(results, StoredResults):
            return
        self._alerts_recorded = True
        if manager.blocked:
            self.runner.start(
                "recording refused model updates", record_updates_job, results.ws, manager
            )

    def _preloaded(self, problems: list[str]) -> None:
        for problem in problems:
            log.warning("%s", problem)

    def _manager_failed(self, exc: BaseException) -> None:
        self.models_label.setText(f"AI models unavailable: {exc}")
        self.models_label.setWordWrap(True)

    def set_results(self, results: ReadingResults) -> None:
        """Where runs and decisions are recorded from now on (a profile opened later)."""
        self.results = self.queue.results = self.histories.results = results
        self._record_refused_updates()

    def set_shadow(self, shadow: ShadowModels) -> None:
        self.shadow = shadow

    def _is_color(self) -> bool | None:
        """Whether the series' images are colour (from the header), None when unknown."""
        series = self.state.series
        photometric = series.instances[0].photometric.upper() if series and series.instances else ""
        if not photometric:
            return None
        return not photometric.startswith("MONOCHROME")

    def _modality(self) -> str:
        return self.state.series.modality if self.state.series is not None else ""

    def _fill_models(self) -> None:
        self.models.clear()
        if self.manager is None:
            self.models_label.setText("Models: looking for installed models…")
            return
        modality = self._modality()
        found = self.manager.applicable(modality, self._is_color())
        if self.state.series is None:
            self.models_label.setText("Models: open a series")
        elif not found:
            self.models_label.setText(f"No installed model applies to modality '{modality}'")
        else:
            self.models_label.setText(f"Models for {modality}:")
        for package in found:
            m = package.manifest
            item = QListWidgetItem(f"{m.name}  ({m.version}, {m.framework})")
            item.setData(Qt.ItemDataRole.UserRole, package.id)
            item.setToolTip(f"{package.id}\n{m.intended_use}")
            self.models.addItem(item)
        fit_list(self.models)
        if found:
            self.models.setCurrentRow(0)
        self._on_model_selected()

    def selected_model(self) -> str | None:
        item = self.models.currentItem()
        return str(item.data(Qt.ItemDataRole.UserRole)) if item is not None else None

    def select_model(self, model_id: str) -> None:
        for i in range(self.models.count()):
            item = self.models.item(i)
            if item is not None and item.data(Qt.ItemDataRole.UserRole) == model_id:
                self.models.setCurrentRow(i)
                return
        raise KeyError(f"model '{model_id}' does not apply to the current series")

    def _on_model_selected(self) -> None:
        model_id = self.selected_model()
        notice, use = None, ""
        if model_id is not None and self.manager is not None:
            m = self.manager.package(model_id).manifest
            notice, use = m.demo_notice, m.intended_use
        self.demo_banner.setText(notice or "")
        self.demo_banner.setVisible(bool(notice))
        self.intended_use.setText(f"Intended use: {use}" if use else "")
        self._set_run_enabled()

    def block_runs(self, reason: str) -> None:
        """The signed-in role may not run models: the buttons stay off and a label under them
        says why (a tooltip alone is never seen on a disabled button)."""
        self.run_blocked = reason
        for button in (self.run_image_button, self.run_series_button):
            button.setToolTip(reason)
        self._set_run_enabled()

    def _set_run_enabled(self) -> None:
        ok = (
            self.selected_model() is not None
            and self.state.slice_count > 0
            and not self.run_blocked
        )
        self.run_image_button.setEnabled(ok)
        self.run_series_button.setEnabled(ok)
        self.run_blocked_label.setText(self.run_blocked)
        self.run_blocked_label.setVisible(bool(self.run_blocked))

    def _on_series_changed(self, _series: object) -> None:
        self._fill_models()
        self._show_current()

    def _on_slice(self, _index: int) -> None:
        self._show_current()

    def bind(self, state: ViewerState, viewport: ViewportWidget) -> None:
        """Act on another viewport (the grid's active one): its series' models, Run on its
        images, the result of its current slice. Runs already queued go on unchanged."""
        if state is self.state:
            return
        self.state.series_changed.disconnect(self._on_series_changed)
        self.state.viewport.events.slice_index.disconnect(self._on_slice)
        self.state, self.viewport = state, viewport
        state.series_changed.connect(self._on_series_changed)
        state.viewport.events.slice_index.connect(self._on_slice)
        self._fill_models()
        self._show_current()

    # --- heatmaps in every viewport --------------------------------------------------------
    def follow_grid(self, grid: ViewportGrid) -> None:
        """Draw heatmaps in every viewport of ``grid`` showing their series, including the
        viewports later layouts add, and act on the active viewport."""
        self.cells = GridCells(grid)
        self.cells.added.connect(self._watch_viewport)
        self.cells.start()
        self.grid = grid
        tie(self, grid.model.active_changed, self._on_active_changed)
        self._on_active_changed(grid.model.active)

    def _on_active_changed(self, _index: int) -> None:
        """The panel follows the active viewport (the one a click or a drop chose)."""
        grid = self.grid
        if grid is not None and grid.model.active < len(grid.widgets):
            self.bind(grid.model.active_state, grid.widgets[grid.model.active])

    def viewports(self) -> list[ViewportWidget]:
        """The viewports heatmaps are drawn in: the grid's cells, or the panel's one viewport."""
        return self.cells.widgets() if self.cells is not None else [self.viewport]

    def _owns(self, widget: ViewportWidget) -> bool:
        return self.cells.owns(widget) if self.cells is not None else widget is self.viewport

    def _watch_viewport(self, widget: ViewportWidget) -> None:
        if any(w is widget for w in self._watched):
            return
        self._watched = [w for w in self._watched if self._owns(w)] + [widget]
        widget.set_heatmap_visible(self.heat_toggle.isChecked())
        widget.set_heatmap_opacity(self.opacity.value() / 100)
        widget.set_heatmap_floor(self.floor.value())
        # after the widget's own handler, which clears the previous series' heatmaps
        widget.state.series_changed.connect(lambda _s: self._series_shown(widget))
        self._restore_heatmaps(widget)
        if self.grid is not None:  # a hanging stage builds its cells after choosing the active
            self._on_active_changed(self.grid.model.active)

    def _series_shown(self, widget: ViewportWidget) -> None:
        # a dropped cell's state (or the whole layout) may outlive its widget
        if shiboken6.isValid(widget) and self._owns(widget):
            self._restore_heatmaps(widget)

    def _set_heatmap_visible(self, on: bool) -> None:
        for widget in self.viewports():
            widget.set_heatmap_visible(on)

    def _set_heatmap_opacity(self, value: int) -> None:
        for widget in self.viewports():
            widget.set_heatmap_opacity(value / 100)

    def _set_heatmap_floor(self, value: float) -> None:
        for widget in self.viewports():
            widget.set_heatmap_floor(value)
        self.colour_bar.set_floor(value)
        self._show_cut(self.current_result())

    def _current_map(self) -> Any | None:
        """The heatmap (uint8) of the shown image's result, None without one."""
        index = self.state.viewport.slice_index
        if not 0 <= index < len(self.state.slices):
            return None
        ref = self.state.slices[index]
        found = self.by_ref.get((ref.instance.sop_instance_uid, ref.frame))
        if found is None or found[0].maps is None:
            return None
        return found[0].maps[found[1]]

    def _show_cut(self, found: tuple[InferenceResult, int] | None) -> None:
        """Mark on the colour bar where the shown map's colouring starts (the floor, raised
        to the map's own hottest tenth where that is higher), as the viewport draws it."""
        heat = self._current_map() if found is not None else None
        if heat is None:
            self.colour_bar.set_cut(None)
            self.heat_caption.setText(CAPTION)
            return
        floor = self.floor.value()
        start = map_cut(heat, floor)  # the viewports' own, computed once per map and floor
        self.colour_bar.set_cut(start)
        # say why the mark is not at the floor (the spin box shows the floor)
        why = f"this map's hottest {MAX_AREA:.0%}" if start > floor else "the floor"
        where = "the whole map is coloured" if start == 0 else f"coloured above {start:.2f} ({why})"
        self.heat_caption.setText(f"{CAPTION}; {where}")

    def _restore_heatmaps(self, widget: ViewportWidget) -> None:
        """Put the heatmaps of ``widget``'s series at the slices their instances occupy there
        (keyed by instance: the same result lands right in every viewport and slice order)."""
        maps = {}
        for i, ref in enumerate(widget.state.slices):
            found = self.by_ref.get((ref.instance.sop_instance_uid, ref.frame))
            if found is not None and found[0].maps is not None:
                maps[i] = found[0].maps[found[1]]
        if maps:
            widget.set_heatmaps(maps)

    # --- running -------------------------------------------------------------------------
    def run_current_image(self) -> QueueRow | None:
        index = self.state.viewport.slice_index
        return self._run([index], f"slice {index + 1}")

    def run_series(self) -> QueueRow | None:
        n = self.state.slice_count
        return self._run(list(range(n)), f"series ({n} images)")

    def _run(self, indices: list[int], scope: str) -> QueueRow | None:
        model_id = self.selected_model()
        series = self.state.series
        if self.manager is None or model_id is None or series is None or not indices:
            return None
        refs = [self.state.slices[i] for i in indices]
        frames = [self.state.frames[i] for i in indices]  # None: decoded by the job
        return self.queue.submit(
            self.manager, model_id, series.series_instance_uid, indices, refs, frames, scope
        )

    def _cancel_selected(self) -> None:
        for index in self.queue_table.selectionModel().selectedRows():
            item = self.queue_table.item(index.row(), 0)
            if item is not None:
                self.queue.cancel(int(item.data(Qt.ItemDataRole.UserRole)))

    def _refresh_queue(self) -> None:
        rows = self.queue.rows
        self.queue_table.setRowCount(len(rows))
        for i, r in enumerate(rows):
            status = r.state + (f": {r.message}" if r.message else "")
            done = f"{r.done}/{r.total}"
            cells = [
                r.model_id,
                r.scope,
                status,
                f"decoded {done}" if r.state == "decoding" else done,
            ]
            for col, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setData(Qt.ItemDataRole.UserRole, r.row_id)
                if col in (1, 2):
                    item.setToolTip(text)
                self.queue_table.setItem(i, col, item)
        fit_table(self.queue_table, MAX_QUEUE_ROWS)
        active = self.queue.active()
        self.run_status.setText(
            "\n".join(f"{r.model_id} on {r.scope}: {r.state} {r.done}/{r.total}" for r in active)
        )
        self.run_status.setVisible(bool(active))

    def _on_result(self, row: QueueRow) -> None:
        """A run finished and was recorded by its job (one that could not be recorded fails,
        and is never shown as if it were final)."""
        assert row.result is not None
        for k, ref in enumerate(row.result.provenance.inputs):
            self.by_ref[(ref.sop_instance_uid, ref.frame)] = (row, k)
        for widget in self.viewports():
            series = widget.state.series
            if series is not None and series.series_instance_uid == row.series_uid:
                self._restore_heatmaps(widget)
        self._show_current()
        self._start_shadow(row)

    def _start_shadow(self, row: QueueRow) -> None:
        """Run the rollout's shadow candidate (if any) on what the shown model saw."""
        sources, row.sources = row.sources, None
        shadow = self.shadow
        if shadow is None or sources is None or row.result is None:
            return
        if shadow.get(row.model_id) is None:
            return
        refs, frames = sources
        self.runner.start(
            f"shadow model '{row.model_id}' on {row.scope}",
            shadow_job,
            self.results,
            shadow,
            row.model_id,
            refs,
            frames,
            row.result.to_json(),
            on_result=self.shadow_recorded.emit,
            on_error=lambda exc: log.warning("shadow model '%s' failed: %s", row.model_id, exc),
        )

    def _on_failed(self, row: QueueRow) -> None:
        if row.refused:  # a guard said no (self-test, verification, population): say why
            self.result_title.setText(f"Model '{row.model_id}' was not run on {row.scope}")
            self.guard_banner.setText(f"⚠ {row.message}")
            self.guard_banner.show()
            return
        self.result_title.setText(f"Model '{row.model_id}' failed on {row.scope}: {row.message}")

    # --- the result of the current image -------------------------------------------------
    def current_result(self) -> tuple[InferenceResult, int] | None:
        series = self.state.series
        if series is None:
            return None
        index = self.state.viewport.slice_index
        if not 0 <= index < len(self.state.slices):
            return None
        ref = self.state.slices[index]
        found = self.by_ref.get((ref.instance.sop_instance_uid, ref.frame))
        if found is None or found[0].result is None:
            return None
        return found[0].result, found[1]

    def _show_current(self) -> None:
        self._show_result(self.current_result())

    def _show_result(self, found: tuple[InferenceResult, int] | None) -> None:
        has = found is not None
        for w in (
            self.accept_button,
            self.reject_button,
            self.reject_reason,
            self.comment,
            self.comment_button,
        ):
            w.setEnabled(has)
        self._show_findings(found[0] if found is not None else None)
        self.result_body.setVisible(has)
        if found is None:
            self.result_title.setText("No result for this image")
            self.scores.setRowCount(0)
            fit_table(self.scores)
            self.provenance.setText("")
            self.result_demo.hide()
            self.warnings.hide()
            self.verdict.setText("")
            self.history.hide()
            self.result_changed.emit()
            return
        result, k = found
        prov = result.provenance
        ood = self.findings_box.ood.get(k, "")
        self.result_title.setText(
            f"{prov.model_id} {prov.model_version}: <b>{result.decisions[k]}</b>"
            + (" · <span style='color:#ffb300'>⚠ out of distribution</span>" if ood else "")
        )
        self.result_demo.setText(result.demo_notice or "")
        self.result_demo.setVisible(bool(result.demo_notice))
        scores = result.scores(k)
        self.scores.setRowCount(len(scores))
        for i, (label, score) in enumerate(scores.items()):
            threshold = result.thresholds.get(label)
            cells = [label, f"{score:.3f}", f"{threshold:.3f}" if threshold is not None else "-"]
            for col, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if label == result.decisions[k]:
                    font = item.font()
                    font.setBold(True)
                    item.setFont(font)
                self.scores.setItem(i, col, item)
        fit_table(self.scores)
        self._show_cut(found)
        timings = ", ".join(f"{name} {ms:.0f} ms" for name, ms in prov.timings_ms.items())
        ref = prov.inputs[k]
        self.provenance.setText(
            f"device {prov.device} · {timings}{' · from cache' if prov.cache_hit else ''}\n"
            f"package {prov.package_hash[:12]} · instance …{ref.sop_instance_uid[-12:]} "
            f"frame {ref.frame}"
        )
        self.warnings.setText("\n".join(result.warnings))
        self.warnings.setVisible(bool(result.warnings))
        self._show_verdict(result.result_id)

    def _show_verdict(self, result_id: str) -> None:
        """The verdict and history known for the result (read in a job when not known yet),
        then the last note on it (a failed or saved decision)."""
        history = self.histories.get(result_id)
        if history is None:
            verdict = self.verdicts.get(result_id)
            text = f"Your decision: {verdict}" if verdict else "Not reviewed yet"
            self.history.hide()
        else:
            text = verdict_text(history, result_id)
            self.history.show_history(history, result_id)
        note = self.histories.notes.get(result_id)
        self.verdict.setText(f"{text}\n{note}" if note else text)
        self.result_changed.emit()

    def _history_read(self, result_id: str) -> None:
        self._refresh_verdict(result_id)
        self.history_shown.emit(result_id)

    # --- findings of a run -------------------------------------------------------------------
    def _show_findings(self, result: InferenceResult | None) -> None:
        """List the run's slices over threshold, mark them (and OOD slices) on the slider and
        say the run's guard warnings; rebuilt only when another result is shown."""
        key = (result.result_id, id(self.state)) if result is not None else None
        if key == self._findings_of:
            return
        self._findings_of = key
        data = result.to_json() if result is not None else None
        at: list[int | None] = []
        if result is not None:
            position = {
                (r.instance.sop_instance_uid, r.frame): i for i, r in enumerate(self.state.slices)
            }
            at = [position.get((r.sop_instance_uid, r.frame)) for r in result.provenance.inputs]
        marks = self.findings_box.show_run(data, at)
        warnings = guard_lines(data, at) if data is not None else []
        self.guard_banner.setText("⚠ " + "\n⚠ ".join(warnings) if warnings else "")
        self.guard_banner.setVisible(bool(warnings))
        if self.slider_marks is not None:
            self.slider_marks.set_marks(marks)

    def jump_to(self, slice_index: int) -> None:
        """Show ``slice_index`` (a finding) in the active viewport, with its heatmap."""
        if not self.heat_toggle.isChecked():
            self.heat_toggle.setChecked(True)
        self.state.set_slice(slice_index)

    def current_verdict(self) -> Decision | None:
        """The latest accept/reject of the shown result (None: none, or no result shown)."""
        found = self.current_result()
        return self.verdicts.get(found[0].result_id) if found is not None else None

    def add_result_widget(self, widget: QWidget) -> None:
        """Add a widget (e.g. an export button) at the foot of the Result box."""
        layout = self.result_box.layout()
        if layout is not None:
            layout.addWidget(widget)

    def decide(self, decision: Decision, reason: str = "") -> bool:
        """Record accept / reject (with a reason code) / comment on the current image's result
        (in a job: the decision, its audit event and its upstream item are one encrypted
        transaction). The comment field's text goes with a rejection as its free text."""
        found = self.current_result()
        if found is None:
            return False
        result_id = found[0].result_id
        comment = self.comment.text().strip()
        if decision == "comment" and not comment:
            self.verdict.setText("Type a comment first")
            return False
        if decision != "rejected":
            reason = ""
        if decision == "accepted":
            comment = ""  # an accept says nothing more; text goes in with Comment or Reject
        if reason == "other" and not comment:
            self.verdict.setText("Say in the comment field why you reject ('Other')")
            return False

        def recorded(record: DecisionRecord) -> None:
            if decision != "comment":
                self.verdicts[result_id] = decision
            if comment:
                self.comment.clear()
            if decision == "rejected":
                self.reject_reason.setCurrentIndex(0)
            # read again, with the earlier runs'
            self.histories.changed(result_id, "comment saved" if decision == "comment" else "")
            self._refresh_verdict(result_id)
            self.decided.emit(result_id, decision)

        def failed(exc: BaseException) -> None:
            self.histories.note(result_id, f"Could not record the decision: {exc}")
            self._refresh_verdict(result_id)

        self.verdict.setText("Recording…")
        self.runner.start(
            f"recording '{decision}'",
            decide_job,
            self.results,
            result_id,
            decision,
            comment,
            reason,
            on_result=recorded,
            on_error=failed,
        )
        return True

    def _refresh_verdict(self, result_id: str) -> None:
        current = self.current_result()
        if current is not None and current[0].result_id == result_id:
            self._show_verdict(result_id)

    def show_manager(self) -> None:
        dock: Any = self.manager_view.parent()
        if dock is not None and hasattr(dock, "show"):
            dock.show()
            dock.raise_()
        else:
            self.manager_view.show()
        self.manager_view.refresh()

    def shutdown(self) -> None:
        """Close the loaded models (after the runner stopped every job)."""
        if self.manager is not None:
            self.manager.shutdown()
        if self.shadow is not None:
            self.shadow.shutdown()


def install_ai(
    window: MainWindow, device: str | None = None, results: ReadingResults | None = None
) -> AIPanel:
    """Add the AI panel and the model manager view to a MainWindow (via ``add_panel``)."""
    area = Qt.DockWidgetArea
    panel = AIPanel(window.state, window.viewport, window.runner, results=results, device=device)
    panel.follow_grid(window.grid)  # heatmaps in every viewport showing their series
    scroll = QScrollArea()  # the panel is tall: scroll rather than force the window taller
    scroll.setObjectName("aiPanel")
    scroll.setWidgetResizable(True)
    scroll.setWidget(panel)
    window.ai_dock = ai_dock = window.add_panel(scroll, area.RightDockWidgetArea, "AI")
    window.tabifyDockWidget(window.tags_dock, ai_dock)
    ai_dock.raise_()
    panel.slider_marks = SliderMarks(window.slider)  # the findings of a series run
    window.models_dock = models_dock = window.add_panel(
        panel.manager_view, area.BottomDockWidgetArea, "Model manager"
    )
    models_dock.hide()
    if window.menus is not None:
        window.menus.tools.addSeparator()
        window.menus.tools.addAction("Model manager…", panel.show_manager)
    panel.queue.failed.connect(
        lambda row: window.statusBar().showMessage(
            f"AI model '{row.model_id}' failed: {row.message}", 10000
        )
    )
    return panel
