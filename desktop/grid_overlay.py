"""What the viewport grid draws over each cell and the link dialog, kept apart from the grid.

``ReferenceOverlay`` lies over one viewport, above the ``MprCell`` when a reformat covers it, and
draws where the other visible viewports' current planes cut this one (``reference_line``; plus
their first and last planes on demand) and the crosshair point where this viewport's plane
holds it within half a slice. An acquired viewport maps image coordinates through its
``view_geometry``; a reformat through ``MprCell.patient_to_widget``, so the lines follow its zoom
and pan. ``LinkDialog`` edits one viewport's membership of the links and its offsets.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from PySide6.QtCore import QEvent, QObject, QPointF, Qt
from PySide6.QtGui import QColor, QPainter, QPaintEvent, QPen
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QSpinBox,
    QWidget,
)

from core.viewer.linking import LinkGroup
from core.viewer.reference_lines import ImagePlane, Point2, first_last_lines, reference_line
from core.viewer.state import ViewerState
from core.viewer.transform import image_to_screen
from desktop.mpr_cell import MprCell
from desktop.viewport_widget import ViewportWidget

if TYPE_CHECKING:
    from desktop.viewport_grid import ViewportGrid

REFERENCE = QColor(255, 200, 40, 200)
CROSSHAIR = QColor(80, 220, 120, 230)


def current_plane(widget: ViewportWidget, links: LinkGroup | None = None) -> ImagePlane | None:
    """The plane a viewport shows now: its reformat's when a reformat covers it (None while
    that is building or refused), else its current slice's (from the link group's cached
    planes when it is a member: every repaint of every overlay asks)."""
    mpr = mpr_of(widget)
    if mpr is not None:
        plane = mpr.current_plane()
        return ImagePlane.from_reformat(plane, _frame_of_reference(widget)) if plane else None
    if links is not None and widget.state in links:
        planes, i = links.planes(widget.state), widget.state.viewport.slice_index
        return planes[i] if 0 <= i < len(planes) else None
    ref = widget.state.current_slice()
    return ImagePlane.from_instance(ref.instance, ref.frame) if ref is not None else None


def mpr_of(widget: ViewportWidget) -> MprCell | None:
    """The reformat covering a viewport, if one does (a direct child, see ``MprCell``)."""
    for child in widget.children():
        if isinstance(child, MprCell) and child.isVisibleTo(widget):
            return child
    return None


def _frame_of_reference(widget: ViewportWidget) -> str:
    slices = widget.state.slices
    return (slices[0].instance.frame_of_reference_uid or "") if slices else ""


def _ends(widget: ViewportWidget, links: LinkGroup) -> list[ImagePlane | None]:
    """The first and last planes a viewport can scroll to: its reformat's, else its stack's."""
    mpr = mpr_of(widget)
    view = mpr.view if mpr is not None else None
    if view is None:
        return links.planes(widget.state).planes
    f = _frame_of_reference(widget)
    r = view.reformat
    return [ImagePlane.from_reformat(r.plane(i), f) for i in (0, r.count - 1)]


class ReferenceOverlay(QWidget):
    """Draws, over one viewport (acquired or reformatted), where the other visible viewports'
    planes cut it, and the crosshair point where this viewport's plane holds it."""

    def __init__(self, grid: ViewportGrid, viewport: ViewportWidget) -> None:
        super().__init__(viewport)
        self.grid, self.viewport = grid, viewport
        self.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self.setAttribute(Qt.WidgetAttribute.WA_NoSystemBackground)
        self.setGeometry(viewport.rect())
        viewport.installEventFilter(self)
        self.lines_drawn = 0  # by the last paint (tests)
        self.marker: QPointF | None = None  # where the last paint drew the crosshair (tests)
        self.show()

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:
        if obj is self.viewport and event.type() == QEvent.Type.Resize:
            self.setGeometry(self.viewport.rect())
        return False

    def _mapper(self, mine: ImagePlane) -> Callable[[Point2], QPointF | None] | None:
        """This plane's image coordinates -> this widget's pixels (None: not drawn yet)."""
        mpr = mpr_of(self.viewport)
        if mpr is not None:
            return lambda p: mpr.patient_to_widget(mine.to_patient(*p))
        g = self.viewport.view_geometry()
        if g is None:
            return None
        return lambda p: QPointF(*image_to_screen(g, p))

    def segments(self) -> list[tuple[QPointF, QPointF]]:
        """The reference lines in this widget's pixels (empty when there is nothing to cut)."""
        mine = current_plane(self.viewport, self.grid.links)
        to_widget = self._mapper(mine) if mine is not None else None
        if mine is None or to_widget is None or not self.grid.reference_lines:
            return []
        out = []
        for other in self.grid.visible_widgets():
            if other is self.viewport:
                continue
            plane = current_plane(other, self.grid.links)
            segs = [reference_line(mine, plane)] if plane is not None else []
            if self.grid.first_last:  # where the other viewport's planes begin and end
                segs += first_last_lines(mine, _ends(other, self.grid.links))
            for seg in segs:
                if seg is not None:
                    a, b = to_widget(seg[0]), to_widget(seg[1])
                    if a is not None and b is not None:
                        out.append((a, b))
        return out

    def crosshair(self) -> QPointF | None:
        """The crosshair point in this widget's pixels, when this viewport's plane holds it
        (same Frame of Reference, within half a slice)."""
        links, state = self.grid.links, self.viewport.state
        cross = links.crosshair
        if cross is None or state not in links or _frame_of_reference(self.viewport) == "":
            return None
        if cross.frame_of_reference != _frame_of_reference(self.viewport):
            return None
        mine = current_plane(self.viewport, self.grid.links)
        if mine is None or abs(mine.distance(cross.point)) > links.half_slice(state) + 1e-6:
            return None
        to_widget = self._mapper(mine)
        return to_widget(mine.to_image(cross.point)) if to_widget is not None else None

    def paintEvent(self, event: QPaintEvent) -> None:
        segments = self.segments()
        self.lines_drawn = len(segments)
        self.marker = self.crosshair()
        if not segments and self.marker is None:
            return
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        p.setPen(QPen(REFERENCE, 1.0, Qt.PenStyle.DashLine))
        for a, b in segments:
            p.drawLine(a, b)
        if self.marker is not None:  # a cross with a gap, so the point itself stays visible
            c, gap, arm = self.marker, 4.0, 14.0
            p.setPen(QPen(CROSSHAIR, 1.5))
            for dx, dy in ((1, 0), (-1, 0), (0, 1), (0, -1)):
                p.drawLine(c + QPointF(dx * gap, dy * gap), c + QPointF(dx * arm, dy * arm))
        p.end()


