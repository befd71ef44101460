"""Marks on a slice slider: the slices an AI run flagged, drawn over the slider's own paint
through an event filter, so any QSlider (the main window's) gets them without a subclass."""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, QRect
from PySide6.QtGui import QColor, QPainter, QPaintEvent
from PySide6.QtWidgets import QSlider, QStyle, QStyleOptionSlider

FINDING_COLOUR = QColor("#ff5252")
OOD_COLOUR = QColor("#ffb300")


class SliderMarks(QObject):
    """``set_marks({slice index: colour})`` draws a short tick at each index on ``slider``."""

    def __init__(self, slider: QSlider) -> None:
        super().__init__(slider)
        self.slider = slider
        self.marks: dict[int, QColor] = {}
        slider.installEventFilter(self)

    def set_marks(self, marks: dict[int, QColor]) -> None:
        self.marks = dict(marks)
        self.slider.update()

    def clear(self) -> None:
        self.set_marks({})

    def x_of(self, index: int) -> int:
        """The x (slider pixels) of the handle's centre when the slider is at ``index``."""
        s = self.slider
        opt = QStyleOptionSlider()
        s.initStyleOption(opt)
        style = s.style()
        handle = style.subControlRect(
            QStyle.ComplexControl.CC_Slider, opt, QStyle.SubControl.SC_SliderHandle, s
        )
        groove = style.subControlRect(
            QStyle.ComplexControl.CC_Slider, opt, QStyle.SubControl.SC_SliderGroove, s
        )
        span = max(groove.width() - handle.width(), 1)
        pos = QStyle.sliderPositionFromValue(s.minimum(), s.maximum(), index, span, opt.upsideDown)
        return int(groove.left() + pos + handle.width() // 2)

    def mark_rects(self) -> dict[int, QRect]:
        h = self.slider.height()
        return {i: QRect(self.x_of(i) - 1, h - 7, 3, 6) for i in self.marks}

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self.slider and event.type() == QEvent.Type.Paint and self.marks:
            assert isinstance(event, QPaintEvent)
            QSlider.paintEvent(self.slider, event)  # the slider first, the marks over it
            p = QPainter(self.slider)
            for index, rect in self.mark_rects().items():
                if self.slider.minimum() <= index <= self.slider.maximum():
                    p.fillRect(rect, self.marks[index])
            p.end()
            return True
        return False
