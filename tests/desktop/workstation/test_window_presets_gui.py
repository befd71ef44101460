"""Window presets in the window, as a radiologist uses them: keys reach only the modality's
presets (the CT brain key on an MR gives the MR's fourth preset, the image stays readable),
the menu lists the modality's presets, Ctrl+drag sets a window from a region, and a user's
preset saved in the encrypted profile is there again after reopening it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtCore import QPoint, Qt

from core.app.window_presets import load_user_presets
from core.app.workstation import Workstation
from core.config import SecuritySettings
from core.imaging.display import render
from core.imaging.presets import CT_PRESETS
from tests.desktop.workstation.helpers import PASSWORD, REPO, add_users

MR = REPO / "resources" / "sample" / "mr_brain"
TIMEOUT_MS = 60_000


def _open_and_wait(qtbot, win, path: Path) -> None:  # type: ignore[no-untyped-def]
    win.open_paths([str(path)])
    qtbot.waitUntil(
        lambda: "series_loaded" in win.controller.timings and not win.controller.indexing,
        timeout=TIMEOUT_MS,
    )


def _focus(qtbot, win) -> None:  # type: ignore[no-untyped-def]
    """Window shortcuts need the window active (a test before may have left another one)."""
    win.activateWindow()
    win.viewport.setFocus()
    qtbot.waitUntil(win.isActiveWindow, timeout=TIMEOUT_MS)


def _menu_texts(win) -> list[str]:  # type: ignore[no-untyped-def]
    menu = win.preset_menu
    menu.aboutToShow.emit()
    return [a.text() for a in menu.actions()]


def test_keys_and_menu_follow_the_modality(qtbot, open_window, ws: Workstation) -> None:  # type: ignore[no-untyped-def]
    add_users(ws)
    ws.session.login("rad", PASSWORD)
    win = open_window(ws)
    _open_and_wait(qtbot, win, MR)
    st, vp = win.state, win.state.viewport
    assert st.modality == "MR"
    texts = _menu_texts(win)
    assert any(t.startswith("Standard") for t in texts)
    assert not any(t.startswith(("Brain", "Lung")) for t in texts)
    _focus(qtbot, win)
    said: list[str] = []
    win.statusBar().messageChanged.connect(said.append)
    qtbot.keyClick(win.viewport, Qt.Key.Key_4)  # the CT brain key
    assert vp.preset == "mr-bright"
    assert (vp.window_center, vp.window_width) != CT_PRESETS["brain"]
    img = render(st.current_frame(), window=(vp.window_center, vp.window_width))
    assert (img == 255).mean() < 0.05  # not whited out
    qtbot.keyClick(win.viewport, Qt.Key.Key_9)  # the MR has four: said, nothing changes
    assert vp.preset == "mr-bright"
    assert "no window preset on key 9 for MR" in said
    qtbot.keyClick(win.viewport, Qt.Key.Key_0)
    assert vp.preset == "auto"

    # Ctrl + drag with the W/L tool: the window of the rectangle
    frame = st.current_frame()
    before = (vp.window_center, vp.window_width)
    centre = win.viewport.rect().center()
    a, b = centre - QPoint(30, 30), centre + QPoint(30, 30)
    qtbot.mousePress(
        win.viewport, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.ControlModifier, a
    )
    qtbot.mouseMove(win.viewport, b)
    qtbot.mouseRelease(
        win.viewport, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.ControlModifier, b
    )
    assert vp.preset == "region"
    assert (vp.window_center, vp.window_width) != before
    p0, p1 = win.viewport.to_image(a), win.viewport.to_image(b)
    assert p0 is not None
    assert p1 is not None
    region = frame.values[int(p0[1]) : int(p1[1]) + 1, int(p0[0]) : int(p1[0]) + 1]
    lo, hi = vp.window_center - vp.window_width / 2, vp.window_center + vp.window_width / 2
    assert region.min() - 1 <= lo
    assert hi <= region.max() + 1
    assert not st.measurements  # the rectangle is not kept as an ROI


def test_a_user_preset_persists_across_reopening_the_profile(
    qtbot, open_window, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "profile.db"
    security = SecuritySettings(lock_timeout_min=1, max_failed_logins=3, lockout_min=5)
    ws = Workstation.open(path, security)
    add_users(ws)
    ws.session.login("rad", PASSWORD)
    win = open_window(ws)
    _open_and_wait(qtbot, win, MR)
    presets = win.preset_menu
    vp = win.state.viewport
    vp.set_window(300.0, 500.0)
    presets.save("Posterior fossa", "MR", vp.window_center, vp.window_width)
    qtbot.waitUntil(lambda: bool(win.state.presets.presets), timeout=TIMEOUT_MS)
    assert any(t.startswith("Posterior fossa") for t in _menu_texts(win))
    assert win.shutdown(10_000)
    ws.close()

    ws = Workstation.open(path, security)
    try:
        assert load_user_presets(ws) == ()  # nobody signed in: nobody's presets
        ws.session.login("tech", PASSWORD)
        assert load_user_presets(ws) == ()  # another user's presets are not theirs
        ws.session.logout()
        ws.session.login("rad", PASSWORD)
        win = open_window(ws)
        qtbot.waitUntil(lambda: bool(win.state.presets.presets), timeout=TIMEOUT_MS)
        _open_and_wait(qtbot, win, MR)
        _focus(qtbot, win)
        qtbot.keyClick(win.viewport, Qt.Key.Key_5)  # after the MR's four: the user's own
        assert (win.state.viewport.window_center, win.state.viewport.window_width) == (
            300.0,
            500.0,
        )
        assert np.isfinite(win.state.viewport.window_width)
    finally:
        ws.close()
