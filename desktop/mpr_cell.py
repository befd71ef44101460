"""A grid cell's reformatted plane (coronal, sagittal, or axial of a non-axial series).

An ``MprCell`` lies over a ``ViewportWidget`` whose cell shows another plane than the acquired
one. Once every slice of the cell's series has settled it builds, in a ``JobRunner`` job (never
on the GUI thread), the series' one shared ``Volume`` (``core.viewer.mpr.SharedVolumes``) and
an ``MprView`` of the plane; meanwhile it says what it waits for. It paints ``view.frame()``
through ``core.imaging.display.render`` with the cell's own window (``state.viewport``), with
square pixels in mm (the image's aspect is the plane's size in mm), head at the top and the
patient's right on the left (``core.viewer.reformat``'s convention). A series whose geometry is
refused (gaps, irregular spacing, tilt) shows the refusal, naming the series and the cause,
never a distorted image.

Mouse and keys (as ``ViewportWidget``): wheel, arrows, PgUp/PgDn, Home/End step along the
plane's normal; left drag is the viewport's tool (window/level by default: the cell's window, so
linked window/level follows; zoom; pan), right drag zooms, middle drag pans, Ctrl+wheel zooms.
Zoom and pan are the cell's ``state.viewport`` zoom/pan/fit (so Fit, 1:1, Reset and linked
zoom/pan act on it); its rotation and flips are not applied (a reformat stays head-up). The grid's
event filter gets presses for the active cell and double-clicks for maximise (and Shift+click,
the crosshair). Measurements: the viewport's length and ROI tools draw in the plane, in mm and
modality units (the plane's square pixels), each recording its plane (``MeasurePlane``) in the
viewport state's measurement list, so it is drawn only where that plane is shown. Thick slabs:
S cycles thin/MIP/MinIP/average, +/- step the thickness (``SLAB_STEPS_MM``), or the cell's slab
button; the overlay says "MIP 10 mm". Oblique: Ctrl+Left/Right turn the plane 5° about its
vertical axis, Ctrl+Up/Down about its horizontal one, through the crosshair (the last ``goto``
point) when there is one; Ctrl+0 straightens it; the orientation letters follow the plane.

Work off the GUI thread: building the volume and view (a job); slabs and oblique planes are
sampled in jobs too, latest request wins (``desktop.mpr_render.PlaneImages``); a thin plane
along the voxel axes is sampled in the paint while that stays under 20 ms.

Public API for the grid (crosshair, reference lines, linked scrolling): ``current_plane``,
``widget_to_patient``, ``patient_to_widget``, ``goto``, and the signals ``plane_changed`` and
``view_changed`` (zoom, pan or size: where the plane lies in the widget).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
from PySide6.QtCore import QEvent, QObject, QPointF, QRectF, QSizeF, Qt, Signal
from PySide6.QtGui import (
    QColor,
    QImage,
    QKeyEvent,
    QMouseEvent,
    QPainter,
    QPaintEvent,
    QResizeEvent,
    QWheelEvent,
)
from PySide6.QtWidgets import QWidget

from core.imaging.model import Frame, Series, SliceRef
from core.viewer.measure import Measurement, MeasurePlane
from core.viewer.mpr import MprView, SharedVolumes
from core.viewer.reformat import Plane, PlaneName, Slab
from core.viewer.transform import ViewGeometry, fit_zoom, image_to_screen, screen_to_image
from desktop.mpr_render import PlaneImages
from desktop.mpr_tools import SlabButton, paint_measurements
from desktop.viewport_widget import (
    OVERLAY_COLOUR,
    SLICE_KEYS,
    ViewportWidget,
    drag_start,
    drag_view,
    to_qimage,
)

if TYPE_CHECKING:
    from desktop.workers import JobContext, JobRunner

# LPS axis -> the patient side it points to (+x left, +y posterior, +z head)
SIDES = (("R", "L"), ("A", "P"), ("F", "H"))
TILT_DEGREES = 5.0
TILT_KEYS: dict[Qt.Key, tuple[str, float]] = {  # Ctrl+arrow: (in-plane axis, degrees)
    Qt.Key.Key_Left: ("v", -TILT_DEGREES),
    Qt.Key.Key_Right: ("v", TILT_DEGREES),
    Qt.Key.Key_Up: ("u", TILT_DEGREES),
    Qt.Key.Key_Down: ("u", -TILT_DEGREES),
}


def side(direction: Any) -> str:
    """The patient side a direction points to most ('L', 'H', ...); two letters if oblique."""
    d = np.asarray(direction, dtype=np.float64)
    order = np.argsort(-np.abs(d))
    letters = [SIDES[int(a)][int(d[a] > 0)] for a in order[:2] if abs(d[a]) > 0.25]
    return "".join(letters)


def build_view(
    ctx: JobContext,
    volumes: SharedVolumes,
    series: Series,
    refs: list[SliceRef],
    frames: list[Frame | None],
    plane: PlaneName,
) -> MprView:
    """The worker's part: the shared volume (built once per series) and this cell's view."""
    view = MprView(volumes.get(series, refs, frames), plane)
    view.frame()  # the first image is sampled here, not in the first paint
    return view


class MprCell(QWidget):
    """Paints a reformatted plane over its ViewportWidget; see the module docstring."""

    plane_changed = Signal()  # another plane is shown (reference lines elsewhere follow it)
    view_changed = Signal()  # zoom, pan or the cell's size changed: where the plane is drawn
    status = Signal(str)  # the value under the mouse, or why an action did nothing (status bar)

    def __init__(
        self,
        viewport: ViewportWidget,
        plane: PlaneName,
        volumes: SharedVolumes,
        runner: JobRunner | None,
        released: Callable[[str], None] | None = None,
    ) -> None:
        super().__init__(viewport)
        self.setObjectName("mprCell")
        self.viewport, self.state = viewport, viewport.state
        self.plane_name: PlaneName = plane
        self.volumes, self.runner = volumes, runner
        self.released = released  # told a series uid this cell no longer needs a volume of
        self.view: MprView | None = None
        self.message = ""  # what the cell says instead of an image (building, refused)
        self.image_rect = QRectF()  # where the last paint drew the plane (tests)
        self.built_for: str | None = None  # series uid of the view or of the job under way
        self._generation = 0
        self._cache_key: tuple[Any, ...] | None = None
        self._cache_img: QImage | None = None
        self._drag: dict[str, Any] | None = None
        self.images = PlaneImages(runner, self.update, self._render_failed)
        self.pivot: np.ndarray | None = None  # the crosshair (last goto): oblique turns about it
        self.measurements_drawn = 0  # by the last paint (tests)
        # paint over the plane in widget pixels (desktop.annotation_layer): (painter, the
        # plane's image or None while it renders, the view geometry)
        self.overlays: list[Callable[[QPainter, Frame | None, ViewGeometry], None]] = []
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setMouseTracking(True)
        self.slab_button = SlabButton(self, lambda: self.view, self.straighten)
        self.setGeometry(viewport.rect())
        viewport.installEventFilter(self)
        self.state.series_changed.connect(self._on_series)
        self.state.frame_loaded.connect(self._on_frame)
        self.state.viewport.events.connect(self._on_viewport)
        self.state.measurements_changed.connect(self._on_viewport)
        for signal in self._geometry_signals():
            signal.connect(self._on_geometry)
        self.show()
        self.refresh()

    def detach(self) -> None:
        """Stop following the viewport's state (before the cell is deleted)."""
        self._generation += 1
        self.state.series_changed.disconnect(self._on_series)
        self.state.frame_loaded.disconnect(self._on_frame)
        self.state.viewport.events.disconnect(self._on_viewport)
        self.state.measurements_changed.disconnect(self._on_viewport)
        for signal in self._geometry_signals():
            signal.disconnect(self._on_geometry)
        self.viewport.removeEventFilter(self)
        self._set_view(None)

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:
        if obj is self.viewport and event.type() == QEvent.Type.Resize:
            self.setGeometry(self.viewport.rect())
            self.view_changed.emit()
        return False

    def _geometry_signals(self) -> list[Any]:
        events = self.state.viewport.events
        return [events.zoom, events.pan, events.fit]

    def _on_geometry(self, *_: Any) -> None:
        self.view_changed.emit()

    # --- public API: where the plane is on screen and in the patient ------------------------
    def current_plane(self) -> Plane | None:
        """The Plane now shown (None while building or refused)."""
        return self.view.plane() if self.view is not None else None

    def effective_zoom(self) -> float:
        """Screen pixels per plane pixel: the cell's zoom, or the fit zoom until one is set."""
        plane = self.current_plane()
        vp = self.state.viewport
        if plane is None or not vp.fit:
            return vp.zoom
        return fit_zoom((plane.cols, plane.rows), (self.width(), self.height()))

    def view_geometry(self) -> ViewGeometry | None:
        """The plane's image -> widget mapping: zoom and pan from the cell's viewport state,
        never its rotation or flips (a reformat stays head-up, patient's right on the left)."""
        plane = self.current_plane()
        if plane is None:
            return None
        return ViewGeometry(
            image_size=(plane.cols, plane.rows),
            view_size=(self.width(), self.height()),
            zoom=self.effective_zoom(),
            pan=self.state.viewport.pan,
        )

    def widget_to_patient(self, pos: QPointF) -> np.ndarray | None:
        """The patient point (LPS mm) under a widget position; None off the plane's image."""
        g, plane = self.view_geometry(), self.current_plane()
        if g is None or plane is None:
            return None
        x, y = screen_to_image(g, (pos.x(), pos.y()))
        if not (0.0 <= x <= plane.cols and 0.0 <= y <= plane.rows):
            return None
        return plane.to_patient(y - 0.5, x - 0.5)  # image coordinates: pixel centres at +0.5

    def patient_to_widget(self, point: Any) -> QPointF | None:
        """Where a patient point (LPS mm), projected onto the plane shown, lies in the widget
        (zoom and pan included); None while no plane is shown."""
        g, plane = self.view_geometry(), self.current_plane()
        if g is None or plane is None:
            return None
        row, col, _distance = plane.to_pixel(point)
        x, y = image_to_screen(g, (col + 0.5, row + 0.5))
        return QPointF(x, y)

    def goto(self, point: Any) -> None:
        """Move the plane (along its normal) to the one through a patient point; plane_changed
        fires when it moves (crosshair, linked scrolling)."""
        if self.view is not None:
            self.pivot = np.asarray(point, dtype=np.float64).reshape(3)
            self.view.goto(point)

    # --- slab and oblique ------------------------------------------------------------------
    def set_slab(self, slab: Slab | None) -> None:
        """A thick slab (MIP, MinIP, average over its thickness) or None for a thin plane."""
        if self.view is not None:
            self.view.set_slab(slab)

    def tilt(self, axis: str, degrees: float) -> None:
        """Turn the plane about its own horizontal ('u') or vertical ('v') axis, through the
        crosshair when there is one: an oblique plane."""
        view = self.view
        if view is None:
            return
        plane = view.plane()
        view.rotate(plane.u if axis == "u" else plane.v, degrees, through=self.pivot)

    def straighten(self) -> None:
        """Back from an oblique plane to the standard one, through the crosshair if any."""
        if self.view is not None:
            self.view.reset_oblique(self.pivot)

    # --- building ----------------------------------------------------------------------
    def set_plane(self, plane: PlaneName) -> None:
        self.plane_name = plane
        if self.view is not None:
            self.view.set_plane(plane, self.pivot)  # through the crosshair, else the centre
        self.update()

    def _on_series(self, _series: object) -> None:
        old, self.built_for = self.built_for, None
        self._set_view(None)
        if old is not None and self.released is not None:
            self.released(old)
        self.refresh()

    def _on_frame(self, _index: int) -> None:
        if self.view is None and self.built_for is None:
            st = self.state
            if st.settled_count >= st.slice_count:
                self.refresh()
            elif st.settled_count % 16 == 0:
                self._waiting()

    def _on_viewport(self, *_: Any) -> None:
        self.update()

    def _on_view(self) -> None:
        self.slab_button.sync()
        self.update()
        self.plane_changed.emit()

    def resizeEvent(self, event: QResizeEvent) -> None:
        self.slab_button.place()

    def _waiting(self) -> None:
        st = self.state
        self.message = (
            f"{self.plane_name.capitalize()} reformat: waiting for the series to load "
            f"({st.settled_count}/{st.slice_count})"
        )
        self.update()

    def refresh(self) -> None:
        """Build the view once the series has settled (in a job); say why not meanwhile."""
        st = self.state
        series = st.series
        if series is None:
            self.message = ""
            self.update()
            return
        if self.view is not None or self.built_for == series.series_instance_uid:
            return
        if st.settled_count < st.slice_count:
            self._waiting()
            return
        if st.failed:
            k = min(st.failed)
            self.message = (
                f"No {self.plane_name} reformat of series '{series.description or series.modality}'"
                f": image {k + 1} cannot be decoded ({st.failed[k]})"
            )
            self.update()
            return
        if self.runner is None:
            self.message = "Reformats need the window's background jobs"
            self.update()
            return
        self.built_for = series.series_instance_uid
        self._generation += 1
        generation = self._generation
        self.message = f"Building the {self.plane_name} reformat…"
        self.update()
        self.runner.start(
            "Reformat",
            build_view,
            self.volumes,
            series,
            list(st.slices),
            list(st.frames),
            self.plane_name,
            on_result=lambda view: self._built(generation, view),
            on_error=lambda exc: self._refused(generation, exc),
        )

    def _built(self, generation: int, view: MprView) -> None:
        if generation != self._generation:
            return
        if view.plane_name != self.plane_name:
            view.set_plane(self.plane_name)
        self._set_view(view)
        self.message = ""
        self.slab_button.sync()
        self.update()
        self.plane_changed.emit()

    def _refused(self, generation: int, exc: BaseException) -> None:
        if generation != self._generation:
            return
        self.message = f"No {self.plane_name} reformat: {exc}"
        self.update()

    def _set_view(self, view: MprView | None) -> None:
        if self.view is not None:
            self.view.changed.disconnect(self._on_view)
        self.view = view
        self._cache_key = self._cache_img = None
        self.images.reset()
        self.pivot = None
        self.slab_button.sync()
        if view is not None:
            view.changed.connect(self._on_view)

    # --- painting ----------------------------------------------------------------------
    def current_frame(self) -> Frame | None:
        """The image of the plane, slab and index shown now; None while it renders in a job
        (``desktop.mpr_render``) or when no plane is shown."""
        return self.images.get(self.view) if self.view is not None else None

    def _say(self, text: str) -> None:
        """For the status bar: kept in the viewport's ``status_text`` (as the acquired
        viewport's) and emitted as ``status``, since the cell's own events are not the
        viewport's."""
        if text != self.viewport.status_text:
            self.viewport.status_text = text
            self.status.emit(text)

    def _render_failed(self, message: str) -> None:
        self._say(message)

    def _image(self, frame: Frame) -> QImage:
        from core.imaging.display import render

        vp = self.state.viewport
        key = (id(frame), vp.window_center, vp.window_width, vp.invert)
        if key != self._cache_key or self._cache_img is None:
            invert = frame.invert != vp.invert
            pixels = render(frame, window=(vp.window_center, vp.window_width), invert=invert)
            self._cache_img = to_qimage(pixels)
            self._cache_key = key
        return self._cache_img

    def paintEvent(self, event: QPaintEvent) -> None:
        p = QPainter(self)
        p.fillRect(self.rect(), Qt.GlobalColor.black)
        view = self.view
        self.measurements_drawn = 0
        if view is None:
            self.image_rect = QRectF()
            p.setPen(QColor("#ff7b72") if "No " in self.message else QColor("#c8c8c8"))
            p.drawText(
                self.rect().adjusted(30, 0, -30, 0),
                Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap,
                self.message,
            )
            p.end()
            return
        plane = view.plane()
        frame = self.current_frame()
        shown = frame if frame is not None else self.images.last  # the last while rendering
        g = self.view_geometry()
        assert g is not None
        # square pixels: one scale for both axes; fitted and centred until zoomed or panned
        x0, y0 = image_to_screen(g, (0.0, 0.0))
        self.image_rect = QRectF(QPointF(x0, y0), QSizeF(plane.cols, plane.rows) * g.zoom)
        if shown is not None and shown.shape == (plane.rows, plane.cols):
            p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, g.zoom < 4)
            p.drawImage(self.image_rect, self._image(shown))
        items = list(self.state.measurements)
        if self._drag is not None and self._drag.get("measure") is not None:
            items.append(self._drag["measure"])
        self.measurements_drawn = paint_measurements(
            p,
            items,
            plane,
            frame,
            lambda q: image_to_screen(g, q),
            view.slab_label(),
        )
        for overlay in self.overlays:
            overlay(p, frame, g)
        self._paint_labels(p, view, rendering=frame is None)
        p.end()

    def _paint_labels(self, p: QPainter, view: MprView, rendering: bool = False) -> None:
        plane, fm = view.plane(), p.fontMetrics()
        w, h, m = self.width(), self.height(), 8
        vp = self.state.viewport
        p.setPen(OVERLAY_COLOUR)
        title = f"{view.plane_name.capitalize()} reformat"
        if view.is_oblique:
            title = f"Oblique reformat ({view.base_name} {view.tilt_degrees():.0f}°)"
        lines = [title, f"{view.index + 1}/{view.count}"]
        if view.slab is not None:
            lines.append(view.slab_label())
        if rendering:
            lines.append("Rendering…")
        for k, line in enumerate(lines):
            p.drawText(QPointF(m, m + fm.ascent() + k * fm.height()), line)
        p.drawText(
            QPointF(m, h - m - fm.descent()),
            f"W {vp.window_width:.0f}  L {vp.window_center:.0f}",
        )
        labels = {
            "left": (QPointF(m, h / 2), side(-plane.u)),
            "right": (QPointF(w - m - fm.horizontalAdvance(side(plane.u)), h / 2), side(plane.u)),
            "top": (QPointF(w / 2, m + fm.ascent() + fm.height()), side(-plane.v)),
            "bottom": (QPointF(w / 2, h - m - fm.descent() - fm.height()), side(plane.v)),
        }
        for at, text in labels.values():
            p.drawText(at, text)

    # --- mouse and keys ----------------------------------------------------------------
    def mousePressEvent(self, event: QMouseEvent) -> None:
        """As ViewportWidget: left = the viewport's tool, right = zoom, middle = pan."""
        self.setFocus()
        btn = event.button()
        mode: str | None = {
            Qt.MouseButton.LeftButton: self.viewport.tool,
            Qt.MouseButton.RightButton: "zoom",
            Qt.MouseButton.MiddleButton: "pan",
        }.get(btn)
        if mode is None:
            return
        if mode == "window" and event.modifiers() & Qt.KeyboardModifier.ControlModifier:
            mode = "region"  # Ctrl + drag with W/L: the window of the rectangle drawn
        vp = self.state.viewport
        self._drag = drag_start(mode, event.position(), vp, self.effective_zoom())
        if mode in ("length", "roi", "region"):
            view, g = self.view, self.view_geometry()
            if view is None or g is None:
                self._drag = None
                return
            pos = event.position()
            p0 = screen_to_image(g, (pos.x(), pos.y()))
            where = MeasurePlane.of(view.plane(), view.plane_name)
            kind = "roi" if mode == "region" else mode  # a region is drawn like an ROI
            self._drag["measure"] = Measurement(kind, view.index, p0, p0, where)  # type: ignore[arg-type]
        event.accept()

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        pos = event.position()
        self._update_status(pos)
        d = self._drag
        if d is None:
            return
        dx, dy = pos.x() - d["start"].x(), pos.y() - d["start"].y()
        vp = self.state.viewport
        if drag_view(d, vp, dx, dy) or d.get("measure") is None:
            return
        if (g := self.view_geometry()) is not None:
            d["measure"].p1 = screen_to_image(g, (pos.x(), pos.y()))
            self.update()

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        d, self._drag = self._drag, None
        m: Measurement | None = d.get("measure") if d is not None else None
        if m is None:
            return
        g = self.view_geometry()
        if g is not None:
            pos = event.position()
            m.p1 = screen_to_image(g, (pos.x(), pos.y()))
        if m.p0 == m.p1:  # a click alone changes nothing
            self.update()
        elif d is not None and d["mode"] == "region":
            self._window_from_region(m)
        else:
            self.state.add_measurement(m)  # repaints through measurements_changed

    def _window_from_region(self, m: Measurement) -> None:
        """The window of the rectangle drawn (its robust min/max), as on an acquired slice."""
        from core.imaging.presets import PresetError, region_window
        from core.viewer.presets import REGION

        frame = self.current_frame()
        (x0, y0), (x1, y1) = m.p0, m.p1
        rows = (int(np.floor(min(y0, y1))), int(np.ceil(max(y0, y1))))
        cols = (int(np.floor(min(x0, x1))), int(np.ceil(max(x0, x1))))
        if frame is None:
            self._say("No window from that region: the reformat is being drawn")
            return
        try:
            center, width = region_window(frame.values, rows, cols)
        except PresetError as exc:
            self._say(f"No window from that region: {exc}")
        else:
            self.state.viewport.set_window(center, width, preset=REGION)
        self.update()

    def _update_status(self, pos: QPointF) -> None:
        """The value under the mouse in modality units and where it is in the patient."""
        frame, g = self.current_frame() if self.view is not None else None, self.view_geometry()
        if frame is None or g is None:
            return
        x, y = screen_to_image(g, (pos.x(), pos.y()))
        col, row = int(np.floor(x)), int(np.floor(y))
        rows, cols = frame.shape
        point = self.widget_to_patient(pos)
        if point is None or not (0 <= col < cols and 0 <= row < rows):
            self._say("")
            return
        value = f"{float(frame.values[row, col]):.0f} {frame.units}".strip()
        at = "  ".join(f"{a} {c:.1f}" for a, c in zip("xyz", point, strict=True))
        self._say(f"{at} mm  value {value}")

    def wheelEvent(self, event: QWheelEvent) -> None:
        dy = event.angleDelta().y()
        if dy == 0 or self.view is None:
            event.ignore()
            return
        steps = int(dy / 120) or (1 if dy > 0 else -1)
        if event.modifiers() & Qt.KeyboardModifier.ControlModifier:  # zoom, as ViewportWidget
            self.state.viewport.update(
                {"zoom": min(max(self.effective_zoom() * 1.15**steps, 1 / 64), 64.0), "fit": False}
            )
        else:
            self.view.step(-steps)
        event.accept()

    def keyPressEvent(self, event: QKeyEvent) -> None:
        view = self.view
        key = Qt.Key(event.key())
        ctrl = bool(event.modifiers() & Qt.KeyboardModifier.ControlModifier)
        if view is None:
            super().keyPressEvent(event)
        elif ctrl and key in TILT_KEYS:
            self.tilt(*TILT_KEYS[key])
        elif ctrl and key == Qt.Key.Key_0:
            self.straighten()
        elif key == Qt.Key.Key_S and not ctrl:
            self.slab_button.cycle()
        elif key in (Qt.Key.Key_Plus, Qt.Key.Key_Equal):
            view.thicker(1)
        elif key == Qt.Key.Key_Minus:
            view.thicker(-1)
        elif key in SLICE_KEYS:
            view.step(SLICE_KEYS[key])
        elif key == Qt.Key.Key_Home:
            view.set_index(0)
        elif key == Qt.Key.Key_End:
            view.set_index(view.count - 1)
        else:
            super().keyPressEvent(event)
