"""``install_reports(window)``: the report panel and the key-image list as docks, their menu
entries (Tools > Report) and keys (K, Shift+K) in one call (issue 17). A window without a
signed-in profile has no store to write reports to: nothing is added there."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from PySide6.QtCore import QEvent, QObject, Qt, QTimer
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QDockWidget, QFrame, QMenu, QScrollArea, QWidget

from core.annotations.store import Purpose
from desktop.key_images import KeyImagesPanel
from desktop.report_lines import gather
from desktop.report_panel import ReportPanel

if TYPE_CHECKING:
    from desktop.main_window import MainWindow

log = logging.getLogger(__name__)

KEYS = {"Mark key image": "K", "Mark key image for the report": "Shift+K"}


@dataclass
class ReportsGui:
    panel: ReportPanel
    keys: KeyImagesPanel
    report_dock: QDockWidget
    keys_dock: QDockWidget
    menu: QMenu | None
    actions: dict[str, QAction]


class _SaveOnClose(QObject):
    """Saves the typed draft when the window closes (before its jobs are stopped)."""

    def __init__(self, window: MainWindow, panel: ReportPanel) -> None:
        super().__init__(window)
        self.panel = panel

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.Close:
            try:
                self.panel.save_on_close()
            except Exception as exc:  # noqa: BLE001 - closing goes on; the reason is logged
                log.warning("the report draft could not be saved on close: %s", exc)
        return False


def _scrolled(widget: QWidget) -> QScrollArea:
    area = QScrollArea()
    area.setObjectName(f"{widget.objectName() or type(widget).__name__}Scroll")
    area.setWidget(widget)
    area.setWidgetResizable(True)
    area.setFrameShape(QFrame.Shape.NoFrame)
    return area


def install_reports(window: MainWindow) -> ReportsGui | None:
    """Add the Report and Key images docks, Tools > Report and the K / Shift+K keys."""
    found = getattr(window, "reports", None)
    if isinstance(found, ReportsGui):  # installed already (the window does it): once only,
        return found  # or K would be an ambiguous shortcut and mark nothing
    ws = window.workstation
    if ws is None:
        return None
    reading = window.reading
    keys = KeyImagesPanel(ws, window.grid, window.runner)
    panel = ReportPanel(
        ws,
        reading,
        window.runner,
        manager=lambda: window.ai.manager,
        insert_sources=lambda uid: gather(
            reading.active_state.index, [c.state for c in reading.cells], uid
        ),
        key_images_for_report=keys.report_refs,
    )
    area = Qt.DockWidgetArea.RightDockWidgetArea
    # in scroll areas: the panels' rows of buttons must not widen the docks (a 521 px report
    # panel left the image 382 px of a 1280 px window)
    report_dock = window.add_panel(_scrolled(panel), area, "Report")
    left = Qt.DockWidgetArea.LeftDockWidgetArea
    keys_dock = window.add_panel(_scrolled(keys), left, "Key images")
    # the key images below the study browser (a row of their own in the left area, where the
    # browser leaves room); the report a tab beside the AI panel, shown first
    window.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, keys_dock, Qt.Orientation.Vertical)
    window.tabifyDockWidget(window.ai_dock or window.tags_dock, report_dock)
    QTimer.singleShot(0, report_dock.raise_)  # once the tab bar exists
    window.resizeDocks([window.browser_dock, report_dock], [300, 400], Qt.Orientation.Horizontal)
    panel.study_changed.connect(keys.set_study)
    window.state.index_changed.connect(keys.scan_index)
    window.installEventFilter(_SaveOnClose(window, panel))

    actions: dict[str, QAction] = {}

    def add(text: str, slot: object, key: str = "") -> QAction:
        action = QAction(text, window)
        if key:
            action.setShortcut(QKeySequence(key))
            action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        action.triggered.connect(lambda _c=False: slot())  # type: ignore[operator]
        window.addAction(action)  # its key works wherever the focus is, but in a text field
        actions[text] = action
        return action

    add("Mark key image", lambda: keys.toggle_mark(Purpose.OF_INTEREST), KEYS["Mark key image"])
    add(
        "Mark key image for the report",
        lambda: keys.toggle_mark(Purpose.FOR_REPORT),
        KEYS["Mark key image for the report"],
    )
    add("Export key images (KOS)…", keys.export_kos_dialog)
    add("Export annotations (GSPS + TID 1500)…", keys.export_annotations_dialog)
    add("Draft impression", panel.draft_impression)
    add("Sign report…", panel.open_sign_dialog)
    add("Add addendum…", panel.open_addendum_dialog)
    add("Export report (SR + PDF)…", panel.export_dialog)
    menu = None
    if window.menus is not None:
        menu = window.menus.tools.addMenu("Report")
        for i, action in enumerate(actions.values()):
            if i in (2, 4):
                menu.addSeparator()
            menu.addAction(action)
    panel.follow_active()
    return ReportsGui(panel, keys, report_dock, keys_dock, menu, actions)
