"""Menus, toolbar and shortcuts of the main window, kept out of the window class.

Every action writes to ``ViewerState`` (or asks the controller to open/cancel); views update
from the state's events, so a toolbar button and a key do exactly the same thing.

In the reading room the actions act on the *active* viewport: the tools are shared by every
viewport; window presets, invert, clear, cine and the view actions (rotate, flip, fit, 1:1,
reset) change the active one, and the others of the grid's link group when that link is on
(invert and presets with "Link window/level", the view actions with "Link zoom/pan"; the link
group itself carries window, zoom and pan). Clear (Del) also deletes the user's own stored
annotations on the active viewport's image (``clear_active``). Hide patient info hides it in
every viewport. The checked state of Invert, Flip and Cine shows the active viewport's
(``FollowActive``).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import QMessageBox, QToolBar, QToolButton

from desktop.menus import WindowMenus, open_log_folder
from desktop.seg_export import SegExport
from desktop.window_presets import active_state, install_window_presets

if TYPE_CHECKING:
    from core.viewer.state import ViewerState
    from desktop.main_window import MainWindow


def linked_states(win: MainWindow, link: str) -> list[ViewerState]:
    """The active viewport's state, then the others of its link group showing a series when
    the group's ``link`` ("window" or "zoom_pan") is on."""
    state = active_state(win)
    links = win.grid.links
    out = [state]
    if getattr(links, link) and state in links:
        out += [m.state for m in links.members if m.state is not state and m.state.series]
    return out


def _set_view(win: MainWindow, link: str, attr: str, value: object) -> None:
    for st in linked_states(win, link):
        setattr(st.viewport, attr, value)


def _on_view(win: MainWindow, link: str, call: Callable[[ViewerState], object]) -> None:
    for st in linked_states(win, link):
        call(st)


class FollowActive:
    """Checkable view actions show the active viewport's value (and follow it when another
    viewport becomes active); changing them programmatically never writes back."""

    def __init__(self, win: MainWindow, toggles: dict[str, QAction]) -> None:
        self.win, self.toggles = win, toggles  # viewport attribute -> its action
        self.bound: ViewerState | None = None
        self._handlers: list[tuple[Any, Callable[[bool], None]]] = []
        win.reading.active_changed.connect(lambda _i: self.bind())
        win.reading.grid_changed.connect(lambda *_: self.bind())
        self.bind()

    @staticmethod
    def _show(action: QAction, value: bool) -> None:
        action.blockSignals(True)
        action.setChecked(bool(value))
        action.blockSignals(False)

    def bind(self) -> None:
        state = active_state(self.win)
        if state is self.bound:
            return
        for signal, handler in self._handlers:
            signal.disconnect(handler)
        self._handlers = []
        for attr, action in self.toggles.items():
            handler = partial(self._show, action)
            signal = getattr(state.viewport.events, attr)
            signal.connect(handler)
            self._handlers.append((signal, handler))
            self._show(action, getattr(state.viewport, attr))
        self.bound = state


def _act(
    win: MainWindow,
    text: str,
    slot: object,
    shortcut: str | None = None,
    checkable: bool = False,
    tip: str = "",
) -> QAction:
    action = QAction(text, win)
    if shortcut:
        action.setShortcut(QKeySequence(shortcut))
    action.setCheckable(checkable)
    action.setToolTip(f"{tip or text} ({shortcut})" if shortcut else (tip or text))
    if checkable:
        action.toggled.connect(slot)
    else:
        action.triggered.connect(slot)
    win.addAction(action)
    win.actions_by_name[text] = action
    return action


def clear_active(win: MainWindow) -> QMessageBox | None:
    """Clear: the active viewport's unsaved measurements and this user's annotations on the
    image it shows, each deleted through the annotation layer (stored, audited and undoable
    like the Delete key's); other authors' stay. More than one annotation goes only after a
    window-modal confirmation (returned; Cancel clears nothing)."""
    state = active_state(win)
    layer = getattr(win, "annotations", None)
    at = layer.active_where() if layer is not None and layer.may_write else None
    uids = [a.uid for a in layer.mine_on(at.image)] if layer is not None and at else []

    def clear() -> None:
        state.clear_measurements()
        if layer is not None and uids:
            layer.delete_each(uids)

    if len(uids) <= 1:
        clear()
        return None
    box = QMessageBox(
        QMessageBox.Icon.Question,
        "Clear annotations",
        f"Delete your {len(uids)} annotations on this image?\n\n"
        "Other authors' annotations stay. Each deletion is recorded in the audit trail; "
        "Undo brings them back one at a time.",
        QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
        win,
    )
    box.setObjectName("clearAnnotationsBox")
    box.setDefaultButton(QMessageBox.StandardButton.Cancel)

    def answered(_result: int) -> None:
        if box.standardButton(box.clickedButton()) == QMessageBox.StandardButton.Yes:
            clear()
        box.deleteLater()

    box.finished.connect(answered)
    box.open()
    return box


