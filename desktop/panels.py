"""Side panels: the DICOM tag browser and the per-file load errors list."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from core.imaging.model import LoadError

if TYPE_CHECKING:  # pydicom loads on first use, not at start-up
    from core.viewer.tags import TagRow


class TagBrowser(QWidget):
    """Header of the current instance as a tree (sequences nested), with a filter box."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("tagBrowser")
        self.filter = QLineEdit(placeholderText="Filter tags (name, tag or value)")
        self.info = QLabel("No instance")
        self.tree = QTreeWidget()
        self.tree.setColumnCount(4)
        self.tree.setHeaderLabels(["Tag", "Name", "VR", "Value"])
        self.tree.setAlternatingRowColors(True)
        self.tree.setUniformRowHeights(True)
        header = self.tree.header()
        header.setStretchLastSection(True)
        for col, width in ((0, 104), (1, 150), (2, 34)):
            header.setSectionResizeMode(col, QHeaderView.ResizeMode.Interactive)
            header.resizeSection(col, width)
        self.tree.setIndentation(10)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addWidget(self.filter)
        layout.addWidget(self.info)
        layout.addWidget(self.tree)
        self.rows: list[TagRow] = []
        self.filter.textChanged.connect(self._apply_filter)

    def show_message(self, text: str) -> None:
        self.info.setText(text)

    def set_rows(self, rows: list[TagRow], title: str) -> None:
        self.rows = rows
        self.info.setText(title)
        self.tree.clear()
        parents: list[QTreeWidgetItem | None] = [None]
        for row in rows:
            item = QTreeWidgetItem([row.tag, row.keyword, row.vr, row.value])
            level = min(row.depth, len(parents) - 1)
            parent = parents[level]
            if parent is None:
                self.tree.addTopLevelItem(item)
            else:
                parent.addChild(item)
            del parents[level + 1 :]
            parents.append(item)
        self._apply_filter(self.filter.text())

    def _apply_filter(self, text: str) -> None:
        needle = text.strip().lower()
        for i in range(self.tree.topLevelItemCount()):
            item = self.tree.topLevelItem(i)
            if item is None:
                continue
            hay = " ".join(item.text(c) for c in range(4)).lower()
            item.setHidden(bool(needle) and needle not in hay)

    def values_by_keyword(self) -> dict[str, str]:
        return {r.keyword: r.value for r in self.rows if r.depth == 0}


class LoadErrorsPanel(QWidget):
    """Every file that could not be opened, with the reason; never blocks the window."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("loadErrors")
        self.summary = QLabel("No load errors")
        self.summary.setObjectName("warning")
        self.table = QTableWidget(0, 2)
        self.table.setHorizontalHeaderLabels(["File", "Reason"])
        self.table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Interactive)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.setWordWrap(False)
        self.clear_button = QPushButton("Clear")
        self.clear_button.clicked.connect(self.clear)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addWidget(self.summary)
        layout.addWidget(self.table)
        layout.addWidget(self.clear_button, alignment=Qt.AlignmentFlag.AlignRight)

    def add_errors(self, errors: list[LoadError]) -> None:
        for err in errors:
            row = self.table.rowCount()
            self.table.insertRow(row)
            path_item = QTableWidgetItem(err.path)
            path_item.setToolTip(err.path)
            reason_item = QTableWidgetItem(err.reason)
            reason_item.setToolTip(err.reason)
            self.table.setItem(row, 0, path_item)
            self.table.setItem(row, 1, reason_item)
        self.table.resizeColumnToContents(0)
        n = self.table.rowCount()
        self.summary.setText(f"{n} file(s) or job(s) could not be opened; the rest loaded")

    def entries(self) -> list[tuple[str, str]]:
        def text(row: int, col: int) -> str:
            item = self.table.item(row, col)
            return item.text() if item is not None else ""

        return [(text(r, 0), text(r, 1)) for r in range(self.table.rowCount())]

    def clear(self) -> None:
        self.table.setRowCount(0)
        self.summary.setText("No load errors")
