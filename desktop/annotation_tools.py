"""The annotation tools as drawn on screen: their names and keys, their shapes, hit tests.

Geometry lives in ``core.annotations`` (image pixels, (row, col)); this module only maps it to
widget pixels through a ``to_screen`` callable (zoom, pan, rotation, flips, or a reformat's
grid), paints it and says which part of it lies under the mouse. Outlines (ellipse, rectangle)
are drawn as polygons through that mapping so they stay right on a rotated view.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QBrush, QColor, QFontMetrics, QPainter, QPen, QPolygonF

from core.annotations.labels import Rect
from core.annotations.model import Kind, Point

ToScreen = Callable[[Point], tuple[float, float]]  # image (row, col) -> widget (x, y)

OWN_COLOUR = QColor("#4fd1c5")
OTHER_COLOUR = QColor("#f6ad55")  # another author's: read-only
FOREIGN_COLOUR = QColor("#b794f4")  # another system's GSPS / TID 1500
SELECTED_COLOUR = QColor("#faf089")
HANDLE_RADIUS = 4.0
HIT_TOLERANCE = 6.0  # widget pixels


@dataclass(frozen=True)
class ToolSpec:
    kind: Kind
    label: str
    key: str
    tip: str


#: Toolbar/menu entries and their keys (W, M, Z, L, R, I, H, V, F, S and digits are taken).
TOOLS: tuple[ToolSpec, ...] = (
    ToolSpec(Kind.ANGLE, "Angle", "A", "Angle: click arm, vertex, arm"),
    ToolSpec(Kind.COBB, "Cobb", "C", "Cobb angle: click four points (two lines)"),
    ToolSpec(Kind.ELLIPSE, "Ellipse", "E", "Ellipse ROI statistics (drag)"),
    ToolSpec(Kind.FREEHAND, "Freehand", "D", "Freehand ROI statistics (draw the outline)"),
    ToolSpec(Kind.PROBE, "Probe", "P", "Point probe: the value at a point (click)"),
    ToolSpec(Kind.ARROW, "Arrow", "Shift+A", "Arrow (drag from tail to head)"),
    ToolSpec(Kind.TEXT, "Text", "T", "Text label (click, type)"),
)

#: The viewport's tool names that draw annotations: the old Length and ROI tools included.
TOOL_KINDS: dict[str, Kind] = {"length": Kind.LENGTH, "roi": Kind.RECTANGLE} | {
    k.value: k for k in Kind
}

#: Drawn by press-drag-release (two points), by clicks (each press a point), or by one click.
DRAG_KINDS = frozenset({Kind.LENGTH, Kind.ARROW, Kind.ELLIPSE, Kind.RECTANGLE})
CLICK_KINDS = frozenset({Kind.ANGLE, Kind.COBB})
ONE_CLICK_KINDS = frozenset({Kind.PROBE, Kind.TEXT})


def outline(kind: Kind, points: Sequence[Point]) -> list[Point]:
    """The image points of the drawn shape: a closed ellipse or rectangle outline, else the
    points themselves."""
    if kind is Kind.RECTANGLE and len(points) == 2:
        (r0, c0), (r1, c1) = points
        return [(r0, c0), (r0, c1), (r1, c1), (r1, c0)]
    if kind is Kind.ELLIPSE and len(points) == 2:
        (r0, c0), (r1, c1) = points
        cr, cc, hr, hc = (r0 + r1) / 2, (c0 + c1) / 2, abs(r1 - r0) / 2, abs(c1 - c0) / 2
        return [
            (cr + hr * math.sin(t), cc + hc * math.cos(t))
            for t in (2 * math.pi * i / 48 for i in range(48))
        ]
    return list(points)


def closed(kind: Kind) -> bool:
    return kind in (Kind.RECTANGLE, Kind.ELLIPSE, Kind.FREEHAND)


def _seg_distance(p: tuple[float, float], a: tuple[float, float], b: tuple[float, float]) -> float:
    ax, ay = a
    bx, by = b
    dx, dy = bx - ax, by - ay
    n = dx * dx + dy * dy
    t = 0.0 if n == 0 else max(0.0, min(1.0, ((p[0] - ax) * dx + (p[1] - ay) * dy) / n))
    return math.hypot(p[0] - (ax + t * dx), p[1] - (ay + t * dy))


def _inside(p: tuple[float, float], poly: Sequence[tuple[float, float]]) -> bool:
    x, y = p
    found = False
    j = len(poly) - 1
    for i, (xi, yi) in enumerate(poly):
        xj, yj = poly[j]
        if (yi > y) != (yj > y) and x < (xj - xi) * (y - yi) / (yj - yi) + xi:
            found = not found
        j = i
    return found


def hit(
    kind: Kind, points: Sequence[Point], to_screen: ToScreen, pos: tuple[float, float]
) -> int | None:
    """What of the annotation lies under ``pos`` (widget pixels): the index of a handle (a
    point), -1 for its body (a line, an outline or inside a closed ROI), None for nothing.
    Freehand outlines have no handles: they are redrawn or moved whole."""
    screen = [to_screen(p) for p in points]
    if kind is not Kind.FREEHAND:
        for i, s in enumerate(screen):
            if math.hypot(s[0] - pos[0], s[1] - pos[1]) <= HIT_TOLERANCE:
                return i
    shape = [to_screen(p) for p in outline(kind, points)]
    if len(shape) == 1:
        return -1 if math.hypot(shape[0][0] - pos[0], shape[0][1] - pos[1]) <= 10 else None
    pairs = list(itertools.pairwise(shape))
    if closed(kind):
        pairs.append((shape[-1], shape[0]))
    if kind is Kind.COBB:
        pairs = [(shape[0], shape[1]), (shape[2], shape[3])]
    if any(_seg_distance(pos, a, b) <= HIT_TOLERANCE for a, b in pairs):
        return -1
    if closed(kind) and _inside(pos, shape):
        return -1
    return None


def paint_shape(
    p: QPainter,
    kind: Kind,
    points: Sequence[Point],
    to_screen: ToScreen,
    colour: QColor,
    selected: bool = False,
) -> None:
    """One annotation's graphic (no label), with its handles when selected."""
    p.setRenderHint(QPainter.RenderHint.Antialiasing, True)
    # 1 px lines take the raster engine's fast path: hundreds of outlines stay cheap to paint
    pen = QPen(SELECTED_COLOUR if selected else colour, 2.0 if selected else 1.0)
    p.setPen(pen)
    p.setBrush(Qt.BrushStyle.NoBrush)
    shape = [QPointF(*to_screen(q)) for q in outline(kind, points)]
    if kind is Kind.PROBE or len(shape) == 1:
        c = shape[0]
        p.drawLine(QPointF(c.x() - 6, c.y()), QPointF(c.x() + 6, c.y()))
        p.drawLine(QPointF(c.x(), c.y() - 6), QPointF(c.x(), c.y() + 6))
    elif kind is Kind.TEXT:
        pass
    elif closed(kind):
        p.drawPolygon(QPolygonF(shape))
    elif kind is Kind.COBB:
        p.drawLine(shape[0], shape[1])
        if len(shape) >= 4:
            p.drawLine(shape[2], shape[3])
        elif len(shape) == 3:
            p.drawEllipse(shape[2], 2, 2)
    else:
        p.drawPolyline(QPolygonF(shape))
    if kind is Kind.ARROW and len(shape) == 2:
        tail, head = shape
        angle = math.atan2(head.y() - tail.y(), head.x() - tail.x())
        for side in (-1, 1):
            a = angle + math.pi - side * 0.45
            p.drawLine(head, QPointF(head.x() + 12 * math.cos(a), head.y() + 12 * math.sin(a)))
    if selected and kind is not Kind.FREEHAND:
        p.setBrush(QBrush(SELECTED_COLOUR))
        for q in points:
            p.drawEllipse(QPointF(*to_screen(q)), HANDLE_RADIUS, HANDLE_RADIUS)
        p.setBrush(Qt.BrushStyle.NoBrush)


def label_size(fm: QFontMetrics, lines: Sequence[str]) -> tuple[float, float]:
    """(height, width) of a label block in widget pixels (placement needs it before drawing)."""
    width = max((fm.horizontalAdvance(line) for line in lines), default=0)
    return (float(fm.height() * max(len(lines), 1) + 4), float(width + 8))


def paint_label(
    p: QPainter, rect: Rect, lines: Sequence[str], colour: QColor, selected: bool = False
) -> None:
    """A label in its placed rectangle: a dark glass so it reads over any gray, a thin
    leader-free frame when selected."""
    box = QRectF(rect.left, rect.top, rect.width, rect.height)
    p.setPen(Qt.PenStyle.NoPen)
    p.setBrush(QColor(0, 0, 0, 150))
    p.drawRect(box)
    if selected:
        p.setPen(QPen(SELECTED_COLOUR, 1.0))
        p.setBrush(Qt.BrushStyle.NoBrush)
        p.drawRect(box)
    fm = p.fontMetrics()
    p.setPen(colour)
    y = rect.top + 2 + fm.ascent()
    for line in lines:
        p.drawText(QPointF(rect.left + 4, y), line)
        y += fm.height()
