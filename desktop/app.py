"""Starts the workstation window (called by ``desktop.launcher.main``)."""

from __future__ import annotations

import sys
from argparse import Namespace
from pathlib import Path

SAMPLE = Path(__file__).resolve().parents[1] / "resources" / "sample"


def run_gui(options: Namespace) -> int:
    """Open the main window on ``options.paths`` (``--demo`` with no path: the sample study)."""
    from PySide6.QtWidgets import QApplication

    from core.config import ConfigError, load_settings
    from desktop.main_window import MainWindow
    from desktop.theme import apply_dark_theme

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("DoctorAI Workstation")
    apply_dark_theme(app)  # type: ignore[arg-type]
    try:
        settings = load_settings()
        workers, hide = settings.viewer.load_workers or None, settings.viewer.hide_patient_info
    except ConfigError as exc:
        print(f"doctorai: {exc}; using default viewer settings", file=sys.stderr)
        workers, hide = None, False
    window = MainWindow(load_workers=workers, ai_device=getattr(options, "device", None))
    window.state.hide_phi = hide
    from desktop.seg_overlay import install as install_seg_overlay

    install_seg_overlay(window)  # SEG masks over their source slices, SR summaries in a panel
    paths = list(getattr(options, "paths", []) or [])
    if not paths and getattr(options, "demo", False):
        paths = [str(SAMPLE)]
    window.show()
    if paths:
        window.open_paths(paths)
    code = app.exec()
    window.shutdown()
    return int(code)
