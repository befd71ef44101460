"""A real SQLCipher workstation per test (its key in the per-test file keyring from
tests/conftest.py) and main windows attached to it, shut down after the test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from core.app.workstation import Workstation
from core.config import SecuritySettings
from desktop.main_window import MainWindow


@pytest.fixture
def ws(tmp_path: Path) -> Iterator[Workstation]:
    security = SecuritySettings(lock_timeout_min=1, max_failed_logins=3, lockout_min=5)
    w = Workstation.open(tmp_path / "ws.db", security)
    yield w
    w.close()


@pytest.fixture
def open_window(qtbot) -> Iterator[Callable[[Workstation], MainWindow]]:  # type: ignore[no-untyped-def]
    windows: list[MainWindow] = []

    from PySide6.QtWidgets import QApplication

    from desktop.theme import apply_dark_theme

    apply_dark_theme(QApplication.instance())  # as the app runs: the lock cover must hold

    def make(ws: Workstation) -> MainWindow:
        win = MainWindow(workstation=ws, lock_check_ms=20)
        qtbot.addWidget(win)
        win.resize(1280, 860)
        win.show()
        qtbot.waitExposed(win)
        windows.append(win)
        return win

    yield make
    for win in windows:
        assert win.shutdown(10_000)
