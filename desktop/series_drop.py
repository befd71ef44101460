"""Drag a series from the study browser into any viewport of the reading room's grid.

The drag carries the series instance UID under its own MIME type (``SERIES_MIME``), never file
paths: the series is already indexed, and the main window's own drop of files (paths as URLs)
must not mistake it for something to open. Each cell widget of the grid accepts drops through an
event filter installed here (``GridCells`` reaches the cells later rebuilds make), so
viewport_grid.py needed no change. The cell under the cursor becomes active and shows the
series, through the grid's own ``open_series`` (one loader per series, frames shared). While a
series is dragged over a cell, a dashed outline (``DropHint``) shows where it will land. Other
drags (files) are left alone: they go on to the main window, which opens them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QByteArray, QEvent, QMimeData, QObject, QPoint, QRect, Qt, Signal
from PySide6.QtGui import (
    QColor,
    QDragEnterEvent,
    QDragMoveEvent,
    QDropEvent,
    QPainter,
    QPaintEvent,
    QPen,
)
from PySide6.QtWidgets import QFrame, QWidget

from desktop.grid_cells import GridCells
from desktop.viewport_widget import ViewportWidget

if TYPE_CHECKING:
    from desktop.main_window import MainWindow
    from desktop.viewport_grid import ViewportGrid

SERIES_MIME = "application/x-doctorai-series-uid"
# a DICOM UID has at most 64 characters; some archives hold longer or odd ones, and the open
# studies are the judge of what exists, so only what cannot be a UID at all is refused here
_UID_MAX = 256


class SeriesDropError(ValueError):
    """A dropped series that cannot be shown (the message names it and says why)."""


def series_mime(series_uid: str) -> QMimeData:
    """The drag payload for one series: its UID as ASCII under ``SERIES_MIME``."""
    data = QMimeData()
    data.setData(SERIES_MIME, QByteArray(series_uid.encode("ascii")))
    return data


def series_uid_of(data: QMimeData | None) -> str | None:
    """The series UID a drag carries, None when it is not a series drag.

    Raises SeriesDropError when it is one but its payload cannot be a series UID."""
    if data is None or not data.hasFormat(SERIES_MIME):
        return None
    raw = bytes(data.data(SERIES_MIME).data())
    text = raw.decode("ascii", errors="replace").strip()
    if (
        not text
        or len(text) > _UID_MAX
        or not (text.isascii() and text.isprintable())
        or " " in text
    ):
        plain = "".join(c if c.isascii() and c.isprintable() else "?" for c in text)
        shown = plain[:40] + ("…" if len(plain) > 40 else "")
        raise SeriesDropError(
            f"dropped series '{shown}' is not a series UID (empty, too long or not plain text)"
        )
    return text


HINT = QColor("#3daee9")  # the grid's active outline: the cell will become the active one


class DropHint(QWidget):
    """A dashed outline over the cell a series would be dropped in; never takes an event."""

    def __init__(self, grid: QWidget) -> None:
        super().__init__(grid)  # the grid's child: a smaller grid deletes cells, not this
        self.setObjectName("seriesDropHint")
        self.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self.setAttribute(Qt.WidgetAttribute.WA_NoSystemBackground)
        self.cell: ViewportWidget | None = None  # the cell outlined (tests)
        self.hide()

    def over(self, grid: QWidget, widget: ViewportWidget) -> None:
        frame = widget.parentWidget()
        box = frame if isinstance(frame, QFrame) else widget
        self.setGeometry(QRect(box.mapTo(grid, QPoint(0, 0)), box.size()))
        if self.cell is not widget or self.isHidden():
            self.cell = widget
            self.show()
            self.raise_()

    def clear(self) -> None:
        self.cell = None
        self.hide()

    def paintEvent(self, event: QPaintEvent) -> None:
        p = QPainter(self)
        p.setPen(QPen(HINT, 3.0, Qt.PenStyle.DashLine))
        p.drawRect(self.rect().adjusted(2, 2, -2, -2))
        p.end()


class SeriesDrop(QObject):
    """Makes every cell of ``grid`` a drop target for ``SERIES_MIME`` drags."""

    dropped = Signal(int, str)  # cell index, series UID shown there
    refused = Signal(str)  # why a dropped series was not shown

    def __init__(self, grid: ViewportGrid, parent: QObject | None = None) -> None:
        super().__init__(parent if parent is not None else grid)
        self.grid = grid
        self.hint = DropHint(grid)
        self.cells = GridCells(grid)
        self.cells.added.connect(self._watch)
        self.cells.start()

    def _watch(self, widget: ViewportWidget) -> None:
        # the cell's frame too (its caption and border are part of the cell on screen)
        frame = widget.parentWidget()
        for target in (widget, frame) if isinstance(frame, QFrame) else (widget,):
            target.setAcceptDrops(True)
            target.installEventFilter(self)

    def _cell_widget(self, obj: QObject) -> ViewportWidget | None:
        """The cell widget a drop on ``obj`` (the widget or its frame) is meant for."""
        widget = obj.findChild(ViewportWidget) if isinstance(obj, QFrame) else obj
        if isinstance(widget, ViewportWidget) and self.cells.owns(widget):
            return widget
        return None

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:
        kind = event.type()
        if kind == QEvent.Type.DragLeave:
            self.hint.clear()
            return False
        if kind not in (QEvent.Type.DragEnter, QEvent.Type.DragMove, QEvent.Type.Drop):
            return False
        widget = self._cell_widget(obj)
        if widget is None:
            return False
        assert isinstance(event, QDragEnterEvent | QDragMoveEvent | QDropEvent)
        if not event.mimeData().hasFormat(SERIES_MIME):
            # files and anything else: ignored here, so Qt offers them to the main window
            self.hint.clear()
            event.ignore()
            return True
        # a copy, never a move: the browser must keep its item
        event.setDropAction(Qt.DropAction.CopyAction)
        event.accept()
        if kind == QEvent.Type.Drop:
            self.hint.clear()
            self._drop(widget, event.mimeData())
        else:  # each move: the grid may have been laid out anew since the drag entered
            self.hint.over(self.grid, widget)
        return True

    def _drop(self, widget: ViewportWidget, data: QMimeData) -> None:
        try:
            uid = series_uid_of(data)
            if uid is None:
                return
            self.drop(widget, uid)
        except SeriesDropError as exc:
            self.refused.emit(str(exc))

    def drop(self, widget: ViewportWidget, series_uid: str) -> int:
        """Show ``series_uid`` in the cell of ``widget`` and make that cell active; its index.

        Raises SeriesDropError naming the series when the open studies do not hold it (closed
        since the drag began) or the widget is no longer a cell of the grid."""
        cells = self.grid.widgets
        index = next((i for i, w in enumerate(cells) if w is widget), None)
        if index is None or index >= len(self.grid.model):
            raise SeriesDropError(
                f"series '{series_uid}' was dropped on a viewport no longer in the layout"
            )
        state = self.grid.model.cells[index].state
        try:
            state.find_series(series_uid)
        except KeyError as exc:
            raise SeriesDropError(
                f"dropped series '{series_uid}' cannot be shown: it is not in the open studies"
            ) from exc
        self.grid.model.set_active(index)
        if self.grid.model.cells[index].series_uid != series_uid:
            self.grid.open_series(series_uid)  # into the active cell: the one dropped on
        self.dropped.emit(index, series_uid)
        return index


def install_series_drop(window: MainWindow) -> SeriesDrop:
    """Series drops onto ``window.grid``'s viewports, and the study browser following the
    active viewport (its highlight, and a click on the series another viewport shows opens
    it in the active one); a refused drop is said in the status bar. Call once, after the
    window built its grid and browser (MainWindow.__init__ or desktop.app)."""
    window.browser.follow_layout(window.reading)
    drop = SeriesDrop(window.grid, window)
    drop.refused.connect(lambda text: window.statusBar().showMessage(text, 10_000))
    return drop
