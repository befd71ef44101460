"""The reading room's viewport grid: draws a ``core.viewer.layout.Layout``, nothing more.

One ``ViewportWidget`` per cell (the window's own widget is cell 1, so every existing tool,
overlay and heatmap keeps working there), framed; the active one is outlined. A click makes a
viewport active, a double-click maximises it or restores the grid. One ``LinkGroup`` spans the
grid; View > Layout switches its scroll, window/level and zoom/pan links, lets the active
viewport leave or rejoin them ("Link this viewport") and sets its offset in mm or slices
("Link offset of this viewport…", a small ``LinkDialog``).

A cell whose planned orientation (hanging protocol, or View > Layout > Show as axial / coronal /
sagittal for the active cell) is another plane than its series' acquired one is covered by a
``desktop.mpr_cell.MprCell`` drawing that reformat through an ``MprView`` over the grid's one
``SharedVolumes`` (built in a job once the series has loaded). The grid hands that view to the
link group, so a reformat scrolls with the viewports of its orientation and goes to the
crosshair (``core.viewer.linking``).

Each viewport, acquired or reformatted, draws where the other visible viewports' current planes
cut it (same Frame of Reference; ``core.viewer.reference_lines``), and on demand where their
first and last planes do (``desktop.grid_overlay.ReferenceOverlay``, over the reformat too,
following its zoom and pan). Shift+click in any viewport is the crosshair: every linked
viewport of that Frame of Reference goes through the clicked point, and each viewport whose
plane holds it (within half a slice) marks it.

A series opened while another viewport than the first is active loads into that viewport with
its own loader; a series already shown elsewhere is not decoded again (the layout hands over
the same frames).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QEvent, QObject, QPointF, Qt
from PySide6.QtGui import (
    QAction,
    QKeySequence,
    QMouseEvent,
)
from PySide6.QtWidgets import (
    QFrame,
    QGridLayout,
    QInputDialog,
    QLabel,
    QMenu,
    QMessageBox,
    QVBoxLayout,
    QWidget,
)

from core.viewer.hanging import (
    Hanging,
    HangingError,
    acquired_plane,
    apply,
    apply_windows,
    hang,
    load_protocols,
)
from core.viewer.layout import MAX_SIDE, PRESETS, Direction, Layout, LayoutError
from core.viewer.linking import LinkGroup
from core.viewer.mpr import SharedVolumes
from core.viewer.state import ViewerState
from desktop.grid_overlay import LinkDialog, ReferenceOverlay, current_plane, mpr_of
from desktop.mpr_cell import MprCell
from desktop.viewport_widget import Tool, ViewportWidget

if TYPE_CHECKING:
    from desktop.controller import ViewerController
    from desktop.workers import JobRunner

ACTIVE = "#3daee9"  # the active viewport's outline
CROSSHAIR_MODIFIER = Qt.KeyboardModifier.ShiftModifier


class ViewportGrid(QWidget):
    """The grid of viewports of a ``Layout``; the window's first viewport widget is cell 1."""

    def __init__(
        self,
        layout: Layout,
        first: ViewportWidget,
        runner: JobRunner | None = None,
        first_controller: ViewerController | None = None,
        load_workers: int | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("viewportGrid")
        self.model = layout
        self.runner, self.first_controller, self.load_workers = (
            runner,
            first_controller,
            load_workers,
        )
        self.reference_lines = True
        self.first_last = False  # also the other series' first and last slices
        self.widgets: list[ViewportWidget] = [first]
        self.frames: list[QFrame] = []
        self.captions: list[QLabel] = []
        self.overlays: list[ReferenceOverlay] = []
        self.controllers: dict[int, ViewerController] = {}
        self.hanging: Hanging | None = None
        self.volumes = SharedVolumes()  # one Volume per series for every reformat cell
        self.mpr: dict[int, MprCell] = {}  # cell index -> its reformat, when it shows one
        self._tool: Tool = first.tool
        # one link group over the grid, every link off until the reader switches it on
        self.links = LinkGroup(scroll=False, window=False, zoom_pan=False)
        self._grid = QGridLayout(self)
        self._grid.setContentsMargins(0, 0, 0, 0)
        self._grid.setSpacing(2)
        self._deferred = False  # while a hanging stage is laid out: widgets follow at the end
        # the layout, its states and the links may outlive this widget (tests, a rebuilt
        # window): every connection to them is undone when it goes
        self._slots: list[tuple[Any, Callable[..., Any]]] = []
        self.destroyed.connect(partial(_disconnect_all, self._slots))
        self._connect(layout.grid_changed, lambda *_: self._rebuild())
        self._connect(layout.maximised_changed, lambda _i: self._place())
        self._connect(layout.active_changed, lambda _i: self._highlight())
        self._connect(layout.cell_changed, lambda i: self._caption(i))
        self._connect(self.links.changed, lambda *_: self._refresh_lines())
        self._rebuild()

    def _connect(self, signal: Any, slot: Callable[..., Any]) -> None:
        signal.connect(slot)
        self._slots.append((signal, slot))

    # --- building ------------------------------------------------------------------------
    def _frame_for(self, i: int) -> QFrame:
        while len(self.widgets) <= i:
            self.widgets.append(ViewportWidget(self.model.cells[len(self.widgets)].state))
        while len(self.frames) <= i:
            j = len(self.frames)
            box = QFrame(self)
            box.setObjectName(f"viewportFrame{j}")
            col = QVBoxLayout(box)
            col.setContentsMargins(2, 2, 2, 2)
            col.setSpacing(0)
            caption = QLabel("", box)
            caption.setObjectName("viewportCaption")
            caption.setStyleSheet("color: #c8c8c8; padding: 1px 4px;")
            col.addWidget(caption)
            widget = self.widgets[j]
            widget.tool = self._tool
            col.addWidget(widget, 1)
            widget.installEventFilter(self)
            self._connect(widget.state.series_changed, lambda _s: self._refresh_lines())
            self._connect(widget.state.series_changed, partial(self._series_changed, j))
            self._connect(
                widget.state.viewport.events.slice_index, lambda _i: self._refresh_lines()
            )
            self.frames.append(box)
            self.captions.append(caption)
            self.overlays.append(ReferenceOverlay(self, widget))
            self.links.add(widget.state)
        return self.frames[i]

    def _rebuild(self) -> None:
        if self._deferred:
            return
        n = len(self.model)
        for i in range(n):
            self._frame_for(i)
        for j in range(n, len(self.frames)):  # cells dropped from the layout
            box, widget = self.frames[j], self.widgets[j]
            self._grid.removeWidget(box)
            widget.removeEventFilter(self)
            box.deleteLater()
            ctl = self.controllers.pop(j, None)
            if ctl is not None:
                ctl.cancel_series_load()
            self._drop_mpr(j)
            self.links.remove(widget.state)
        del self.frames[n:], self.widgets[n:], self.captions[n:], self.overlays[n:]
        for i in range(n):
            self._caption(i)
        self._place()

    def _place(self) -> None:
        if self._deferred:
            return
        while self._grid.count():
            self._grid.takeAt(0)
        visible = set(self.model.visible())
        for i, box in enumerate(self.frames):
            if i in visible:
                r, c = (0, 0) if self.model.maximised is not None else self.model.position(i)
                self._grid.addWidget(box, r, c)
                box.show()
            else:
                box.hide()
        rows, cols = (
            (1, 1) if self.model.maximised is not None else (self.model.rows, self.model.cols)
        )
        for k in range(MAX_SIDE):
            self._grid.setRowStretch(k, 1 if k < rows else 0)
            self._grid.setColumnStretch(k, 1 if k < cols else 0)
        self._highlight()
        self._refresh_lines()

    def _highlight(self) -> None:
        if self._deferred:
            return
        single = len(self.model) == 1 or self.model.maximised is not None
        for i, box in enumerate(self.frames):
            colour = ACTIVE if i == self.model.active and not single else "transparent"
            box.setStyleSheet(f"#viewportFrame{i} {{ border: 2px solid {colour}; }}")
            self.captions[i].setVisible(not single or bool(self.model.cells[i].label))

    def _caption(self, i: int) -> None:
        if self._deferred or i >= len(self.captions):
            return
        cell = self.model.cells[i]
        series = cell.state.series
        parts = [cell.label] if cell.label else []
        if series is not None:
            parts.append(series.description or series.modality)
        if self._sync_mpr(i):
            parts.append(f"{cell.orientation} reformat")
        self.captions[i].setText(" · ".join(parts))
        self._highlight()

    # --- reformats ---------------------------------------------------------------------------
    def reformat_of(self, i: int) -> str | None:
        """The plane cell ``i`` must reformat to, or None when it shows the acquired slices."""
        cell = self.model.cells[i] if i < len(self.model) else None
        if cell is None or cell.state.series is None or cell.orientation == "acquired":
            return None
        acquired = acquired_plane(cell.state.series)
        return None if acquired in ("", cell.orientation) else cell.orientation

    def _series_changed(self, i: int, _series: object) -> None:
        self._sync_mpr(i)

    def _sync_mpr(self, i: int) -> bool:
        """Cover cell ``i`` with its reformat, or uncover it; True when it shows one."""
        if self._deferred or i >= len(self.widgets):
            return False
        plane = self.reformat_of(i)
        mpr = self.mpr.get(i)
        if plane is None:
            self._drop_mpr(i)
            return False
        if mpr is None or mpr.viewport is not self.widgets[i]:
            self._drop_mpr(i)
            mpr = MprCell(
                self.widgets[i],
                plane,  # type: ignore[arg-type]
                self.volumes,
                self.runner,
                self._release_volume,
            )
            mpr.installEventFilter(self)
            mpr.plane_changed.connect(partial(self._mpr_moved, mpr))
            mpr.view_changed.connect(self.overlays[i].update)  # zoom/pan: the lines drawn in it
            self.overlays[i].raise_()  # over the reformat, so its lines are drawn into it
            self.mpr[i] = mpr
        elif mpr.plane_name != plane:
            mpr.set_plane(plane)  # type: ignore[arg-type]
        return True

    def _drop_mpr(self, i: int) -> None:
        mpr = self.mpr.pop(i, None)
        if mpr is None:
            return
        uid = mpr.built_for
        if mpr.state in self.links:
            self.links.set_reformat(mpr.state, None)
        mpr.detach()
        mpr.removeEventFilter(self)
        mpr.hide()
        mpr.deleteLater()
        if uid is not None:
            self._release_volume(uid)
        self._refresh_lines()

    def _mpr_moved(self, mpr: MprCell) -> None:
        """A reformat was built, scrolled or turned: the link group links its view (so it
        scrolls with the parallel viewports) and every reference line follows."""
        current = mpr.viewport in self.widgets and self.mpr.get(self.widgets.index(mpr.viewport))
        if current is mpr and mpr.state in self.links:
            self.links.set_reformat(mpr.state, mpr.view)
        self._refresh_lines()

    def _release_volume(self, uid: str) -> None:
        if all(m.built_for != uid for m in self.mpr.values()):
            self.volumes.drop(uid)  # no reformat shows the series any more

    def set_orientation(self, orientation: str, i: int | None = None) -> None:
        """Show cell ``i`` (the active one) as axial, coronal, sagittal or acquired."""
        i = self.model.active if i is None else i
        self.model.cells[i].orientation = orientation  # type: ignore[assignment]
        self.model.cell_changed.emit(i)

    def _refresh_lines(self) -> None:
        for overlay in self.overlays:
            overlay.update()

    # --- behaviour ---------------------------------------------------------------------------
    def visible_widgets(self) -> list[ViewportWidget]:
        return [self.widgets[i] for i in self.model.visible() if i < len(self.widgets)]

    def active_widget(self) -> ViewportWidget:
        return self.widgets[self.model.active]

    def set_tool(self, tool: Tool) -> None:
        self._tool = tool
        for w in self.widgets:
            w.tool = tool

    def edit_links(self, i: int | None = None) -> LinkDialog:
        """Open (not modal to the app) the link settings of viewport ``i`` (the active one)."""
        i = self.model.active if i is None else i
        cell = self.model.cells[i]
        name = f"viewport {i + 1}" + (f" ({cell.label})" if cell.label else "")
        dialog = LinkDialog(self.links, cell.state, name, self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.open()
        return dialog

    def set_linked(self, on: bool, i: int | None = None) -> None:
        """Let viewport ``i`` (the active one) leave the links or rejoin them."""
        i = self.model.active if i is None else i
        self.links.set_linked(self.model.cells[i].state, on)

    def set_reference_lines(self, on: bool) -> None:
        self.reference_lines = on
        self._refresh_lines()

    def set_first_last(self, on: bool) -> None:
        self.first_last = on
        self._refresh_lines()

    @staticmethod
    def _is_crosshair(event: QEvent) -> bool:
        return (
            isinstance(event, QMouseEvent)
            and event.button() == Qt.MouseButton.LeftButton
            and bool(event.modifiers() & CROSSHAIR_MODIFIER)
        )

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:
        widget = obj.viewport if isinstance(obj, MprCell) else obj
        if not isinstance(widget, ViewportWidget) or widget not in self.widgets:
            return False
        i = self.widgets.index(widget)
        if event.type() == QEvent.Type.MouseButtonPress:
            self.model.set_active(i)
            if self._is_crosshair(event):
                assert isinstance(event, QMouseEvent)
                self.crosshair(widget, event.position())  # the MprCell covers the viewport
                return True
        elif event.type() == QEvent.Type.MouseButtonDblClick:
            self.model.toggle_maximise(i)
            return True
        return False

    def crosshair(self, widget: ViewportWidget, pos: QPointF) -> list[ViewerState]:
        """Shift+click: every linked viewport in this one's Frame of Reference goes through
        the clicked point (patient mm), a reformat to its plane through it, a stack to its
        nearest slice; the point is marked where a plane holds it. Returns the viewports
        moved (none when the click is off the image)."""
        mpr = mpr_of(widget)
        plane = current_plane(widget, self.links)
        if plane is None:
            return []
        if mpr is not None:
            point = mpr.widget_to_patient(pos)
        else:
            at = widget.to_image(pos)
            point = plane.to_patient(*at) if at is not None else None
        if point is None:
            return []
        moved = self.links.goto_point(point, plane.frame_of_reference)
        for cell in self.mpr.values():
            if cell.state in moved:
                cell.goto(point)  # already through it; the cell keeps it as its pivot
        return moved

    # --- hanging protocols -------------------------------------------------------------------
    def show_hanging(self, hanging: Hanging) -> None:
        """Lay out a hanging protocol's first stage and load its series (each once). Its studies
        must be in the open index (priors from the study database are added there first)."""
        self.hanging = hanging
        self._show_stage()

    def hang_current(self, it_file: str | None = None) -> Hanging | None:
        """Hang the study on screen by protocol (IT's file first), with the other studies of
        the same patient in the open studies as priors. A bad protocol file raises
        HangingError naming the file and the key; None when nothing is on screen."""
        state = (
            self.model.active_state if self.model.active_state.series else self.model.cells[0].state
        )
        context = state.context()
        if context is None:
            return None
        patient, study = context
        priors = [s for s in patient.studies.values() if s is not study]  # hang checks issuers
        hanging = hang(study, priors, load_protocols(it_file))
        self.show_hanging(hanging)
        return hanging

    def next_stage(self) -> None:
        if self.hanging is not None:
            self.hanging.next()
            self._show_stage()

    def previous_stage(self) -> None:
        if self.hanging is not None:
            self.hanging.previous()
            self._show_stage()

    def _show_stage(self) -> None:
        assert self.hanging is not None
        stage = self.hanging.current
        self._deferred = True  # the loads start before the widgets are built (first image)
        try:
            apply(stage, self.model)
            self.load_missing()
            apply_windows(stage, self.model)  # a loader starting over resets the window
        finally:
            self._deferred = False
        self._rebuild()

    def load_missing(self) -> None:
        """Start one load per series on screen that still misses slices (in its first cell)."""
        started: set[str] = set()
        for i, cell in enumerate(self.model):
            uid, state = cell.series_uid, cell.state
            if uid is None or uid in started or state.settled_count >= state.slice_count:
                continue
            started.add(uid)
            self._controller(i).open_series(uid)

    def _controller(self, i: int) -> ViewerController:
        if i == 0 and self.first_controller is not None:
            return self.first_controller
        ctl = self.controllers.get(i)
        if ctl is not None and ctl.state is not self.model.cells[i].state:
            ctl.cancel_series_load()  # bound to a viewport the layout dropped since
            ctl = None
        if ctl is None:
            from desktop.controller import ViewerController

            if self.runner is None:
                raise RuntimeError("the viewport grid was made without a job runner")
            ctl = ViewerController(self.model.cells[i].state, self.runner, self, self.load_workers)
            self.controllers[i] = ctl
        return ctl

    def open_series(self, series_uid: str) -> None:
        """Show a series in the active viewport (the study browser's double-click)."""
        i = self.model.active
        _p, _st, series = self.model.cells[i].state.find_series(series_uid)
        if i == 0 and self.first_controller is not None:
            self.first_controller.open_series(series_uid)
            self.model.cell_changed.emit(0)
            return
        self.model.assign(i, series)
        if len(self.model.cells_showing(series_uid)) > 1 or self.runner is None:
            return  # another viewport holds it or is loading it: its slices reach this one
        self._controller(i).open_series(series_uid)


def _disconnect_all(slots: list[tuple[Any, Callable[..., Any]]], *_: object) -> None:
    for signal, slot in slots:
        signal.disconnect(slot)
    slots.clear()


LAYOUT_KEYS: dict[str, str] = {
    "Next viewport": "F6",
    "Previous viewport": "Shift+F6",
    "Viewport left": "Ctrl+Alt+Left",
    "Viewport right": "Ctrl+Alt+Right",
    "Viewport up": "Ctrl+Alt+Up",
    "Viewport down": "Ctrl+Alt+Down",
    "Maximise/restore viewport": "Ctrl+M",
    "Hang by protocol": "Ctrl+Shift+L",
    "Next stage": "Ctrl+PgDown",
    "Previous stage": "Ctrl+PgUp",
}


def install_layout_menu(win: QWidget, menu: QMenu, grid: ViewportGrid) -> dict[str, QAction]:
    """View > Layout: the grid presets, a custom grid, maximise, moving between viewports and
    the reference lines; the actions are added to ``win`` so their keys work everywhere."""
    sub = menu.addMenu("Layout")
    actions: dict[str, QAction] = {}

    def add(text: str, slot: Callable[[], object], key: str | None = None) -> QAction:
        action = QAction(text, win)
        if key:
            action.setShortcut(QKeySequence(key))
        action.triggered.connect(lambda _checked=False: slot())  # never the 'checked' flag
        win.addAction(action)
        sub.addAction(action)
        actions[text] = action
        return action

    model = grid.model
    for name in PRESETS:
        add(name.replace("x", " × "), partial(model.set_preset, name))

    def custom() -> None:
        text, ok = QInputDialog.getText(win, "Custom layout", "Rows x columns (e.g. 2x4):")
        if ok and text:
            try:
                model.set_preset(text)
            except LayoutError as exc:
                QMessageBox.warning(win, "Custom layout", str(exc))

    add("Custom…", custom)
    sub.addSeparator()
    moves: dict[str, Direction] = {
        "Next viewport": "next",
        "Previous viewport": "prev",
        "Viewport left": "left",
        "Viewport right": "right",
        "Viewport up": "up",
        "Viewport down": "down",
    }
    add(
        "Maximise/restore viewport", model.toggle_maximise, LAYOUT_KEYS["Maximise/restore viewport"]
    )
    for text, direction in moves.items():
        add(text, partial(model.move_active, direction), LAYOUT_KEYS[text])

    def hang_now() -> None:
        from core.config import ConfigError, load_settings

        try:
            grid.hang_current(load_settings().viewer.hanging_protocols)
        except (ConfigError, HangingError) as exc:
            QMessageBox.warning(win, "Hanging protocol", str(exc))

    add("Hang by protocol", hang_now, LAYOUT_KEYS["Hang by protocol"])
    add("Next stage", grid.next_stage, LAYOUT_KEYS["Next stage"])
    add("Previous stage", grid.previous_stage, LAYOUT_KEYS["Previous stage"])
    sub.addSeparator()
    for plane in ("axial", "coronal", "sagittal", "acquired"):
        add(
            f"Show as {plane}" if plane != "acquired" else "Show the acquired slices",
            partial(grid.set_orientation, plane),
        )
    sub.addSeparator()
    lines = add("Reference lines", lambda: None)
    lines.setCheckable(True)
    lines.setChecked(grid.reference_lines)
    lines.toggled.connect(grid.set_reference_lines)
    ends = add("Reference lines: first and last slices", lambda: None)
    ends.setCheckable(True)
    ends.toggled.connect(grid.set_first_last)
    sub.addSeparator()
    for text, key in (
        ("Link scrolling", "scroll"),
        ("Link window/level", "window"),
        ("Link zoom/pan", "zoom_pan"),
    ):
        link = add(text, lambda: None)
        link.setCheckable(True)
        link.setChecked(bool(getattr(grid.links, key)))
        link.toggled.connect(partial(_switch, grid.links, key))
    add("Keep offsets as they are now", grid.links.capture_offsets)
    linked = add("Link this viewport", lambda: None)
    linked.setCheckable(True)

    def show_linked(*_: object) -> None:  # the active viewport's own switch
        state = model.active_state
        linked.setChecked(state in grid.links and grid.links.is_linked(state))

    show_linked()
    linked.toggled.connect(lambda on: grid.set_linked(on))
    model.active_changed.connect(show_linked)
    grid.links.changed.connect(show_linked)

    def forget(*_: object) -> None:  # the model and links may outlive the window's actions
        model.active_changed.disconnect(show_linked)
        grid.links.changed.disconnect(show_linked)

    linked.destroyed.connect(forget)
    add("Link offset of this viewport…", grid.edit_links)
    return actions


def _switch(links: LinkGroup, key: str, on: bool) -> None:
    links.set_links(**{key: on})
