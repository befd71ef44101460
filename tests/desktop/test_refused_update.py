"""A signed model update that fails verification is said in the window, not silently replaced
by the shipped version (issue 15, hole 9): the AI panel and the model manager name the model,
the version refused and the reason, and what runs instead. The attack: one byte appended to an
installed update's weights, in the profile's store of signed updates."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from models.discovery import ZOO_DIR
from tests.desktop.conftest import _no_leaked_workers  # noqa: F401 - fixture

if TYPE_CHECKING:
    from pytestqt.qtbot import QtBot

MODEL = "tabular-breast-cancer"


@pytest.fixture
def tampered_update(_isolated_profile: Path) -> Path:
    """``<profile>/models/MODEL/1.0.1`` installed as the current signed version, then tampered."""
    folder = _isolated_profile / "models" / MODEL
    update = folder / "1.0.1"
    shutil.copytree(ZOO_DIR / MODEL, update)
    manifest = json.loads((update / "manifest.json").read_text())
    manifest["version"] = "1.0.1"
    (update / "manifest.json").write_text(json.dumps(manifest))
    (folder / "current").write_text(json.dumps({"version": "1.0.1", "previous": "1.0.0"}))
    with (update / "model.json").open("ab") as fh:
        fh.write(b" ")
    return update


def test_the_window_says_a_signed_update_was_refused(tampered_update: Path, qtbot: QtBot) -> None:
    from PySide6.QtWidgets import QApplication

    from desktop.main_window import MainWindow
    from desktop.theme import apply_dark_theme

    apply_dark_theme(QApplication.instance())  # type: ignore[arg-type]
    win = MainWindow()  # its AI panel finds the models in a background job, as at start-up
    qtbot.addWidget(win)
    win.resize(1280, 860)
    win.show()
    try:
        panel = win.ai
        qtbot.waitUntil(lambda: panel.manager is not None, timeout=60_000)
        assert panel.update_warning.isVisible()
        text = panel.update_warning.text()
        assert f"Model '{MODEL}': signed update version 1.0.1 REFUSED" in text
        assert "model.json" in text  # the reason names the file that failed its hash
        assert "the shipped version 1.0.0 is not run in its place" in text
        assert f"running version 1.0.0 from '{ZOO_DIR / MODEL}'" not in text
        assert panel.manager_view.refused.text() == text
        win.grab().save("/tmp/refused_update_window.png")
    finally:
        assert win.shutdown(10_000)


def test_no_warning_without_a_refusal(qtbot: QtBot) -> None:
    from core.inference.manager import manager_from_settings
    from desktop.model_manager_view import refusal_warnings

    manager = manager_from_settings(device="cpu")
    assert refusal_warnings(manager) == []
