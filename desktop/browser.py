"""The study browser: patients > studies > series, with thumbnails, modality, date, count.

A view of ``ViewerState.index``; activating a series asks the controller to open it.
With hide-PHI on, patients show as "Patient 1, 2, ..." and dates are blanked.
A series row can be dragged into any viewport of the grid: the drag carries its UID under
``desktop.series_drop.SERIES_MIME`` (never file paths), always as a copy (the row stays).
Following the reading room's layout (``follow_layout``), the highlighted row and the "already
shown" check of a click are those of the active viewport, not of the first one.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from PySide6.QtCore import QMimeData, QSize, Qt, Signal
from PySide6.QtGui import QColor, QIcon, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QTreeWidget,
    QTreeWidgetItem,
    QWidget,
)

from core.imaging.model import Series, StudyIndex
from core.viewer.layout import Layout
from core.viewer.overlay import format_dicom_date
from core.viewer.state import ViewerState
from desktop.grid_cells import tie
from desktop.series_drop import SERIES_MIME, series_mime
from desktop.viewport_widget import to_qimage

UID_ROLE = Qt.ItemDataRole.UserRole
ICON = 64
NOT_DRAGGED = ~Qt.ItemFlag.ItemIsDragEnabled  # patients and studies: only series are dragged


class StudyBrowser(QTreeWidget):
    series_activated = Signal(str)  # series instance UID

    def __init__(self, state: ViewerState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer_state = state
        self.setObjectName("studyBrowser")
        self.setColumnCount(1)
        self.setHeaderHidden(True)
        self.setIconSize(QSize(ICON, ICON))
        self.setUniformRowHeights(False)
        self.setIndentation(10)
        self.header().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.setDragEnabled(True)  # a series into a viewport of the grid (series_drop)
        self.setDragDropMode(QAbstractItemView.DragDropMode.DragOnly)
        self.setDefaultDropAction(Qt.DropAction.CopyAction)
        self._thumbs: dict[str, QPixmap] = {}
        self._series_items: dict[str, QTreeWidgetItem] = {}
        self.layout_followed: Layout | None = None
        self.itemActivated.connect(self._on_activated)
        self.itemClicked.connect(self._on_activated)
        state.index_changed.connect(self.rebuild)
        state.hide_phi_changed.connect(lambda _h: self.rebuild(state.index))
        state.series_changed.connect(self._select_current)

    def rebuild(self, index: StudyIndex) -> None:
        hide = self.viewer_state.hide_phi
        self.clear()
        self._series_items = {}
        for n, patient in enumerate(index.patients.values(), start=1):
            shown = patient.name.replace("^", " ").strip() or "(no name)"
            name = f"Patient {n}" if hide else f"{shown}  [{patient.patient_id}]"
            p_item = QTreeWidgetItem([name])
            font = p_item.font(0)
            font.setBold(True)
            p_item.setFont(0, font)
            p_item.setFlags(p_item.flags() & NOT_DRAGGED)
            self.addTopLevelItem(p_item)
            for study in patient.studies.values():
                date = "" if hide else format_dicom_date(study.study_date)
                s_item = QTreeWidgetItem([f"{date}  {study.description or '(study)'}".strip()])
                s_item.setForeground(0, QColor("#aeb3bb"))
                s_item.setFlags(s_item.flags() & NOT_DRAGGED)
                p_item.addChild(s_item)
                for series in study.series.values():
                    num = series.series_number
                    number = f"Se {num} · " if num is not None else ""
                    desc = series.description or "(no description)"
                    text = (
                        f"{desc}\n{number}{series.modality or '?'} · "
                        f"{series.frame_count} image{'s' if series.frame_count != 1 else ''}"
                    )
                    item = QTreeWidgetItem([text])
                    item.setData(0, UID_ROLE, series.series_instance_uid)
                    item.setToolTip(0, text)
                    item.setSizeHint(0, QSize(0, ICON + 8))
                    thumb = self._thumbs.get(series.series_instance_uid)
                    if thumb is not None:
                        item.setIcon(0, QIcon(thumb))
                    s_item.addChild(item)
                    self._series_items[series.series_instance_uid] = item
        self.expandAll()
        self._select_current(self.viewer_state.series)

    # --- drag source ------------------------------------------------------------------------
    def supportedDropActions(self) -> Qt.DropAction:
        """Copy only: the item view removes a row whose drag ended as a move."""
        return Qt.DropAction.CopyAction

    def mimeTypes(self) -> list[str]:
        return [SERIES_MIME]

    def mimeData(self, items: Sequence[QTreeWidgetItem]) -> QMimeData:
        """The dragged series' UID (the first series row among ``items``)."""
        for item in items:
            uid = item.data(0, UID_ROLE)
            if uid:
                return series_mime(str(uid))
        return QMimeData()

    def set_thumbnail(self, series_uid: str, pixels: npt.NDArray[np.uint8]) -> None:
        pix = QPixmap.fromImage(to_qimage(pixels))
        self._thumbs[series_uid] = pix
        item = self._series_items.get(series_uid)
        if item is not None:
            item.setIcon(0, QIcon(pix))

    def has_thumbnail(self, series_uid: str) -> bool:
        return series_uid in self._thumbs

    def follow_layout(self, layout: Layout) -> None:
        """Highlight, and compare clicks with, the series of ``layout``'s active viewport."""
        self.layout_followed = layout
        tie(self, layout.active_changed, self._on_layout_changed)
        tie(self, layout.cell_changed, self._on_layout_changed)
        self._select_current(None)

    def _on_layout_changed(self, _index: int) -> None:
        self._select_current(None)

    def shown_series(self) -> Series | None:
        """The series of the viewport a click opens into (the active one)."""
        layout = self.layout_followed
        if layout is not None and layout.active < len(layout):
            return layout.active_state.series
        return self.viewer_state.series

    def _select_current(self, _series: object) -> None:
        uid = getattr(self.shown_series(), "series_instance_uid", None)
        item = self._series_items.get(uid) if uid else None
        if item is not None:
            self.blockSignals(True)
            self.setCurrentItem(item)
            self.blockSignals(False)

    def _on_activated(self, item: QTreeWidgetItem, _column: int = 0) -> None:
        uid = item.data(0, UID_ROLE)
        current = self.shown_series()
        if uid and (current is None or current.series_instance_uid != uid):
            self.series_activated.emit(uid)
