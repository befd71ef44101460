"""Menus, toolbar and shortcuts of the main window, kept out of the window class.

Every action writes to ``ViewerState`` (or asks the controller to open/cancel); views update
from the state's events, so a toolbar button and a key do exactly the same thing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import QToolBar, QToolButton

from desktop.menus import WindowMenus, open_log_folder
from desktop.window_presets import install_window_presets

if TYPE_CHECKING:
    from desktop.main_window import MainWindow


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


def build_actions(win: MainWindow) -> None:
    state, vp = win.state, win.state.viewport
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
    tb.addAction(_act(win, "Clear", state.clear_measurements, "Del", tip="Clear measurements"))
    tb.addSeparator()

    # keys 0..9 and the menu offer the current modality's presets only (desktop.window_presets)
    presets = install_window_presets(win)
    preset_button = QToolButton(win)
    preset_button.setText("Presets")
    preset_button.setMenu(presets)
    preset_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
    tb.addWidget(preset_button)
    win.preset_menu = presets

    invert = _act(win, "Invert", lambda on: setattr(vp, "invert", on), "I", checkable=True)
    vp.events.invert.connect(lambda v: invert.setChecked(v))
    tb.addAction(invert)
    tb.addAction(_act(win, "Rot ⟳", lambda: vp.rotate(90), "]", tip="Rotate 90° clockwise"))
    tb.addAction(_act(win, "Rot ⟲", lambda: vp.rotate(-90), "[", tip="Rotate 90° anticlockwise"))
    flip_h = _act(win, "Flip H", lambda on: setattr(vp, "flip_h", on), "H", checkable=True)
    flip_v = _act(win, "Flip V", lambda on: setattr(vp, "flip_v", on), "V", checkable=True)
    vp.events.flip_h.connect(lambda v: flip_h.setChecked(v))
    vp.events.flip_v.connect(lambda v: flip_v.setChecked(v))
    tb.addAction(flip_h)
    tb.addAction(flip_v)
    tb.addAction(_act(win, "Fit", lambda: vp.update({"fit": True, "pan": (0.0, 0.0)}), "F"))
    tb.addAction(
        _act(
            win, "1:1", lambda: vp.update({"fit": False, "zoom": 1.0, "pan": (0.0, 0.0)}), "Ctrl+1"
        )
    )
    tb.addAction(_act(win, "Reset", vp.reset_geometry, "Ctrl+R", tip="Reset zoom/rotation/flip"))
    tb.addSeparator()
    cine = _act(
        win,
        "Cine",
        lambda on: setattr(vp, "cine_playing", on),
        "Space",
        checkable=True,
        tip="Play/stop cine",
    )
    vp.events.cine_playing.connect(lambda v: cine.setChecked(v))
    tb.addAction(cine)
    tb.addSeparator()
    phi = _act(
        win,
        "Hide patient info",
        lambda on: setattr(state, "hide_phi", on),
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
