"""The window's top-level menus as named slots, so feature modules add their actions to the
menu they mean (never found by the label the user reads)."""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import QUrl
from PySide6.QtGui import QAction, QDesktopServices
from PySide6.QtWidgets import QMenu


@dataclass(frozen=True)
class WindowMenus:
    file: QMenu
    view: QMenu
    panels: QMenu  # View > Panels: one entry per dock
    tools: QMenu
    quit: QAction  # File > Quit, which ends the File menu
    help: QMenu | None = None

    def add_to_file(self, action: QAction) -> None:
        """Into File, above Quit."""
        self.file.insertAction(self.quit, action)


def open_log_folder() -> bool:
    """Help > Open log folder: the rotating log files (core.logs) in the file manager, for
    support; they carry no patient-identifying data."""
    from core.paths import log_dir

    return QDesktopServices.openUrl(QUrl.fromLocalFile(str(log_dir())))