def build_actions(win: MainWindow) -> None:
    state = win.state
    menu = win.menuBar()

    file_menu = menu.addMenu("&File")
    file_menu.addAction(_act(win, "Open files…", win.open_files_dialog, "Ctrl+O"))
    file_menu.addAction(_act(win, "Open folder…", win.open_folder_dialog, "Ctrl+Shift+O"))
    file_menu.addAction(_act(win, "Open zip…", win.open_zip_dialog))
    file_menu.addSeparator()
    file_menu.addAction(_act(win, "Cancel loading", win.cancel_loading, "Esc"))
    quit_action = _act(win, "Quit", win.close, "Ctrl+Q")
    file_menu.addAction(quit_action)

    tb = QToolBar("Tools", win)
    tb.setObjectName("toolsToolbar")
    tb.setMovable(False)
    win.addToolBar(tb)

    tools = QActionGroup(win)
    tools.setExclusive(True)
    for name, label, key in (
        ("window", "W/L", "W"),
        ("pan", "Pan", "M"),
        ("zoom", "Zoom", "Z"),
        ("length", "Length", "L"),
        ("roi", "ROI", "R"),
    ):
        a = _act(
            win,
            label,
            lambda on, n=name: win.set_tool(n) if on else None,
            key,
            checkable=True,
            tip={
                "window": "Window/level (left drag)",
                "pan": "Pan (left drag)",
                "zoom": "Zoom (left drag)",
                "length": "Measure length",
                "roi": "Rectangle ROI statistics",
            }[name],
        )
        a.setChecked(name == "window")
        tools.addAction(a)
        tb.addAction(a)
    tb.addAction(
        _act(
            win,
            "Clear",
            lambda: clear_active(win),
            "Del",
            tip="Clear your measurements and annotations on the active viewport's image",
        )
    )
    tb.addSeparator()

    # keys 0..9 and the menu offer the current modality's presets only (desktop.window_presets)
    presets = install_window_presets(win)
    preset_button = QToolButton(win)
    preset_button.setText("Presets")
    preset_button.setMenu(presets)
    preset_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
    tb.addWidget(preset_button)
    win.preset_menu = presets

    invert = _act(
        win, "Invert", lambda on: _set_view(win, "window", "invert", on), "I", checkable=True
    )
    tb.addAction(invert)
    tb.addAction(
        _act(
            win,
            "Rot ⟳",
            lambda: _on_view(win, "zoom_pan", lambda st: st.viewport.rotate(90)),
            "]",
            tip="Rotate 90° clockwise",
        )
    )
    tb.addAction(
        _act(
            win,
            "Rot ⟲",
            lambda: _on_view(win, "zoom_pan", lambda st: st.viewport.rotate(-90)),
            "[",
            tip="Rotate 90° anticlockwise",
        )
    )
    flip_h = _act(
        win, "Flip H", lambda on: _set_view(win, "zoom_pan", "flip_h", on), "H", checkable=True
    )
    flip_v = _act(
        win, "Flip V", lambda on: _set_view(win, "zoom_pan", "flip_v", on), "V", checkable=True
    )
    tb.addAction(flip_h)
    tb.addAction(flip_v)
    fit = {"fit": True, "pan": (0.0, 0.0)}
    one = {"fit": False, "zoom": 1.0, "pan": (0.0, 0.0)}
    tb.addAction(
        _act(win, "Fit", lambda: _on_view(win, "zoom_pan", lambda st: st.viewport.update(fit)), "F")
    )
    tb.addAction(
        _act(
            win,
            "1:1",
            lambda: _on_view(win, "zoom_pan", lambda st: st.viewport.update(one)),
            "Ctrl+1",
        )
    )
    tb.addAction(
        _act(
            win,
            "Reset",
            lambda: _on_view(win, "zoom_pan", lambda st: st.viewport.reset_geometry()),
            "Ctrl+R",
            tip="Reset zoom/rotation/flip",
        )
    )
    tb.addSeparator()
    cine = _act(win, "Cine", win.play_cine, "Space", checkable=True, tip="Play/stop cine")
    tb.addAction(cine)
    win.follow_active = FollowActive(
        win, {"invert": invert, "flip_h": flip_h, "flip_v": flip_v, "cine_playing": cine}
    )
    tb.addSeparator()
    phi = _act(
        win,
        "Hide patient info",
        lambda on: win.reading.set_hide_phi(on),  # every viewport, the priors' too
        "Ctrl+Shift+H",
        checkable=True,
        tip="Hide patient-identifying text everywhere (screenshots, teaching)",
    )
    state.hide_phi_changed.connect(lambda v: phi.setChecked(v))
    tb.addAction(phi)

    view_menu = menu.addMenu("&View")
    for name in (
        "Invert",
        "Rot ⟳",
        "Rot ⟲",
        "Flip H",
        "Flip V",
        "Fit",
        "1:1",
        "Reset",
        "Cine",
        "Hide patient info",
    ):
        view_menu.addAction(win.actions_by_name[name])
    view_menu.addMenu(presets)
    panels_menu = view_menu.addMenu("Panels")
    tools_menu = menu.addMenu("&Tools")
    help_menu = menu.addMenu("&Help")
    help_menu.addAction(
        _act(win, "Open log folder", open_log_folder, tip="The application's log files")
    )
    win.menus = WindowMenus(
        file_menu, view_menu, panels_menu, tools_menu, quit_action, help=help_menu
    )
    for a in tools.actions():
        tools_menu.addAction(a)
    tools_menu.addAction(win.actions_by_name["Clear"])
    SegExport(win, tools_menu)  # Save AI segmentation as DICOM SEG…, Send AI segmentation to PACS
