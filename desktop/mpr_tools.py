"""What an MPR cell adds to a reformat: its slab/tilt control and measurements drawn in mm.

``SlabButton`` is the small per-cell control (top right of the cell): thin plane, MIP, MinIP or
average, the slab's thickness, and back from an oblique plane to the standard one. It writes to
the cell's ``MprView`` (core state) and shows what that holds; the keys do the same (see
``desktop.mpr_cell``). ``paint_measurements`` draws the measurements made in the plane shown,
mapped through patient mm (``MeasurePlane``), with lengths in mm and ROI statistics in modality
units computed on the image shown (a slab's values when a slab is on).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QAction, QActionGroup, QColor, QPainter, QPen
from PySide6.QtWidgets import QMenu, QToolButton, QWidget

from core.imaging.model import Frame
from core.viewer import measure
from core.viewer.measure import Measurement, Point
from core.viewer.mpr import SLAB_NAMES, SLAB_STEPS_MM, MprView
from core.viewer.reformat import Plane, Slab
from desktop.viewport_widget import MEASURE_COLOUR

if TYPE_CHECKING:
    from core.viewer.reformat import SlabKind

DEFAULT_SLAB_MM = 10.0


class SlabButton(QToolButton):
    """A cell's slab and tilt menu; ``view`` returns the cell's MprView (None while building),
    ``straighten`` takes an oblique plane back to the standard one (through the crosshair)."""

    def __init__(
        self,
        parent: QWidget,
        view: Callable[[], MprView | None],
        straighten: Callable[[], None],
    ) -> None:
        super().__init__(parent)
        self.setObjectName("mprSlabButton")
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        # the overlay's colour on a dark glass: never mistaken for (or hiding) image gray
        self.setStyleSheet(
            "QToolButton { color: #e8e6a0; background: rgba(20, 20, 10, 160);"
            " border: 1px solid #6e6a3a; border-radius: 3px; padding: 1px 6px; }"
            "QToolButton::menu-indicator { image: none; }"
        )
        self.setToolTip(
            "Thick slab and oblique plane: S cycles thin/MIP/MinIP/average, +/- the "
            "thickness; Ctrl+arrows tilt the plane 5°, Ctrl+0 straightens it"
        )
        self._view = view
        self.thickness = DEFAULT_SLAB_MM  # kept while the slab is off
        menu = QMenu(self)
        kinds = QActionGroup(menu)
        self.kind_actions: dict[str | None, QAction] = {}
        for kind, text in ((None, "Thin plane"), *SLAB_NAMES.items()):
            a = menu.addAction(text if kind is None else f"{text} slab")
            a.setCheckable(True)
            kinds.addAction(a)
            a.triggered.connect(lambda _on=False, k=kind: self.set_kind(k))
            self.kind_actions[kind] = a
        menu.addSeparator()
        sizes = QActionGroup(menu)
        self.thickness_actions: dict[float, QAction] = {}
        for mm in SLAB_STEPS_MM:
            a = menu.addAction(f"{mm:g} mm")
            a.setCheckable(True)
            sizes.addAction(a)
            a.triggered.connect(lambda _on=False, t=mm: self.set_thickness(t))
            self.thickness_actions[mm] = a
        menu.addSeparator()
        self.reset_action = menu.addAction("Straighten oblique plane")
        self.reset_action.triggered.connect(straighten)
        menu.aboutToShow.connect(self.sync)
        self.setMenu(menu)
        self.sync()

    def set_kind(self, kind: SlabKind | None) -> None:
        view = self._view()
        if view is None:
            return
        view.set_slab(None if kind is None else Slab(kind, self.thickness))

    def cycle(self) -> None:
        """Thin -> MIP -> MinIP -> average -> thin (the S key)."""
        view = self._view()
        order: list[SlabKind | None] = [None, "mip", "minip", "avg"]
        now = view.slab.kind if view is not None and view.slab is not None else None
        self.set_kind(order[(order.index(now) + 1) % len(order)])

    def set_thickness(self, mm: float) -> None:
        self.thickness = mm
        view = self._view()
        if view is not None and view.slab is not None:
            view.set_slab(Slab(view.slab.kind, mm))

    def sync(self) -> None:
        """Show what the view holds (the label, the checked entries)."""
        view = self._view()
        slab = view.slab if view is not None else None
        if slab is not None:
            self.thickness = slab.thickness_mm
        self.setText(view.slab_label() if view is not None and slab is not None else "Thin")
        self.kind_actions[slab.kind if slab is not None else None].setChecked(True)
        for mm, a in self.thickness_actions.items():
            a.setChecked(mm == self.thickness)
        self.reset_action.setEnabled(view is not None and view.is_oblique)
        self.setEnabled(view is not None)
        self.adjustSize()
        self.place()

    def place(self) -> None:
        """In the cell's top right corner (after a resize of the cell or of the label)."""
        parent = self.parentWidget()
        if parent is not None:
            self.move(parent.width() - self.width() - 6, 6)


def image_point(m: Measurement, point: Point, plane: Plane) -> Point:
    """A measurement's image point, made in ``m.plane``, in the image coordinates of ``plane``
    (the same plane, perhaps on another grid: an oblique plane anchored elsewhere)."""
    assert m.plane is not None
    row, col, _ = plane.to_pixel(m.plane.to_patient(point))
    return (col + 0.5, row + 0.5)


def paint_measurements(
    p: QPainter,
    items: Iterable[Measurement],
    plane: Plane,
    frame: Frame | None,
    to_screen: Callable[[Point], Point],
    extra: str = "",
) -> int:
    """Draw the measurements made in ``plane`` (others are left out); labels from ``frame``
    when it is the plane's current image. Returns how many were drawn (tests)."""
    p.setRenderHint(QPainter.RenderHint.Antialiasing, True)
    drawn = 0
    for m in items:
        if m.plane is None or not m.plane.shows(plane):
            continue
        q0, q1 = image_point(m, m.p0, plane), image_point(m, m.p1, plane)
        a, b = QPointF(*to_screen(q0)), QPointF(*to_screen(q1))
        p.setPen(QPen(MEASURE_COLOUR, 1.5))
        if m.kind == "length":
            p.drawLine(a, b)
            for pt in (a, b):
                p.drawEllipse(pt, 3, 3)
            label = measure.length(q0, q1, plane).label()
        else:
            p.drawRect(QRectF(a, b).normalized())
            stats = (
                measure.roi_stats(frame.values, q0, q1, plane, frame.units)
                if frame is not None
                else None
            )
            label = stats.label() if stats is not None else "empty ROI"
            if stats is not None and extra:
                label += f"\n({extra})"
        drawn += 1
        at = QPointF(max(a.x(), b.x()) + 8, max(a.y(), b.y()) + 4)
        fm = p.fontMetrics()
        y = at.y()
        for line in label.split("\n"):
            y += fm.height()
            p.setPen(QColor(0, 0, 0, 200))
            p.drawText(QPointF(at.x() + 1, y + 1), line)
            p.setPen(MEASURE_COLOUR)
            p.drawText(QPointF(at.x(), y), line)
    return drawn