class LinkDialog(QDialog):
    """One viewport's link settings: in the links or not, and its offsets (mm where it links
    by anatomical position, slices where by index, such as a prior of another patient space)."""

    def __init__(self, links: LinkGroup, state: ViewerState, name: str, parent: QWidget) -> None:
        super().__init__(parent)
        self.links, self.state = links, state
        self.setWindowTitle(f"Links of {name}")
        mm, slices = links.offsets(state)
        self.linked = QCheckBox("Scroll, window and zoom with the other viewports", self)
        self.linked.setChecked(links.is_linked(state))
        self.mm = QDoubleSpinBox(self)
        self.mm.setRange(-2000.0, 2000.0)
        self.mm.setDecimals(1)
        self.mm.setSingleStep(0.5)
        self.mm.setSuffix(" mm")
        self.mm.setValue(mm)
        self.slices = QSpinBox(self)
        self.slices.setRange(-5000, 5000)
        self.slices.setSuffix(" slices")
        self.slices.setValue(slices)
        form = QFormLayout(self)
        form.addRow(self.linked)
        form.addRow("Offset, same patient space:", self.mm)
        form.addRow("Offset, other series (by index):", self.slices)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel, self
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)
        self.accepted.connect(self.apply)

    def apply(self) -> None:
        """Write the entries to the link group (OK does this)."""
        if self.state not in self.links:
            return  # the viewport was dropped from the layout while the dialog was open
        self.links.set_offset(self.state, mm=self.mm.value(), slices=self.slices.value())
        self.links.set_linked(self.state, self.linked.isChecked())
