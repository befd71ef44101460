"""Disabled looks disabled and says why: a menu action the signed-in role may not use is greyed
with who may use it in its own text (menus show no tooltips); the AI panel shows a label under
its disabled Run buttons; the app's style sheet draws disabled controls differently. Real
signed-in windows on a real SQLCipher profile, the application's own theme."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QApplication,
    QCheckBox,
    QLineEdit,
    QMenu,
    QPushButton,
    QSlider,
    QWidget,
)

from core.app.workstation import Workstation
from desktop.theme import apply_dark_theme
from tests.desktop.workstation.helpers import PASSWORD, add_users, rgb

OPEN = ("Open files…", "Open folder…", "Open zip…")


def _menu_texts(win) -> list[str]:  # type: ignore[no-untyped-def]
    """Every entry of every menu of the window, as the menus show them."""
    texts: list[str] = []
    pending = [a.menu() for a in win.menuBar().actions() if a.menu() is not None]
    while pending:
        menu = pending.pop()
        for action in menu.actions():
            texts.append(action.text())
            if action.menu() is not None:
                pending.append(action.menu())
    return texts


def test_a_radiologist_sees_why_the_audit_trail_is_off(qtbot, ws: Workstation, open_window) -> None:
    add_users(ws)
    ws.session.login("rad", PASSWORD)
    win = open_window(ws)
    action = win.audit_hooks.audit_action
    assert not action.isEnabled()
    assert action.text() == "Audit trail… (admin or auditor only)"
    assert "Audit trail… (admin or auditor only)" in _menu_texts(win)  # in the menu entry
    assert "radiologist" in action.statusTip()  # shown in the status bar while hovered
    for name in OPEN:  # a radiologist opens studies: nothing said, nothing disabled
        assert win.actions_by_name[name].isEnabled()
        assert win.actions_by_name[name].text() == name
    assert not win.ai.run_blocked_label.isVisibleTo(win.ai)  # a radiologist may run models


def test_an_admin_sees_why_the_run_buttons_are_off(qtbot, ws: Workstation, open_window) -> None:
    add_users(ws)
    ws.session.login("admin", PASSWORD)
    win = open_window(ws)
    assert win.audit_hooks.audit_action.isEnabled()
    assert win.audit_hooks.audit_action.text() == "Audit trail…"
    panel = win.ai
    assert not panel.run_image_button.isEnabled()
    assert not panel.run_series_button.isEnabled()
    label = panel.run_blocked_label
    assert label.isVisibleTo(panel)
    assert label.text() == "The admin role may not run AI models."
    win.ai_dock.show()
    win.ai_dock.raise_()  # the AI tab in front of the DICOM tags
    qtbot.waitUntil(label.isVisible, timeout=3000)
    # drawn under the buttons, inside the panel, in its own colour
    assert label.geometry().top() >= panel.run_image_button.geometry().bottom()
    assert label.width() > 0
    assert label.height() > 0
    pixels = rgb(label).reshape(-1, 3).astype(int)
    assert (np.abs(pixels - (0xE0, 0xB3, 0x5A)).sum(axis=1) < 90).any()  # the note's amber


def test_an_auditor_sees_why_opening_studies_is_off(qtbot, ws: Workstation, open_window) -> None:
    add_users(ws)
    ws.session.login("aud", PASSWORD)
    win = open_window(ws)
    for name in OPEN:
        action = win.actions_by_name[name]
        assert not action.isEnabled()
        assert action.text() == f"{name} (radiologist, technologist or admin only)"
    export = win.audit_hooks.export_action
    assert not export.isEnabled()
    assert export.text() == "Export view as PNG… (radiologist, technologist or admin only)"
    file_menu = win.menus.file
    assert file_menu is not None
    assert "Open files… (radiologist, technologist or admin only)" in [
        a.text() for a in file_menu.actions()
    ]
    assert win.audit_hooks.audit_action.isEnabled()


def _mean_colour(widget: QWidget) -> np.ndarray:
    return rgb(widget).reshape(-1, 3).mean(axis=0)


def _brightest(widget: QWidget) -> float:
    """The brightest tenth of the pixels (the text) on average: what the eye reads."""
    grey = rgb(widget).reshape(-1, 3).astype(float).mean(axis=1)
    return float(np.sort(grey)[-max(1, grey.size // 10) :].mean())


def test_the_style_sheet_draws_disabled_controls_dimmer(qtbot) -> None:
    app = QApplication.instance()
    apply_dark_theme(app)  # the application's own style sheet and palette

    def slider() -> QSlider:
        s = QSlider(Qt.Orientation.Horizontal)
        s.setRange(0, 100)
        s.setValue(50)
        return s

    pairs = []
    for make in (
        lambda: QPushButton("Run on current image"),
        lambda: QLineEdit("text in a field"),
        lambda: QCheckBox("Show heatmap"),
        slider,
    ):
        pair = []
        for enabled in (True, False):
            widget = make()
            qtbot.addWidget(widget)
            widget.setEnabled(enabled)
            widget.resize(200, 30)
            if isinstance(widget, QCheckBox):
                widget.setChecked(True)
            pair.append(widget)
        pairs.append(pair)
    for on, off in pairs:
        name = type(on).__name__
        assert not np.allclose(_mean_colour(on), _mean_colour(off), atol=1.0), (
            f"a disabled {name} is drawn like an enabled one"
        )
        assert _brightest(off) < _brightest(on) - 20, f"a disabled {name}'s text is not dimmer"

    menu = QMenu()
    qtbot.addWidget(menu)
    menu.addAction("Audit trail…")
    menu.addAction("Audit trail…").setEnabled(False)
    menu.resize(menu.sizeHint())
    image = rgb(menu).astype(float).mean(axis=2)
    rows = menu.actionGeometry(menu.actions()[0]), menu.actionGeometry(menu.actions()[1])
    text = [
        float(np.sort(image[r.top() : r.bottom(), r.left() : r.right()].ravel())[-40:].mean())
        for r in rows
    ]
    assert text[1] < text[0] - 20, "a disabled menu entry is drawn like an enabled one"
