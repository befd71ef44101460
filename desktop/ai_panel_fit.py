"""Size the AI panel's lists and tables to their rows, so that the panel spends no height on
blank space and the result (title, scores, Accept / Reject) fits a 1280x860 window without
scrolling: a model list of two entries is two rows high, a score table of two classes has no
empty third row, and a long queue scrolls inside its own few rows."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QListWidget, QTableWidget

#: The most rows a fitted view shows before it scrolls.
MAX_LIST_ROWS = 4
MAX_QUEUE_ROWS = 4


def compact_rows(table: QTableWidget) -> None:
    """Rows as high as the text needs (the style's default is roomier than a panel can pay)."""
    header = table.verticalHeader()
    header.setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
    header.setDefaultSectionSize(table.fontMetrics().height() + 8)


def fit_table(table: QTableWidget, max_rows: int | None = None) -> None:
    """Fix ``table``'s height to its header and rows (at most ``max_rows``, then it scrolls);
    an empty table shows its header only."""
    rows = table.rowCount()
    shown = rows if max_rows is None else min(rows, max_rows)
    header = table.horizontalHeader()
    # the header's size hint, not its height: a table never shown yet (the AI tab behind
    # another) has not laid its header out
    height = 0 if header.isHidden() else header.sizeHint().height()
    height += sum(table.rowHeight(i) for i in range(shown))
    if table.horizontalScrollBarPolicy() != Qt.ScrollBarPolicy.ScrollBarAlwaysOff:
        bar = table.horizontalScrollBar()
        if bar.maximum() > 0:
            height += bar.sizeHint().height()
    table.setFixedHeight(height + 2 * table.frameWidth())


def fit_list(view: QListWidget, max_rows: int = MAX_LIST_ROWS) -> None:
    """Fix ``view``'s height to its entries (one row when empty, ``max_rows`` at most); long
    entries are elided in the middle, their whole text in the tooltip."""
    view.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    view.setTextElideMode(Qt.TextElideMode.ElideMiddle)
    view.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
    rows = max(min(view.count(), max_rows), 1)
    row = view.sizeHintForRow(0) if view.count() else view.fontMetrics().height() + 4
    view.setFixedHeight(row * rows + 2 * view.frameWidth() + 2)
