"""The image area: paints what ``core.viewer`` state says and turns mouse/keys into state edits.

It holds no display state of its own (napari's rule): window/level, zoom, pan, slice live in
``ViewerState.viewport``. The only cache is the last rendered QImage, keyed by what made it.
Mouse (radiology convention): left drag = current tool (window/level by default: horizontal
= width, vertical = level), right drag = zoom, middle drag = pan, wheel = slice.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import (
    QColor,
    QFont,
    QImage,
    QKeyEvent,
    QMouseEvent,
    QPainter,
    QPaintEvent,
    QPen,
    QTransform,
    QWheelEvent,
)
from PySide6.QtWidgets import QSizePolicy, QWidget

from core.imaging.model import Frame
from core.inference.heatmap import DEFAULT_FLOOR
from core.viewer import measure
from core.viewer.measure import Measurement
from core.viewer.orientation import edge_labels
from core.viewer.overlay import corner_text
from core.viewer.state import ViewerState
from core.viewer.transform import (
    ViewGeometry,
    fit_zoom,
    image_to_screen,
    screen_to_image,
    view_matrix,
)

#: The viewport's own tools; desktop.annotation_layer adds the annotation tools (their names are
#: ``core.annotations.model.Kind`` values), which it handles through its event filter.
Tool = Literal["window", "pan", "zoom", "length", "roi"] | str
#: Paints over the current slice's own image, in widget pixels (desktop.annotation_layer).
Overlay = Callable[[QPainter, Frame, ViewGeometry], None]
OVERLAY_COLOUR = QColor("#e8e6a0")
MEASURE_COLOUR = QColor("#4fd1c5")


def to_qimage(pixels: np.ndarray[Any, Any]) -> QImage:
    """Wrap an 8-bit (H, W) or (H, W, 3) array as a QImage that owns a copy of the data."""
    arr = np.ascontiguousarray(pixels)
    h, w = arr.shape[:2]
    if arr.ndim == 2:
        img = QImage(arr.data, w, h, arr.strides[0], QImage.Format.Format_Grayscale8)
    else:
        img = QImage(arr.data, w, h, arr.strides[0], QImage.Format.Format_RGB888)
    return img.copy()  # detach from the numpy buffer


#: Keys that step through slices (or along a reformat's normal), and by how many.
SLICE_KEYS: dict[Qt.Key, int] = {
    Qt.Key.Key_Up: -1,
    Qt.Key.Key_Left: -1,
    Qt.Key.Key_Down: 1,
    Qt.Key.Key_Right: 1,
    Qt.Key.Key_PageUp: -10,
    Qt.Key.Key_PageDown: 10,
}


def drag_start(mode: str, at: QPointF, vp: Any, zoom: float) -> dict[str, Any]:
    """What a mouse drag starts from (its tool, where, the window, zoom and pan then): the
    acquired viewport and a reformatted cell (desktop.mpr_cell) drag alike."""
    return {
        "mode": mode,
        "start": at,
        "center": vp.window_center,
        "width": vp.window_width,
        "zoom": zoom,
        "pan": vp.pan,
    }


def drag_view(d: dict[str, Any], vp: Any, dx: float, dy: float) -> bool:
    """Window/level, zoom or pan by a drag of (dx, dy) screen pixels from ``d`` (drag_start);
    False when the drag is another tool's (a measurement)."""
    mode = d["mode"]
    if mode == "window":
        # sensitivity scales with the starting width, so narrow windows stay controllable
        step = max(d["width"], 10.0) / 300.0
        vp.set_window(d["center"] + dy * step, d["width"] + dx * step)
    elif mode == "zoom":
        factor = float(np.exp(-dy / 200.0))
        vp.update({"zoom": min(max(d["zoom"] * factor, 1 / 64), 64.0), "fit": False})
    elif mode == "pan":
        vp.pan = (d["pan"][0] + dx, d["pan"][1] + dy)
    else:
        return False
    return True


