"""The heatmap's colour bar: the overlay's colours against heat values 0..1 with tick labels,
the part below the cut drawn as a checkerboard (nothing is coloured there), and the cut's
value marked. Painted from the same ``colormap`` the overlay and the PNG export use.

The cut is the floor, raised for the shown map where its hottest tenth starts higher
(core.inference.heatmap.cut): the bar says where the image in front of the reader is coloured.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QRect
from PySide6.QtGui import QColor, QImage, QPainter, QPaintEvent, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

from core.inference.heatmap import DEFAULT_FLOOR, colormap, overlay_alpha

TICKS = (0.0, 0.25, 0.5, 0.75, 1.0)
LABEL_COLOUR = QColor("#c9ccd1")
FLOOR_COLOUR = QColor("#ffb300")
#: What the values are (said under the bar: a reader takes 0..1 for a probability otherwise).
CAPTION = "Grad-CAM relevance (0–1 of the map's peak), not a probability"


def tick_text(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".") if value not in (0.0, 1.0) else f"{value:.0f}"


class HeatmapBar(QWidget):
    """Cold (left) to hot (right); ``labels()`` are the texts drawn under it (tests read them).

    ``floor``: the floor set; ``cut``: where the shown map's colouring starts (None: no map
    shown, the floor is drawn)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("heatmapBar")
        self.floor = DEFAULT_FLOOR
        self.cut: float | None = None
        self.setMinimumSize(160, 36)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self._tip()

    @property
    def start(self) -> float:
        """The heat from which the bar is coloured."""
        return self.floor if self.cut is None else self.cut

    def set_floor(self, floor: float) -> None:
        self.floor = floor
        self._tip()
        self.update()

    def set_cut(self, cut: float | None) -> None:
        self.cut = cut
        self._tip()
        self.update()

    def _tip(self) -> None:
        if self.start == 0.0:
            rule = "the floor is off: the whole map is coloured"
        elif self.cut is not None and self.cut > self.floor:
            rule = (
                f"below {tick_text(round(self.cut, 2))} nothing is coloured (the floor "
                f"{tick_text(self.floor)}, raised to this map's hottest tenth)"
            )
        else:
            rule = f"below {tick_text(round(self.start, 2))} nothing is coloured"
        self.setToolTip(f"{CAPTION}; 0 = none, 1 = the map's peak; {rule}")

    def labels(self) -> list[str]:
        return [tick_text(t) for t in TICKS]

    def bar_rect(self) -> QRect:
        margin = 8
        return QRect(margin, 2, max(self.width() - 2 * margin, 10), 14)

    def bar_image(self, width: int, height: int) -> QImage:
        """The bar as the overlay draws it at full opacity over a checkerboard (RGB)."""
        values = np.linspace(0.0, 1.0, width, dtype=np.float32)
        checker = np.where(
            ((np.arange(width)[None, :] // 4) + (np.arange(height)[:, None] // 4)) % 2, 90, 50
        ).astype(np.float32)
        alpha = overlay_alpha(values, 1.0, self.start)[None, :, None]
        colours = colormap(values).astype(np.float32)[None, :, :]
        rgb = checker[..., None] * (1 - alpha) + colours * alpha
        rgb = np.ascontiguousarray(np.round(rgb).astype(np.uint8))
        img = QImage(rgb.data, width, height, rgb.strides[0], QImage.Format.Format_RGB888)
        return img.copy()

    def paintEvent(self, _event: QPaintEvent) -> None:
        p = QPainter(self)
        bar = self.bar_rect()
        p.drawImage(bar.topLeft(), self.bar_image(bar.width(), bar.height()))
        p.setPen(QPen(LABEL_COLOUR, 1))
        p.drawRect(bar.adjusted(0, 0, -1, -1))
        fm = p.fontMetrics()
        for value in TICKS:
            x = bar.left() + round(value * (bar.width() - 1))
            p.drawLine(x, bar.bottom(), x, bar.bottom() + 3)
            text = tick_text(value)
            w = fm.horizontalAdvance(text)
            left = min(max(x - w // 2, 0), self.width() - w)
            p.drawText(left, bar.bottom() + 4 + fm.ascent(), text)
        x = bar.left() + round(self.start * (bar.width() - 1))
        p.setPen(QPen(FLOOR_COLOUR, 2))
        p.drawLine(x, bar.top() - 1, x, bar.bottom() + 1)
        p.end()
