"""The window-preset menu and keys: the current modality's presets only, and the user's own.

Keys 0..9 are window-wide shortcuts that ask the state for "preset number k of the current
modality" (``ViewerState.apply_preset_key``), so key 4 is the brain window on a CT and the MR's
fourth preset on an MR: a CT window can no longer be put on an MR by a key press. The menu is
rebuilt from ``core.viewer.presets.presets_for`` whenever the series (hence the modality) or the
user's presets change. "Save current window as preset…" stores it for the signed-in user in the
encrypted profile (``core.app.window_presets``), in a background job; the user's presets load the
same way when the window opens. A window from a region: Ctrl + drag with the W/L tool.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QInputDialog, QMenu

from core.imaging.presets import modality_group
from core.viewer.presets import PresetError, UserPreset, presets_for

if TYPE_CHECKING:
    from core.app.workstation import Workstation
    from core.viewer.state import ViewerState
    from desktop.main_window import MainWindow


def _say(win: MainWindow, text: str) -> None:
    win.statusBar().showMessage(text, 6000)


def active_state(win: MainWindow) -> ViewerState:
    """The state of the active viewport of the reading room (viewport 1 without a grid)."""
    reading = getattr(win, "reading", None)
    return reading.active_state if reading is not None else win.state


def apply_key(win: MainWindow, key: int) -> None:
    """Key ``key`` (0 = auto) on the active viewport's series; a refusal is said, not raised."""
    try:
        active_state(win).apply_preset_key(key)
    except PresetError as exc:
        _say(win, str(exc))


def _load_job(_ctx: object, ws: Workstation) -> tuple[UserPreset, ...]:
    from core.app.window_presets import load_user_presets

    return load_user_presets(ws)


def _save_job(_ctx: object, ws: Workstation, presets: tuple[UserPreset, ...]) -> object:
    from core.app.window_presets import save_user_presets

    return save_user_presets(ws, presets)


class PresetMenu(QMenu):
    """The "Window presets" menu; it also owns the 0..9 key actions of its main window."""

    def __init__(self, win: MainWindow) -> None:
        super().__init__("Window presets", win)
        self.win = win
        self.key_actions: list[QAction] = []
        for key in range(10):
            action = QAction(f"Window preset {key}" if key else "Auto window", win)
            action.setShortcut(QKeySequence(str(key)))
            action.triggered.connect(lambda _c=False, k=key: apply_key(win, k))
            win.addAction(action)
            self.key_actions.append(action)
        win.actions_by_name["Auto"] = self.key_actions[0]
        # The menu's actions are made once and reused (text, visibility): the session lock
        # disables every action of a locked window and enables the same objects again.
        self._auto = self.addAction("Auto (file window, else 0.5-99.5 %)\t0")
        self._auto.triggered.connect(lambda: apply_key(win, 0))
        self._section = self.addSeparator()
        self._pool: list[QAction] = []
        self._tail = self.addSeparator()
        save = self.addAction("Save current window as preset…")
        save.triggered.connect(self.save_current)
        self._hint = self.addAction("Window from a region: Ctrl + drag with W/L")
        self._hint.setEnabled(False)
        self.aboutToShow.connect(self.rebuild)
        win.state.series_changed.connect(lambda _s: self.rebuild())
        win.reading.active_changed.connect(lambda _i: self.rebuild())  # its modality's presets
        win.state.presets.changed.connect(self.rebuild)
        self.rebuild()
        if win.workstation is not None:
            self.load()

    def _preset_action(self, i: int) -> QAction:
        while len(self._pool) <= i:
            action = QAction(self)
            action.setEnabled(self._auto.isEnabled())  # disabled while the window is locked
            action.triggered.connect(lambda _c=False, a=action: self._apply(str(a.data())))
            self.insertAction(self._tail, action)
            self._pool.append(action)
        return self._pool[i]

    def _apply(self, name: str) -> None:
        try:
            active_state(self.win).apply_preset(name)
        except PresetError as exc:
            _say(self.win, str(exc))

    def rebuild(self) -> None:
        """The menu for the active viewport's modality: auto, its presets with their keys, the
        user's."""
        st = active_state(self.win)
        offered = presets_for(st.modality, st.presets.presets)
        for i, preset in enumerate(offered):
            action = self._preset_action(i)
            action.setText(preset.menu_text() + (f"\t{preset.shortcut}" if preset.shortcut else ""))
            action.setData(preset.name)
            action.setVisible(True)
        for action in self._pool[len(offered) :]:
            action.setVisible(False)

    # --- the user's presets, in the encrypted profile ---------------------------------------
    def load(self) -> None:
        win = self.win
        win.runner.start(
            "load window presets",
            _load_job,
            win.workstation,
            on_result=win.state.presets.replace,
            on_error=lambda exc: _say(win, f"Your window presets could not be read: {exc}"),
        )

    def save_current(self) -> None:
        win, st = self.win, active_state(self.win)
        if win.workstation is None:
            _say(win, "Sign in to keep your own window presets")
            return
        if st.series is None:
            _say(win, "Open an image first: a preset keeps the window on screen")
            return
        vp = st.viewport
        group = modality_group(st.modality)
        name, ok = QInputDialog.getText(
            win,
            "Save window preset",
            f"Name for W {vp.window_width:.0f} L {vp.window_center:.0f} ({group} images):",
        )
        if ok:
            self.save(name, group, vp.window_center, vp.window_width)

    def save(self, name: str, group: str, center: float, width: float) -> None:
        """Add (or replace) a preset of the signed-in user; stored in a background job."""
        win = self.win
        try:
            presets = win.state.presets.with_preset(UserPreset(name, group, center, width))
        except PresetError as exc:
            _say(win, str(exc))
            return

        def saved(stored: tuple[UserPreset, ...]) -> None:
            win.state.presets.replace(stored)
            _say(win, f"Window preset '{name.strip()}' saved for {group} images")

        win.runner.start(
            "save window preset",
            _save_job,
            win.workstation,
            presets,
            on_result=saved,
            on_error=lambda exc: _say(win, f"The window preset was not saved: {exc}"),
        )


def install_window_presets(win: MainWindow) -> PresetMenu:
    return PresetMenu(win)