class ViewportWidget(QWidget):
    painted = Signal(int)  # slice index painted with its own (not a neighbour's) frame

    def __init__(self, state: ViewerState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.tool: Tool = "window"
        self.setObjectName("viewport")
        self.setMinimumSize(320, 240)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setMouseTracking(True)
        self.setAutoFillBackground(False)
        self._cache_key: tuple[Any, ...] | None = None
        self._cache_img: QImage | None = None
        self._drag: dict[str, Any] | None = None
        self.status_text = ""  # pixel value under the mouse, shown by the main window
        # AI heatmaps of the current series: slice index -> (rows, cols) uint8 heat (0..255)
        self.heatmaps: dict[int, np.ndarray[Any, Any]] = {}
        self.heatmap_visible = True
        self.heatmap_opacity = 0.5
        self.heatmap_floor = DEFAULT_FLOOR  # heat at or below it is not coloured
        self.heatmap_painted: int | None = None  # slice whose heatmap the last paint drew
        self.heatmap_cut = 0.0  # heat at or below which the last drawn map is not coloured
        self._heat_key: tuple[Any, ...] | None = None
        self._heat_img: QImage | None = None
        self.overlays: list[Overlay] = []
        self.overlays_painted = 0  # overlays run by the last paint of an own frame (tests)
        # the state outlives a grid cell's widget: each connection goes when the widget does
        from desktop.grid_cells import tie

        tie(self, state.viewport.events, self._on_viewport_event)
        tie(self, state.frame_loaded, self._on_frame_loaded)
        tie(self, state.series_changed, self._on_series_changed)
        tie(self, state.measurements_changed, self._repaint)
        tie(self, state.hide_phi_changed, self._repaint)

    def _repaint(self, *_: Any) -> None:
        self.update()

    # --- model events --------------------------------------------------------------------
    def _on_viewport_event(self, *_: Any) -> None:
        self.update()

    def _on_frame_loaded(self, index: int) -> None:
        # repaint only when it changes what is shown; the main window refreshes the
        # "Loading n/N" overlay line at a few Hz (a repaint per slice would stall the loop)
        st = self.state
        if index == st.viewport.slice_index or st.loaded_count in (1, st.slice_count):
            self.update()

    def _on_series_changed(self, _series: object) -> None:
        self._cache_key = None
        self._cache_img = None
        self.clear_heatmaps()

    # --- AI heatmap overlay ----------------------------------------------------------------
    def set_heatmaps(self, maps: dict[int, np.ndarray[Any, Any]]) -> None:
        """Add/replace heatmaps per slice index ((rows, cols) uint8, 0..255 = cold..hot)."""
        self.heatmaps.update(maps)
        self.update()

    def clear_heatmaps(self) -> None:
        self.heatmaps = {}
        self._heat_key = self._heat_img = None
        self.update()

    def set_heatmap_visible(self, visible: bool) -> None:
        self.heatmap_visible = visible
        self.update()

    def set_heatmap_opacity(self, opacity: float) -> None:
        self.heatmap_opacity = min(max(opacity, 0.0), 1.0)
        self.update()

    def set_heatmap_floor(self, floor: float) -> None:
        from core.inference.heatmap import check_floor

        self.heatmap_floor = check_floor(floor)
        self.update()

    def _heat_image(self, heat: np.ndarray[Any, Any]) -> QImage:
        from core.inference.heatmap import colormap, map_cut, overlay_alpha

        key = (id(heat), self.heatmap_opacity, self.heatmap_floor)
        if key != self._heat_key or self._heat_img is None:
            values = heat.astype(np.float32) / 255.0
            rgba = np.empty((*heat.shape, 4), dtype=np.uint8)
            rgba[..., :3] = colormap(values)
            # transparent up to the map's cut (the floor, raised so that at most the hottest
            # tenth is coloured), then opacity grows with the heat (as in the export)
            self.heatmap_cut = map_cut(heat, self.heatmap_floor)
            alpha = overlay_alpha(values, self.heatmap_opacity, self.heatmap_cut)
            rgba[..., 3] = np.round(alpha * 255.0)
            h, w = heat.shape
            img = QImage(rgba.data, w, h, rgba.strides[0], QImage.Format.Format_RGBA8888)
            self._heat_img = img.copy()
            self._heat_key = key
        return self._heat_img

    # --- geometry --------------------------------------------------------------------------
    def shown_frame(self) -> tuple[Frame | None, bool]:
        """The frame to paint and whether it is the current slice's own frame."""
        frame = self.state.current_frame()
        if frame is not None:
            return frame, True
        if self.state.current_failure() is not None:
            return None, False  # never another slice's pixels in place of a broken one
        return self.state.nearest_loaded(self.state.viewport.slice_index), False

    def effective_zoom(self, frame: Frame | None = None) -> float:
        vp = self.state.viewport
        if not vp.fit:
            return vp.zoom
        frame = frame if frame is not None else self.shown_frame()[0]
        if frame is None:
            return vp.zoom
        rows, cols = frame.shape
        return fit_zoom((cols, rows), (self.width(), self.height()), vp.rotation)

    def geometry_for(self, frame: Frame) -> ViewGeometry:
        vp = self.state.viewport
        rows, cols = frame.shape
        return ViewGeometry(
            image_size=(cols, rows),
            view_size=(self.width(), self.height()),
            zoom=self.effective_zoom(frame),
            pan=vp.pan,
            rotation=vp.rotation,
            flip_h=vp.flip_h,
            flip_v=vp.flip_v,
        )

    def view_geometry(self) -> ViewGeometry | None:
        frame = self.shown_frame()[0]
        return self.geometry_for(frame) if frame is not None else None

    def to_image(self, pos: QPointF) -> tuple[float, float] | None:
        g = self.view_geometry()
        return screen_to_image(g, (pos.x(), pos.y())) if g is not None else None

    # --- painting --------------------------------------------------------------------------
    def _image(self, frame: Frame, index: int) -> QImage:
        from core.imaging.display import render

        vp = self.state.viewport
        key = (id(frame), index, vp.window_center, vp.window_width, vp.invert)
        if key != self._cache_key or self._cache_img is None:
            window = None if frame.is_color else (vp.window_center, vp.window_width)
            invert = frame.invert != vp.invert
            self._cache_img = to_qimage(render(frame, window=window, invert=invert))
            self._cache_key = key
        return self._cache_img

    def paintEvent(self, event: QPaintEvent) -> None:
        p = QPainter(self)
        p.fillRect(self.rect(), Qt.GlobalColor.black)
        frame, own = self.shown_frame()
        index = self.state.viewport.slice_index
        if frame is not None:
            g = self.geometry_for(frame)
            m = view_matrix(g)
            p.save()
            p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, g.zoom < 4)
            p.setTransform(QTransform(m[0, 0], m[1, 0], m[0, 1], m[1, 1], m[0, 2], m[1, 2]))
            p.drawImage(QPointF(0, 0), self._image(frame, index))
            heat = self.heatmaps.get(index) if own and self.heatmap_visible else None
            self.heatmap_painted = None
            if heat is not None and heat.shape == frame.shape:
                p.drawImage(QPointF(0, 0), self._heat_image(heat))
                self.heatmap_painted = index
            p.restore()
            if own:
                self._paint_measurements(p, frame, g)
                for overlay in self.overlays:
                    overlay(p, frame, g)
                self.overlays_painted = len(self.overlays)
            self._paint_orientation(p, g)
        self._paint_overlay(p, frame)
        p.end()
        if frame is not None and own:
            self.painted.emit(index)
            self.state.frame_shown.emit(index)

    def _paint_measurements(self, p: QPainter, frame: Frame, g: ViewGeometry) -> None:
        p.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        index = self.state.viewport.slice_index
        # a measurement made in a reformatted plane (m.plane) is drawn by desktop.mpr_cell only
        items = [m for m in self.state.measurements_on_slice(index) if m.plane is None]
        if self._drag and self._drag.get("measure") is not None:
            items.append(self._drag["measure"])
        for m in items:
            self._paint_measurement(p, frame, g, m)

    def _paint_measurement(
        self, p: QPainter, frame: Frame, g: ViewGeometry, m: Measurement
    ) -> None:
        a = QPointF(*image_to_screen(g, m.p0))
        b = QPointF(*image_to_screen(g, m.p1))
        p.setPen(QPen(MEASURE_COLOUR, 1.5))
        if m.kind == "length":
            p.drawLine(a, b)
            for pt in (a, b):
                p.drawEllipse(pt, 3, 3)
            label = measure.length(m.p0, m.p1, frame.pixel_spacing).label()
        else:
            p.drawRect(QRectF(a, b).normalized())
            stats = measure.roi_stats(frame.values, m.p0, m.p1, frame.pixel_spacing, frame.units)
            label = stats.label() if stats is not None else "empty ROI"
        anchor = QPointF(max(a.x(), b.x()) + 8, max(a.y(), b.y()) + 4)
        self._text_block(p, anchor, label.split("\n"), MEASURE_COLOUR)

    def _text_block(self, p: QPainter, at: QPointF, lines: list[str], colour: QColor) -> None:
        fm = p.fontMetrics()
        y = at.y()
        for line in lines:
            y += fm.height()
            p.setPen(QColor(0, 0, 0, 200))
            p.drawText(QPointF(at.x() + 1, y + 1), line)
            p.setPen(colour)
            p.drawText(QPointF(at.x(), y), line)

    def _paint_orientation(self, p: QPainter, g: ViewGeometry) -> None:
        ref = self.state.current_slice()
        if ref is None:
            return
        labels = edge_labels(ref.instance.image_orientation, g)
        fm = p.fontMetrics()
        w, h, m = self.width(), self.height(), 8
        spots = {
            "left": QPointF(m, h / 2),
            "right": QPointF(w - m - fm.horizontalAdvance(labels["right"]), h / 2),
            "top": QPointF(w / 2 - fm.horizontalAdvance(labels["top"]) / 2, m + fm.ascent()),
            "bottom": QPointF(
                w / 2 - fm.horizontalAdvance(labels["bottom"]) / 2,
                h - m - fm.descent() - fm.height(),
            ),
        }
        for edge, at in spots.items():
            if labels[edge]:
                self._text_block(
                    p, QPointF(at.x(), at.y() - fm.height()), [labels[edge]], OVERLAY_COLOUR
                )

    def _paint_overlay(self, p: QPainter, frame: Frame | None) -> None:
        font = QFont(self.font())
        font.setPointSizeF(max(font.pointSizeF(), 9.0))
        p.setFont(font)
        fm = p.fontMetrics()
        corners = corner_text(self.state, self.effective_zoom(frame))
        margin, lh = 8, fm.height()
        w, h = self.width(), self.height()
        self._text_block(p, QPointF(margin, margin - lh + 2), corners.top_left, OVERLAY_COLOUR)
        for i, line in enumerate(corners.top_right):
            x = w - margin - fm.horizontalAdvance(line)
            self._text_block(p, QPointF(x, margin - lh + 2 + i * lh), [line], OVERLAY_COLOUR)
        n = len(corners.bottom_left)
        self._text_block(
            p, QPointF(margin, h - margin - (n + 1) * lh + 4), corners.bottom_left, OVERLAY_COLOUR
        )
        n = len(corners.bottom_right)
        for i, line in enumerate(corners.bottom_right):
            x = w - margin - fm.horizontalAdvance(line)
            self._text_block(
                p, QPointF(x, h - margin - (n + 1 - i) * lh + 4), [line], OVERLAY_COLOUR
            )
        if self.state.series is None:
            p.setPen(QColor("#6b7078"))
            p.drawText(
                self.rect(),
                Qt.AlignmentFlag.AlignCenter,
                "Open a file, folder or zip (Ctrl+O) or drop it here",
            )
        failure = self.state.current_failure()
        if failure is not None and self.state.series is not None:
            p.setPen(QColor("#ff7b72"))
            box = self.rect().adjusted(40, 0, -40, 0)
            p.drawText(
                box,
                Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap,
                f"Image {self.state.viewport.slice_index + 1} cannot be displayed:\n{failure}",
            )

    # --- mouse and keys --------------------------------------------------------------------
    def mousePressEvent(self, event: QMouseEvent) -> None:
        self.setFocus()
        btn = event.button()
        vp = self.state.viewport
        mode: str | None = None
        if btn == Qt.MouseButton.LeftButton:
            mode = self.tool
        elif btn == Qt.MouseButton.RightButton:
            mode = "zoom"
        elif btn == Qt.MouseButton.MiddleButton:
            mode = "pan"
        if mode is None:
            return
        if mode == "window" and event.modifiers() & Qt.KeyboardModifier.ControlModifier:
            mode = "region"  # Ctrl + drag with W/L: the window of the rectangle drawn
        self._drag = drag_start(mode, event.position(), vp, self.effective_zoom())
        if mode in ("length", "roi", "region"):
            p0 = self.to_image(event.position())
            if p0 is None or self.state.current_frame() is None:
                self._drag = None
                return
            kind = "roi" if mode == "region" else mode  # drawn like an ROI rectangle
            self._drag["measure"] = Measurement(kind, vp.slice_index, p0, p0)  # type: ignore[arg-type]
        event.accept()

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        pos = event.position()
        self._update_status(pos)
        d = self._drag
        if d is None:
            return
        dx = pos.x() - d["start"].x()
        dy = pos.y() - d["start"].y()
        vp = self.state.viewport
        mode = d["mode"]
        if not drag_view(d, vp, dx, dy) and mode in ("length", "roi", "region"):
            p1 = self.to_image(pos)
            if p1 is not None:
                d["measure"].p1 = p1
                self.update()

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        d, self._drag = self._drag, None
        if d is not None and d["mode"] == "region":
            end = self.to_image(event.position())
            if end is not None:
                d["measure"].p1 = end
            if d["measure"].p0 != d["measure"].p1:  # a Ctrl+click alone changes nothing
                self._window_from_region(d["measure"])
            self.update()
        elif d is not None and d.get("measure") is not None:
            m: Measurement = d["measure"]
            if m.p0 != m.p1:
                self.state.add_measurement(m)
            else:
                self.update()

    def _window_from_region(self, m: Measurement) -> None:
        from core.viewer.presets import PresetError

        (x0, y0), (x1, y1) = m.p0, m.p1
        rows = (int(np.floor(min(y0, y1))), int(np.ceil(max(y0, y1))))
        cols = (int(np.floor(min(x0, x1))), int(np.ceil(max(x0, x1))))
        try:
            self.state.window_from_region(rows, cols)
        except PresetError as exc:
            self.status_text = str(exc)
        self.update()

    def wheelEvent(self, event: QWheelEvent) -> None:
        dy = event.angleDelta().y()
        if dy == 0:  # horizontal scrolling: not a slice change
            event.ignore()
            return
        steps = int(dy / 120) or (1 if dy > 0 else -1)  # fine-grained touchpads: one step
        if event.modifiers() & Qt.KeyboardModifier.ControlModifier:
            self.state.viewport.update(
                {"zoom": min(max(self.effective_zoom() * 1.15**steps, 1 / 64), 64.0), "fit": False}
            )
        else:
            self.state.step_slice(-steps)
        event.accept()

    def keyPressEvent(self, event: QKeyEvent) -> None:
        key = Qt.Key(event.key())
        if key in SLICE_KEYS:
            self.state.step_slice(SLICE_KEYS[key])
        elif key == Qt.Key.Key_Home:
            self.state.set_slice(0)
        elif key == Qt.Key.Key_End:
            self.state.set_slice(self.state.slice_count - 1)
        else:
            super().keyPressEvent(event)
            return
        event.accept()

    def _update_status(self, pos: QPointF) -> None:
        frame = self.state.current_frame()
        pt = self.to_image(pos)
        if frame is None or pt is None:
            return
        col, row = int(np.floor(pt[0])), int(np.floor(pt[1]))
        rows, cols = frame.shape
        if 0 <= col < cols and 0 <= row < rows:
            v = frame.values[row, col]
            value = f"{float(v):.0f} {frame.units}".strip() if not frame.is_color else str(list(v))
            self.status_text = f"x {col}  y {row}  value {value}"
        else:
            self.status_text = ""
