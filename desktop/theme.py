"""The dark theme: Fusion style, a dark palette (for what QSS does not reach) and the QSS."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication

RESOURCES = Path(__file__).resolve().parents[1] / "resources"
STYLE_SHEET = RESOURCES / "style" / "dark.qss"


def apply_dark_theme(app: QApplication) -> None:
    app.setStyle("Fusion")
    pal = QPalette()
    roles = {
        QPalette.ColorRole.Window: "#1e1f22",
        QPalette.ColorRole.WindowText: "#d6d8dc",
        QPalette.ColorRole.Base: "#17181a",
        QPalette.ColorRole.AlternateBase: "#1b1c1f",
        QPalette.ColorRole.Text: "#d6d8dc",
        QPalette.ColorRole.Button: "#2b2d31",
        QPalette.ColorRole.ButtonText: "#d6d8dc",
        QPalette.ColorRole.Highlight: "#1f4e79",
        QPalette.ColorRole.HighlightedText: "#ffffff",
        QPalette.ColorRole.ToolTipBase: "#25272b",
        QPalette.ColorRole.ToolTipText: "#d6d8dc",
    }
    for role, colour in roles.items():
        pal.setColor(role, QColor(colour))
    disabled = {  # what QSS does not reach (check-box marks, slider handles, item views)
        QPalette.ColorRole.WindowText: "#5d6168",
        QPalette.ColorRole.Text: "#5d6168",
        QPalette.ColorRole.ButtonText: "#63676e",
        QPalette.ColorRole.Button: "#222326",
        QPalette.ColorRole.Base: "#1b1c1f",
        QPalette.ColorRole.Highlight: "#3b4654",
        QPalette.ColorRole.HighlightedText: "#9aa0a8",
    }
    for role, colour in disabled.items():
        pal.setColor(QPalette.ColorGroup.Disabled, role, QColor(colour))
    app.setPalette(pal)
    app.setStyleSheet(STYLE_SHEET.read_text(encoding="utf-8"))
